package org.normcl.bench;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Single-node ONNX models for ONNX Runtime, written as protobuf bytes by hand (ONNX Runtime's Java
 * API takes a model file or bytes, and the benchmarks depend on nothing but ONNX Runtime): only the
 * few fields a one-node graph needs, with field numbers from onnx.proto.
 */
public final class OnnxModels {
    private static final int FLOAT = 1; // TensorProto.DataType.FLOAT
    private static final int ATTR_FLOAT = 1; // AttributeProto.AttributeType.FLOAT
    private static final int ATTR_INT = 2; // AttributeProto.AttributeType.INT

    private OnnxModels() {
    }

    /**
     * A LayerNormalization (opset 17) over the last axis: inputs X [rows, cols], Scale [cols], B [cols];
     * outputs Y [rows, cols], Mean and InvStdDev [rows, 1].
     */
    public static byte[] layerNorm(long rows, long cols, float epsilon) {
        Proto node = new Proto()
                .string(1, "X").string(1, "Scale").string(1, "B")
                .string(2, "Y").string(2, "Mean").string(2, "InvStdDev")
                .string(3, "layer_norm").string(4, "LayerNormalization")
                .message(5, intAttribute("axis", -1))
                .message(5, floatAttribute("epsilon", epsilon));
        Proto graph = new Proto()
                .message(1, node)
                .string(2, "normcl_bench")
                .message(11, valueInfo("X", rows, cols))
                .message(11, valueInfo("Scale", cols))
                .message(11, valueInfo("B", cols))
                .message(12, valueInfo("Y", rows, cols))
                .message(12, valueInfo("Mean", rows, 1))
                .message(12, valueInfo("InvStdDev", rows, 1));
        return model(graph, 17);
    }

    private static byte[] model(Proto graph, int opset) {
        Proto opsetImport = new Proto().string(1, "").int64(2, opset);
        return new Proto()
                .int64(1, 8) // ir_version
                .string(2, "normcl-bench") // producer_name
                .message(7, graph)
                .message(8, opsetImport)
                .bytes();
    }

    private static Proto intAttribute(String name, long value) {
        return new Proto().string(1, name).int64(3, value).int64(20, ATTR_INT);
    }

    private static Proto floatAttribute(String name, float value) {
        return new Proto().string(1, name).fixed32(2, Float.floatToIntBits(value)).int64(20, ATTR_FLOAT);
    }

    /** ValueInfoProto{name, type: TypeProto{tensor_type: {elem_type FLOAT, shape: dims}}}. */
    private static Proto valueInfo(String name, long... dims) {
        Proto shape = new Proto();
        for (long d : dims) {
            shape.message(1, new Proto().int64(1, d)); // Dimension{dim_value}
        }
        Proto tensor = new Proto().int64(1, FLOAT).message(2, shape);
        return new Proto().string(1, name).message(2, new Proto().message(1, tensor));
    }

    /** A protobuf message under construction: fields appended in the order given. */
    static final class Proto {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Proto int64(int field, long value) {
            tag(field, 0);
            varint(value);
            return this;
        }

        Proto fixed32(int field, int bits) {
            tag(field, 5);
            for (int i = 0; i < 4; i++) {
                out.write((bits >>> (8 * i)) & 0xff);
            }
            return this;
        }

        Proto string(int field, String s) {
            return lengthDelimited(field, s.getBytes(StandardCharsets.UTF_8));
        }

        Proto message(int field, Proto m) {
            return lengthDelimited(field, m.bytes());
        }

        byte[] bytes() {
            return out.toByteArray();
        }

        private Proto lengthDelimited(int field, byte[] b) {
            tag(field, 2);
            varint(b.length);
            out.write(b, 0, b.length);
            return this;
        }

        private void tag(int field, int wireType) {
            varint(((long) field << 3) | wireType);
        }

        private void varint(long v) {
            while ((v & ~0x7FL) != 0) {
                out.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            out.write((int) v);
        }
    }
}
