package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.EngineOptions;
import org.normcl.HostTensor;
import org.normcl.NormEngine;
import org.normcl.Shape;
import org.normcl.npy.Npy;
import org.normcl.npy.NpyArray;
import org.normcl.testing.Tolerances;

/**
 * Helpers of the CLI tests over element types: data per type, writing inputs the way a user's
 * NumPy would (rounded to the file's type, read back as the exact stored values) and the error
 * bounds of outputs stored in a type.
 *
 * <p><b>Tolerances per output type.</b> An output is computed in float32 (float64 for float64
 * data) and then rounded once to its type. The computed value is within {@code c} of the float64
 * reference, where {@code c} is the compute bound of {@link Tolerances} (forward values, saved
 * statistics) or {@link org.normcl.testing.GradBounds} (gradients), derived there for float32 with
 * u = 2^-24 and used here with u = {@link Tolerances#computeU} (2^-53 for float64: the same
 * formula, since the float64 path runs the same algorithm in float64). Rounding to nearest in the
 * output type then adds at most {@code s (|ref| + c)}, s its unit roundoff
 * ({@link Tolerances#storeU}: 2^-24 float32, 2^-11 float16, 2^-8 bfloat16, 2^-53 float64), plus,
 * where the result falls in the float16 subnormal range, half a subnormal step
 * ({@link Tolerances#storeFloor}, 2^-25). So {@code |out - ref| <= c + s (|ref| + c) + floor}.
 * The reference takes the stored (type-rounded) inputs, so input rounding is not part of the error.
 */
final class DTypeCliSupport {
    private DTypeCliSupport() {
    }

    /** The element types the CLI reads and writes. */
    static final DType[] DTYPES = {DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT64};

    /** @return a short name: f32, f16, bf16, f64 */
    static String shortName(DType t) {
        switch (t) {
            case FLOAT16:
                return "f16";
            case BFLOAT16:
                return "bf16";
            case FLOAT64:
                return "f64";
            default:
                return "f32";
        }
    }

    /**
     * Data for X, chosen per type to exercise what the type is used for: float16 magnitudes near
     * 400 (their squares, 160000, overflow float16's 65504), bfloat16 values of a few units, float64
     * values around 1e9 (a mean of 1e9 with a spread of a few units: naive float64 variance would
     * lose every digit) and float32 values offset from zero.
     */
    static double[] xData(DType t, long seed, int n) {
        switch (t) {
            case FLOAT16:
                return gaussian(seed, n, 400, 30);
            case BFLOAT16:
                return gaussian(seed, n, -3, 5);
            case FLOAT64:
                return gaussian(seed, n, 1e9, 3);
            default:
                return gaussian(seed, n, 1.5, 2);
        }
    }

    /** Seeded {@code mean + sd * N(0, 1)} in float64. */
    static double[] gaussian(long seed, int n, double mean, double sd) {
        Random rnd = new Random(seed);
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = mean + sd * rnd.nextGaussian();
        }
        return a;
    }

    /**
     * Writes values as a {@code .npy} file of type {@code t} (rounded to nearest even; bfloat16 as
     * {@code <u2} bits) and returns the values the file holds, widened exactly to float64.
     */
    static double[] write(Path file, DType t, long[] shape, double[] values) {
        HostTensor h = HostTensor.fromDoubles(values, t, Shape.of(shape));
        Npy.writeTensor(file, h);
        return h.toDoubles();
    }

    /** Reads an output, checking its type (the file's descr) and shape; returns its values in float64. */
    static double[] read(Path file, DType expected, long[] shape) {
        NpyArray a = Npy.read(file, true);
        assertEquals(expected.npyDescr(), a.descr(), () -> file.getFileName() + ": dtype");
        assertEquals(expected, a.dtype(), () -> file.getFileName() + ": dtype");
        if (shape != null) {
            assertArrayEquals(shape, a.shape(), () -> file.getFileName() + ": shape");
        }
        return a.toDoubles();
    }

    /** Adds to a compute bound the rounding of storing the result in {@code out} (see the class comment). */
    static double[] stored(double[] compute, double[] ref, DType out) {
        double s = Tolerances.storeU(out);
        double floor = Tolerances.storeFloor(out);
        double[] b = new double[compute.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = compute[i] + s * (Math.abs(ref[i]) + compute[i]) + floor;
        }
        return b;
    }

    /** {@code |a - b| <= bound} elementwise, with a message naming {@code what}. */
    static void assertClose(String what, double[] actual, double[] expected, double[] bound) {
        Tolerances.assertWithin(what, actual, expected, bound);
    }

    private static final Map<String, Boolean> FP64 = new HashMap<>();

    /** @return whether the {@code --backend} engine runs float64 (an OpenCL device needs cl_khr_fp64) */
    static synchronized boolean supportsFloat64(String backend) {
        return FP64.computeIfAbsent(backend, b -> {
            if (b.equals("java")) {
                return true;
            }
            try (NormEngine e = NormEngine.create(EngineOptions.of(BackendKind.valueOf(b.toUpperCase(Locale.ROOT))))) {
                return e.supports(DType.FLOAT64);
            }
        });
    }

    /** The dtype-specific option: {@code --bf16} for bfloat16 data, none otherwise. */
    static String[] typeFlag(DType x) {
        return x == DType.BFLOAT16 ? new String[] {"--bf16"} : new String[0];
    }

    /** Transposes (N, D1, ..., Dk, C) to (N, C, D1, ..., Dk). */
    static double[] toChannelsFirst(double[] v, long[] nhwc) {
        int n = (int) nhwc[0];
        int c = (int) nhwc[nhwc.length - 1];
        int spatial = v.length / Math.max(1, n * c);
        double[] out = new double[v.length];
        for (int s = 0; s < n; s++) {
            for (int p = 0; p < spatial; p++) {
                for (int ch = 0; ch < c; ch++) {
                    out[(s * c + ch) * spatial + p] = v[(s * spatial + p) * c + ch];
                }
            }
        }
        return out;
    }

    /** @return (N, C, D1, ..., Dk) for (N, D1, ..., Dk, C) */
    static long[] channelsFirstShape(long[] nhwc) {
        long[] s = new long[nhwc.length];
        s[0] = nhwc[0];
        s[1] = nhwc[nhwc.length - 1];
        System.arraycopy(nhwc, 1, s, 2, nhwc.length - 2);
        return s;
    }
}
