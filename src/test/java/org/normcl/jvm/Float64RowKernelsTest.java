package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The float64 kernels ({@link F64Kernels}): the forward sums against exact sums (BigDecimal),
 * within the bound of any summation order; the normalization against its formula; and every
 * kernel, forward and backward, of the Vector API against the scalar one bit for bit, since both
 * add in the same documented order ({@link F64Kernels#F64_ACCUMULATORS}, eight accumulators for
 * {@link F64Kernels#backwardSums}). The backward kernels' results are checked against the float64
 * analytic gradients through the backends by {@code BackwardAccuracyTest} and {@code DTypeLayoutTest}. Lengths cover an empty vector loop, tails of every size
 * below 16, and offsets that are not a multiple of the vector length.
 */
class Float64RowKernelsTest {
    private static final int[] LENGTHS = {1, 3, 4, 15, 16, 17, 31, 33, 64, 100, 1024, 1031, 4099};
    private static final double U = 0x1p-53;

    /** The kernels this JVM has: the scalar ones always, the Vector API ones where the module is present. */
    private static List<F64Kernels> kernels() {
        List<F64Kernels> k = new ArrayList<>();
        k.add(F64Kernels.scalar());
        F64Kernels v = F64Kernels.vectorOrNull();
        if (v != null) {
            k.add(v.fresh());
        }
        return k;
    }

    /** Values near {@code offset} (some far from it), at an unaligned offset {@code pad} into the array. */
    private static double[] data(Random rnd, int pad, int n, double offset) {
        double[] x = new double[pad + n + 5];
        for (int i = 0; i < x.length; i++) {
            x[i] = offset + (i % 13 == 0 ? 1e3 : 1) * rnd.nextGaussian();
        }
        return x;
    }

    private static BigDecimal exact(double v) {
        return new BigDecimal(v);
    }

    @Test
    void sumsAreWithinTheBoundOfAnySummationOrder() {
        Random rnd = new Random(64);
        for (F64Kernels kern : kernels()) {
            for (int n : LENGTHS) {
                for (double offset : new double[] {0, 1e9}) {
                    int pad = n % 3;
                    double[] x = data(rnd, pad, n, offset);
                    double k = x[pad];
                    BigDecimal sum = BigDecimal.ZERO;
                    double abs = 0;
                    for (int i = pad; i < pad + n; i++) {
                        double d = x[i] - k; // exact here: |x - k| is far below ulp(k) * 2^52
                        sum = sum.add(exact(d));
                        abs += Math.abs(d);
                    }
                    double got = kern.sumShifted(x, pad, n, k);
                    double err = exact(got).subtract(sum).abs().doubleValue();
                    // Recursive summation in any order: |error| <= (n - 1) u sum |terms| (plus O(u^2)).
                    assertTrue(err <= 1.01 * n * U * abs, kern.name() + " sumShifted n=" + n + " offset=" + offset
                            + ": error " + err + " above " + n * U * abs);

                    double m = sum.doubleValue() / n;
                    BigDecimal squares = BigDecimal.ZERO;
                    double absSquares = 0;
                    for (int i = pad; i < pad + n; i++) {
                        double d = (x[i] - k) - m;
                        BigDecimal e = exact(d);
                        squares = squares.add(e.multiply(e));
                        absSquares += d * d;
                    }
                    double gotSquares = kern.sumSquaredDeviations(x, pad, n, k, m);
                    double errSquares = exact(gotSquares).subtract(squares).abs().doubleValue();
                    // Each product rounds once more than a sum's term: (n + 1) u sum of the squares.
                    assertTrue(errSquares <= 1.01 * (n + 1) * U * absSquares, kern.name()
                            + " sumSquaredDeviations n=" + n + " offset=" + offset + ": error " + errSquares);
                }
            }
        }
    }

    @Test
    void normalizeIsTheFormulaValueByValue() {
        Random rnd = new Random(65);
        for (F64Kernels kern : kernels()) {
            for (int n : LENGTHS) {
                int pad = 1 + n % 3;
                double[] x = data(rnd, pad, n, 1e9);
                double k = x[pad]; // (x - k) - m, not x - (k + m): k + m would round at ulp(1e9)
                double[] scale = data(rnd, 2, n, 1);
                double[] bias = data(rnd, 2, n, 0);
                for (int variant = 0; variant < 4; variant++) {
                    double[] s = (variant & 1) != 0 ? scale : null;
                    double[] b = (variant & 2) != 0 ? bias : null;
                    double[] y = new double[x.length];
                    kern.normalize(x, y, pad, n, k, 0.3, 0.75, s, b, 2);
                    for (int t = 0; t < n; t++) {
                        double v = ((x[pad + t] - k) - 0.3) * 0.75;
                        v = s != null ? v * s[2 + t] : v;
                        v = b != null ? v + b[2 + t] : v;
                        assertEquals(Double.doubleToRawLongBits(v), Double.doubleToRawLongBits(y[pad + t]),
                                kern.name() + " normalize n=" + n + " variant=" + variant + " t=" + t);
                    }
                    assertEquals(0.0, y[pad - 1], "nothing written before the range");
                    assertEquals(0.0, y[pad + n], "nothing written after the range");
                }
            }
        }
    }

    @Test
    void bestIsTheVectorKernelsWhereTheFloatKernelsAreAndDoublesHaveFourLanes() {
        boolean vector = RowKernels.best().lanes() > 1 && VectorRowKernels.D.length() == 4;
        assertEquals(vector ? "vector-4" : "scalar", F64Kernels.best().name(),
                "float32 kernels " + RowKernels.best().name());
    }

    @Test
    void vectorKernelsGiveTheScalarKernelsBits() {
        F64Kernels vector = F64Kernels.vectorOrNull();
        org.junit.jupiter.api.Assumptions.assumeTrue(vector != null,
                "no 4-lane float64 vector kernels here (the Vector API absent, or a width other than 256 bits): the scalar ones run");
        vector = vector.fresh();
        F64Kernels scalar = F64Kernels.scalar();
        Random rnd = new Random(66);
        for (int n : LENGTHS) {
            for (int pad = 0; pad < 3; pad++) {
                double[] x = data(rnd, pad, n, 1e4);
                double k = x[pad];
                double s = scalar.sumShifted(x, pad, n, k);
                assertEquals(Double.doubleToRawLongBits(s), Double.doubleToRawLongBits(vector.sumShifted(x, pad, n, k)),
                        "sumShifted n=" + n + " pad=" + pad);
                double m = s / n;
                assertEquals(Double.doubleToRawLongBits(scalar.sumSquaredDeviations(x, pad, n, k, m)),
                        Double.doubleToRawLongBits(vector.sumSquaredDeviations(x, pad, n, k, m)),
                        "sumSquaredDeviations n=" + n + " pad=" + pad);
                assertEquals(Double.doubleToRawLongBits(scalar.sumSquaredDeviations(x, pad, n, 0, 0)),
                        Double.doubleToRawLongBits(vector.sumSquaredDeviations(x, pad, n, 0, 0)),
                        "sum of squares (RMS) n=" + n + " pad=" + pad);

                // The backward kernels, with and without a scale, and the uniform normalization.
                double[] dy = data(rnd, pad, n, 0);
                double[] w = data(rnd, 1, n, 1);
                for (double[] scale : new double[][] {null, w}) {
                    String what = " n=" + n + " pad=" + pad + (scale == null ? " no scale" : " scale");
                    double gs = scalar.backwardSums(dy, x, scale, pad, 1, n, m + k, 0.5);
                    double gv = vector.backwardSums(dy, x, scale, pad, 1, n, m + k, 0.5);
                    assertEquals(Double.doubleToRawLongBits(gs), Double.doubleToRawLongBits(gv), "backwardSums" + what);
                    assertEquals(Double.doubleToRawLongBits(scalar.backwardSecond),
                            Double.doubleToRawLongBits(vector.backwardSecond), "backwardSecond" + what);
                    double[] dxs = new double[x.length];
                    double[] dxv = new double[x.length];
                    scalar.backwardDx(dy, x, scale, dxs, pad, 1, n, m + k, 0.5, gs / n, scalar.backwardSecond / n);
                    vector.backwardDx(dy, x, scale, dxv, pad, 1, n, m + k, 0.5, gs / n, scalar.backwardSecond / n);
                    assertBitsEqual(dxs, dxv, "backwardDx" + what);
                }
                double[] ss = new double[n + 3];
                double[] bs = new double[n + 3];
                double[] sv = new double[n + 3];
                double[] bv = new double[n + 3];
                for (int row = 0; row < 3; row++) {
                    scalar.accumulateGrad(dy, x, pad, n, k + row, 0.25, ss, 2, bs, 1);
                    vector.accumulateGrad(dy, x, pad, n, k + row, 0.25, sv, 2, bv, 1);
                }
                assertBitsEqual(ss, sv, "accumulateGrad scale terms n=" + n);
                assertBitsEqual(bs, bv, "accumulateGrad bias terms n=" + n);
                double[] ys = new double[x.length];
                double[] yv = new double[x.length];
                scalar.normalizeUniform(x, ys, pad, n, k, m, 0.75, 1.5, -0.25);
                vector.normalizeUniform(x, yv, pad, n, k, m, 0.75, 1.5, -0.25);
                assertBitsEqual(ys, yv, "normalizeUniform n=" + n);
            }
        }
    }

    private static void assertBitsEqual(double[] expected, double[] actual, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Double.doubleToRawLongBits(expected[i]), Double.doubleToRawLongBits(actual[i]),
                    what + " at " + i);
        }
    }

    @Test
    void sixteenAccumulatorsCombineInTheDocumentedTree() {
        // 2^53 absorbs a 1 added to it alone (a tie, to even) but not a 2: the tree adds s0 + s1 and
        // s2 + s3 first, so both ones are absorbed and the total is 0; a tree that paired s1 with s3
        // (the float lanes' (t0 + t2) + (t1 + t3)) would give 2.
        double big = 0x1p53;
        assertEquals(0.0, F64Kernels.combineF64(big, 1, 0, 1, 0, 0, 0, 0, -big, 0, 0, 0, 0, 0, 0, 0));
        assertEquals(2.0, (big + 0) + (1.0 + 1.0) - big, "the other order, for contrast");
    }

    /**
     * float64 rows of one value (instance norm of (N, C) data): y is {@code 0 * w + b}, the mean the
     * value and the inverse deviation {@code 1 / sqrt(eps)}; a value or scale that is not finite
     * gives NaN. On 1 and 3 threads, with and without scale and bias.
     */
    @Test
    void singleValueRowsNormalizeToTheBias() {
        int outer = 700;
        int channels = 96;
        int n = outer * channels;
        Random rnd = new Random(3);
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = 50 * rnd.nextGaussian();
        }
        x[3] = Double.NaN;
        x[100] = Double.NEGATIVE_INFINITY;
        x[200] = -0.0;
        x[300] = 1e308;
        double[] w = new double[channels];
        double[] b = new double[channels];
        for (int c = 0; c < channels; c++) {
            w[c] = 1 + rnd.nextGaussian();
            b[c] = rnd.nextGaussian();
        }
        w[5] = Double.POSITIVE_INFINITY;
        float eps = 1e-5f;
        double inv = 1 / Math.sqrt(0.0 + eps);
        RowNormPlan p = RowNormPlan.contiguous(n, 1, StatMode.MEAN_VAR, eps, channels, 1, 1, true, true);
        for (int threads : new int[] {1, 3}) {
            for (boolean affine : new boolean[] {true, false}) {
                double[] y = new double[n];
                double[] mean = new double[n];
                double[] invOut = new double[n];
                Parallel parallel = new Parallel(threads);
                try {
                    DoubleKernels.rowNorm(parallel, p, x, affine ? w : null, affine ? b : null, y, mean, invOut);
                } finally {
                    parallel.shutdown();
                }
                for (int i = 0; i < n; i++) {
                    int c = i % channels;
                    String what = "threads " + threads + (affine ? " affine" : "") + " value " + i;
                    if (!Double.isFinite(x[i]) || (affine && Double.isInfinite(w[c]))) {
                        assertTrue(Double.isNaN(y[i]), what + ": NaN, got " + y[i]);
                        continue;
                    }
                    assertEquals(x[i], mean[i], 0.0, what + " mean");
                    assertEquals(inv, invOut[i], 0.0, what + " inverse deviation");
                    assertEquals(affine ? b[c] : 0.0, y[i], 0.0, what + " y");
                }
            }
        }
    }
}
