package org.normcl.reference;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A minimal NumPy {@code .npy} reader/writer for tests: format versions 1.0 - 3.0, little-endian
 * float32 ({@code <f4}) and float64 ({@code <f8}) arrays in C order only.
 */
public final class TestNpy {

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
    private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
    private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

    private TestNpy() {
    }

    /** A float32 array and its shape. */
    public record Float32(long[] shape, float[] data) {
        /** The data widened exactly to double. */
        public double[] toDouble() {
            return Reference64.toDouble(data);
        }
    }

    /** A float64 array and its shape. */
    public record Float64(long[] shape, double[] data) {
    }

    /** Reads a {@code <f4} file; fails on any other dtype. */
    public static Float32 readFloat32(Path file) {
        Raw raw = readRaw(file);
        if (!raw.descr.equals("<f4")) {
            throw new IllegalArgumentException(file + ": dtype " + raw.descr + ", expected <f4");
        }
        float[] data = new float[raw.count];
        raw.body.asFloatBuffer().get(data);
        return new Float32(raw.shape, data);
    }

    /** Reads a {@code <f8} file; fails on any other dtype. */
    public static Float64 readFloat64(Path file) {
        Raw raw = readRaw(file);
        if (!raw.descr.equals("<f8")) {
            throw new IllegalArgumentException(file + ": dtype " + raw.descr + ", expected <f8");
        }
        double[] data = new double[raw.count];
        raw.body.asDoubleBuffer().get(data);
        return new Float64(raw.shape, data);
    }

    /** Reads a {@code <f4} or {@code <f8} file as doubles (float32 widened exactly). */
    public static Float64 readAsFloat64(Path file) {
        Raw raw = readRaw(file);
        double[] data = new double[raw.count];
        switch (raw.descr) {
            case "<f8" -> raw.body.asDoubleBuffer().get(data);
            case "<f4" -> {
                for (int i = 0; i < raw.count; i++) {
                    data[i] = raw.body.getFloat(4 * i);
                }
            }
            default -> throw new IllegalArgumentException(file + ": dtype " + raw.descr + ", expected <f4 or <f8");
        }
        return new Float64(raw.shape, data);
    }

    /** Writes a {@code <f4} C-order file (format 1.0). */
    public static void writeFloat32(Path file, long[] shape, float[] data) {
        checkCount(shape, data.length);
        ByteBuffer body = ByteBuffer.allocate(4 * data.length).order(ByteOrder.LITTLE_ENDIAN);
        body.asFloatBuffer().put(data);
        write(file, "<f4", shape, body.array());
    }

    /** Writes a {@code <f8} C-order file (format 1.0). */
    public static void writeFloat64(Path file, long[] shape, double[] data) {
        checkCount(shape, data.length);
        ByteBuffer body = ByteBuffer.allocate(8 * data.length).order(ByteOrder.LITTLE_ENDIAN);
        body.asDoubleBuffer().put(data);
        write(file, "<f8", shape, body.array());
    }

    private record Raw(String descr, long[] shape, int count, ByteBuffer body) {
    }

    private static Raw readRaw(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (bytes.length < 10 || !Arrays.equals(Arrays.copyOf(bytes, 6), MAGIC)) {
            throw new IllegalArgumentException(file + ": not a .npy file");
        }
        int major = bytes[6] & 0xff;
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int headerLen;
        int headerStart;
        if (major == 1) {
            headerLen = bb.getShort(8) & 0xffff;
            headerStart = 10;
        } else if (major == 2 || major == 3) {
            headerLen = bb.getInt(8);
            headerStart = 12;
        } else {
            throw new IllegalArgumentException(file + ": unsupported .npy version " + major);
        }
        String header = new String(bytes, headerStart, headerLen,
                major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        String descr = group(DESCR, header, file);
        if (group(FORTRAN, header, file).equals("True")) {
            throw new IllegalArgumentException(file + ": Fortran order is not supported");
        }
        List<Long> dims = new ArrayList<>();
        for (String part : group(SHAPE, header, file).split(",")) {
            String t = part.trim();
            if (!t.isEmpty()) {
                dims.add(Long.parseLong(t.endsWith("L") ? t.substring(0, t.length() - 1) : t));
            }
        }
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        long count = 1;
        for (long d : shape) {
            count = Math.multiplyExact(count, d);
        }
        int itemSize = switch (descr) {
            case "<f4" -> 4;
            case "<f8" -> 8;
            default -> throw new IllegalArgumentException(file + ": unsupported dtype " + descr);
        };
        int dataStart = headerStart + headerLen;
        long bodyLen = count * itemSize;
        if (bytes.length - dataStart != bodyLen) {
            throw new IllegalArgumentException(file + ": " + (bytes.length - dataStart) + " data bytes, shape "
                    + Arrays.toString(shape) + " needs " + bodyLen);
        }
        ByteBuffer body = ByteBuffer.wrap(bytes, dataStart, (int) bodyLen).slice().order(ByteOrder.LITTLE_ENDIAN);
        return new Raw(descr, shape, (int) count, body);
    }

    private static String group(Pattern p, String header, Path file) {
        Matcher m = p.matcher(header);
        if (!m.find()) {
            throw new IllegalArgumentException(file + ": cannot parse header " + header);
        }
        return m.group(1);
    }

    private static void checkCount(long[] shape, int length) {
        long count = 1;
        for (long d : shape) {
            count = Math.multiplyExact(count, d);
        }
        if (count != length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + count
                    + " elements, got " + length);
        }
    }

    private static void write(Path file, String descr, long[] shape, byte[] body) {
        StringBuilder dims = new StringBuilder();
        for (int i = 0; i < shape.length; i++) {
            dims.append(shape[i]).append(i == 0 && shape.length == 1 ? "," : (i < shape.length - 1 ? ", " : ""));
        }
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
        // Pad with spaces so that magic + 2 + 2 + header (ending in '\n') is a multiple of 64.
        int unpadded = 10 + dict.length() + 1;
        int padded = (unpadded + 63) / 64 * 64;
        String header = dict + " ".repeat(padded - unpadded) + "\n";
        ByteBuffer out = ByteBuffer.allocate(10 + header.length() + body.length).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) header.length());
        out.put(header.getBytes(StandardCharsets.ISO_8859_1)).put(body);
        try {
            Files.write(file, out.array());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
