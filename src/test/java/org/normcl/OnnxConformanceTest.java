package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.TestData;
import org.normcl.reference.TestJson;
import org.normcl.reference.TestNpy;
import org.normcl.reference.Tolerance;
import org.normcl.testing.Backends;
import org.normcl.testing.OpCall;

/**
 * The ONNX project's backend node tests for the normalization operators (test-data/onnx, 54
 * cases), on every backend, each output within the case's own rtol/atol as ONNX's runner applies
 * them.
 */
class OnnxConformanceTest {

    static List<String> caseNames() {
        return TestData.caseNames(TestData.onnx());
    }

    @Test
    void allCasesArePresent() {
        assertEquals(54, caseNames().size(), "ONNX cases in " + TestData.onnx());
    }

    static Stream<Arguments> cases() {
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (String c : caseNames()) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void passes(Backends.Named backend, String name) {
        Path dir = TestData.onnx().resolve(name);
        Map<String, Object> json = TestJson.parseObject(dir.resolve("case.json"));
        String opType = TestJson.string(json.get("op_type"));
        int opset = TestJson.asInt(json.get("op_version"));
        Map<String, Object> attrs = TestJson.object(json.get("effective_attributes"));
        List<Object> inputs = TestJson.array(json.get("inputs"));
        String[] roles = roles(opType);
        Map<String, HostTensor> named = new HashMap<>();
        for (Object o : inputs) {
            Map<String, Object> in = TestJson.object(o);
            int index = TestJson.asInt(in.get("index"));
            TestNpy.Float32 t = TestNpy.readFloat32(dir.resolve(TestJson.string(in.get("file"))));
            named.put(roles[index], HostTensor.of(t.data(), t.shape()));
        }
        OpCall call = new OpCall(opName(opType), attrs.containsKey("axis") ? TestJson.asInt(attrs.get("axis")) : -1,
                attrs.containsKey("epsilon") ? TestJson.asFloat(attrs.get("epsilon")) : Double.NaN,
                attrs.containsKey("num_groups") ? TestJson.asInt(attrs.get("num_groups")) : 0,
                opType.equals("GroupNormalization") && opset < 21,
                attrs.containsKey("training_mode") && TestJson.asInt(attrs.get("training_mode")) == 1,
                attrs.containsKey("momentum") ? TestJson.asFloat(attrs.get("momentum")) : Double.NaN, false,
                attrs.containsKey("axes") ? TestJson.asIntArray(attrs.get("axes")) : null, named);
        Map<String, Object> tol = TestJson.object(json.get("tolerance"));
        double rtol = TestJson.asDouble(tol.get("rtol"));
        double atol = TestJson.asDouble(tol.get("atol"));
        try (NormResult r = call.run(backend.engine())) {
            for (Object o : TestJson.array(json.get("outputs"))) {
                Map<String, Object> out = TestJson.object(o);
                int index = TestJson.asInt(out.get("index"));
                TestNpy.Float32 expected = TestNpy.readFloat32(dir.resolve(TestJson.string(out.get("file"))));
                Tensor actual = output(r, opType, index);
                assertNotNull(actual, name + " output " + index);
                assertEquals(Shape.of(expected.shape()), actual.shape(), name + " output " + index + " shape");
                double[] exp = new double[expected.data().length];
                for (int i = 0; i < exp.length; i++) {
                    exp[i] = expected.data()[i];
                }
                Tolerance.assertClose(name + " output " + index, actual.toHost().data(), exp, atol, rtol);
            }
        }
    }

    /** Input positions to the roles OpCall uses. */
    private static String[] roles(String opType) {
        switch (opType) {
            case "BatchNormalization":
                return new String[] {"X", "scale", "bias", "mean", "var"};
            case "MeanVarianceNormalization":
                return new String[] {"X"};
            default:
                return new String[] {"X", "scale", "bias"};
        }
    }

    private static String opName(String opType) {
        switch (opType) {
            case "LayerNormalization":
                return "layer-norm";
            case "RMSNormalization":
                return "rms-norm";
            case "BatchNormalization":
                return "batch-norm";
            case "GroupNormalization":
                return "group-norm";
            case "InstanceNormalization":
                return "instance-norm";
            case "MeanVarianceNormalization":
                return "mvn";
            default:
                throw new IllegalArgumentException(opType);
        }
    }

    /** ONNX output positions: LayerNormalization (Y, Mean, InvStdDev); BatchNormalization (Y, running_mean, running_var). */
    private static Tensor output(NormResult r, String opType, int index) {
        if (index == 0) {
            return r.y();
        }
        if (opType.equals("BatchNormalization")) {
            return index == 1 ? r.runningMean() : r.runningVar();
        }
        return index == 1 ? r.mean() : r.invStdDev();
    }
}
