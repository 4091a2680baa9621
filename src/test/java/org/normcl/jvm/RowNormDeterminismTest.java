package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * The row normalization's result depends on the shape only: bitwise the same with 1, 2 and 3
 * threads (the row path with the fused next-row pass, and the split path that reduces the chunks
 * of a few long rows in parallel and merges them in a fixed order), and from one call to the next.
 */
class RowNormDeterminismTest {

    static Stream<Arguments> plans() {
        return Stream.of(
                // layer norm: short rows, one run, several runs, several chunks (split path with 2-3 threads)
                Arguments.of("ln 300x128", plan(300, 128, StatMode.MEAN_VAR, 1, 128, 1, true, true)),
                Arguments.of("ln 40x1000 no affine", plan(40, 1000, StatMode.MEAN_VAR, 1, 1000, 1, false, false)),
                Arguments.of("ln 9x5000 scale only", plan(9, 5000, StatMode.MEAN_VAR, 1, 5000, 1, true, false)),
                Arguments.of("ln 3x100003 (split)", plan(3, 100_003, StatMode.MEAN_VAR, 1, 100_003, 1, true, true)),
                Arguments.of("ln 1x200000 (split)", plan(1, 200_000, StatMode.MEAN_VAR, 1, 200_000, 1, false, true)),
                Arguments.of("ln 20x70000", plan(20, 70_000, StatMode.MEAN_VAR, 1, 70_000, 1, true, true)),
                Arguments.of("ln 2x70000 no affine (split)", plan(2, 70_000, StatMode.MEAN_VAR, 1, 70_000, 1, false,
                        false)),
                // RMS
                Arguments.of("rms 257x64", plan(257, 64, StatMode.RMS, 1, 64, 1, true, false)),
                Arguments.of("rms 2x99999 (split)", plan(2, 99_999, StatMode.RMS, 1, 99_999, 1, true, false)),
                // group norm (per channel: 4 groups of 2 channels of 49 values) and instance norm
                Arguments.of("gn 6x8x7x7 G4", plan(24, 98, StatMode.MEAN_VAR, 4, 2, 49, true, true)),
                Arguments.of("in 2x3x40000 (split)", plan(6, 40_000, StatMode.MEAN_VAR, 3, 1, 40_000, true, true)),
                // MVN over the last axis (epsilon outside the square root)
                Arguments.of("mvn 33x777", plan(33, 777, StatMode.MEAN_VAR_EPS_OUTSIDE, 1, 777, 1, false, false)));
    }

    private static RowNormPlan plan(long rows, long cols, StatMode mode, long groups, long cpg, long spatial,
            boolean scale, boolean bias) {
        return RowNormPlan.contiguous(rows, cols, mode, 1e-5f, groups, cpg, spatial, scale, bias);
    }

    /** Outputs of one call. */
    record Out(float[] y, float[] mean, float[] inv) {
    }

    static Out run(RowKernels kernels, int threads, RowNormPlan p, float[] x, float[] w, float[] b) {
        Parallel parallel = new Parallel(threads);
        try {
            int rows = (int) p.rows();
            Out o = new Out(new float[x.length], new float[rows], new float[rows]);
            new RowNorm(kernels, parallel).run(p, x, w, b, o.y(), o.mean(), o.inv());
            return o;
        } finally {
            parallel.shutdown();
        }
    }

    static float[] data(String seed, int n, double offset) {
        SplittableRandom r = new SplittableRandom(seed.hashCode());
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (offset + r.nextGaussian());
        }
        return a;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("plans")
    void sameBitsWithAnyThreadCount(String name, RowNormPlan p) {
        float[] x = data(name, (int) (p.rows() * p.cols()), 3);
        float[] w = p.hasScale() ? data(name + "w", (int) p.affineSize(), 1) : null;
        float[] b = p.hasBias() ? data(name + "b", (int) p.affineSize(), 0) : null;
        for (RowKernels k : kernels()) {
            Out one = run(k, 1, p, x, w, b);
            for (int threads : new int[] {1, 2, 3}) {
                Out other = run(k, threads, p, x, w, b);
                assertArrayEquals(one.y(), other.y(), name + " " + k.name() + " Y with " + threads + " threads");
                assertArrayEquals(one.mean(), other.mean(), name + " " + k.name() + " Mean with " + threads);
                assertArrayEquals(one.inv(), other.inv(), name + " " + k.name() + " InvStd with " + threads);
            }
            for (float v : one.y()) {
                assertTrue(Float.isFinite(v), name + ": finite outputs");
            }
        }
    }

    /**
     * Short rows go through a pipeline over rows (the statistics of row t with the normalization of
     * row t - {@link RowNorm#SHORT_LAG}): the results are those of the passes taken row by row, bit
     * for bit, for fewer rows than the lag and more, with and without a bias (the unfused path), and
     * with rows holding an infinity or a NaN. Layer norm's row-by-row passes are the one-pass
     * statistics ({@link Moments#runShift}, {@link RowKernels#sumAndSquaresShifted},
     * {@link Moments#mergeRunOnePass}) and the mean applied as its float32 rounding plus the rest;
     * one of its rows has a first vector far from its mean (the two-pass redo).
     */
    @ParameterizedTest(name = "{0} {1} rows x {2}, bias {3}")
    @MethodSource("shortRowShapes")
    void shortRowsEqualRowByRow(StatMode mode, int rows, int cols, boolean bias) {
        String name = mode + " short " + rows + "x" + cols + bias;
        float[] x = data(name, rows * cols, 0.5);
        if (rows > 4) {
            x[2 * cols + 1] = Float.POSITIVE_INFINITY;
            x[3 * cols] = Float.NaN;
            for (int i = 0; i < Math.min(cols, Moments.SHIFT_VALUES); i++) {
                x[4 * cols + i] += 500f;
            }
        }
        assertRowByRow(name, mode, rows, cols, true, bias, x);
    }

    static Stream<Arguments> shortRowShapes() {
        return Stream.of(StatMode.RMS, StatMode.MEAN_VAR).flatMap(mode -> Stream.of(
                Arguments.of(mode, 1, 128, false), Arguments.of(mode, RowNorm.SHORT_LAG, 72, false),
                Arguments.of(mode, RowNorm.SHORT_LAG + 1, 200, true), Arguments.of(mode, 100, 128, false),
                Arguments.of(mode, 37, RowNorm.SHORT_ROW, true),
                // The shortest rows that take this path: 16 is a power of two (RowKernels.smallRows).
                Arguments.of(mode, 50, RowNorm.TINY_ROW + 1, false)));
    }

    /**
     * Rows shorter than {@link RowNorm#TINY_ROW} (group norm of (N, C) data with a few channels per
     * group, or of channels-first data with a few values per group) take their statistics in double
     * precision ({@code RowNorm.Call.tinyRows}): Y, Mean and InvStd within a few float32 roundings of
     * a float64 oracle (the statistics rounded once, then the four roundings of the normalization: 8
     * u of the terms), also around a common offset of 1e4 (a plain float32 E[x²] - E[x]² would lose
     * every digit there), with a scale and bias per channel or none; the same bits on 1, 2 and 3
     * threads (one shape has enough rows to split between threads at a row that does not start a
     * sample) and with either kernel set; a row holding a NaN comes out NaN, one holding an
     * infinity NaN (RMS norm: NaN where the infinity was, zeros elsewhere).
     *
     * <p>Rows of 2, 4, ..., 64 values with one affine entry each ({@link RowKernels#smallRows}) take
     * their statistics in float32 from the row's first value, through a halving tree of log2(c)
     * levels, so their bounds add that tree's error: the shifted sum's at most (log2(c) + 1) u of
     * the sum of |x - x0| (each value passes log2(c) additions, plus the shift's rounding), which
     * moves the mean and, through it, every xhat by at most that over c (times InvStd); and a
     * relative (log2(c) / 2 + 3) u on InvStd (the squares' tree, halved by the square root, and the
     * roundings of the variance, the epsilon, the root and the division).
     */
    @ParameterizedTest(name = "{0} {1} x {2} x {3} in {4} groups, offset {5}, affine {6}")
    @MethodSource("tinyRowShapes")
    void tinyRowsMatchFloat64(StatMode mode, int outer, int cpg, int spatial, int groups, double offset,
            boolean affine) {
        String name = mode + " tiny " + outer + "x" + cpg + "x" + spatial + "/" + groups + " " + offset + " " + affine;
        int rows = outer * groups;
        int len = cpg * spatial;
        int channels = cpg * groups;
        boolean bias = affine && mode != StatMode.RMS;
        RowNormPlan p = plan(rows, len, mode, groups, cpg, spatial, affine, bias);
        float[] x = data(name, rows * len, offset);
        float[] w = affine ? data(name + "w", channels, 1) : null;
        float[] b = bias ? data(name + "b", channels, 0) : null;
        x[len + 1] = Float.POSITIVE_INFINITY;
        x[3 * len] = Float.NaN;
        Out first = null;
        for (RowKernels k : kernels()) {
            for (int threads = 1; threads <= 3; threads++) {
                Out got = run(k, threads, p, x, w, b);
                if (first == null) {
                    first = got;
                } else {
                    assertArrayEquals(first.y(), got.y(), name + " " + k.name() + " Y on " + threads + " threads");
                    assertArrayEquals(first.mean(), got.mean(), name + " " + k.name() + " Mean");
                    assertArrayEquals(first.inv(), got.inv(), name + " " + k.name() + " InvStd");
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            int off = r * len;
            if (r == 1 || r == 3) {
                for (int i = 0; i < len; i++) {
                    // RMS norm of a row with an infinity: x * rsqrt(inf) = 0 for the finite values (as
                    // PyTorch's x * rsqrt(mean(x^2) + eps)); everything else NaN.
                    boolean zero = mode == StatMode.RMS && r == 1 && i != 1;
                    float y = first.y()[off + i];
                    assertTrue(zero ? y == 0f : Float.isNaN(y), name + ": row " + r + " holds a non-finite value: Y["
                            + i + "] = " + y);
                }
                continue;
            }
            double mu = 0;
            for (int i = 0; i < len; i++) {
                mu += x[off + i];
            }
            mu = mode == StatMode.RMS ? 0 : mu / len;
            double var = 0;
            for (int i = 0; i < len; i++) {
                var += (x[off + i] - mu) * (x[off + i] - mu);
            }
            var /= len;
            double inv = mode == StatMode.MEAN_VAR_EPS_OUTSIDE ? 1 / (Math.sqrt(var) + 1e-5) : 1 / Math.sqrt(var + 1e-5);
            double u = 0x1p-24;
            // The float32 statistics of RowKernels.smallRows (see above); 0 for the double ones.
            double levels = Math.log(len) / Math.log(2);
            boolean float32 = spatial == 1 && len >= 2 && len <= RowKernels.SMALL_ROW_MAX && Integer.bitCount(len) == 1;
            double shifted = 0;
            for (int i = 0; i < len && float32 && mode != StatMode.RMS; i++) {
                shifted += Math.abs(x[off + i] - x[off]);
            }
            double meanSlack = (levels + 1) * u * shifted / len;
            double invSlack = float32 ? (levels / 2 + 3) * u * inv : 4 * u * inv;
            assertEquals(inv, first.inv()[r], invSlack, name + " InvStd[" + r + "]");
            if (mode != StatMode.RMS) {
                assertEquals(mu, first.mean()[r], u * Math.abs(mu) + meanSlack, name + " Mean[" + r + "]");
            }
            for (int i = 0; i < len; i++) {
                int e = (r % groups) * cpg + i / spatial;
                double xhat = (x[off + i] - mu) * inv;
                double ws = w == null ? 1 : Math.abs(w[e]);
                double scaled = xhat * (w == null ? 1 : w[e]);
                double ref = scaled + (b == null ? 0 : b[e]);
                double terms = Math.abs(scaled) + (b == null ? 0 : Math.abs(b[e]));
                double slack = float32 ? (levels / 2 + 3) * u * Math.abs(scaled) + meanSlack * inv * ws : 0;
                assertEquals(ref, first.y()[off + i], 8 * u * terms + slack + 1e-30,
                        name + " Y[" + r + ", " + i + "]");
            }
        }
    }

    /**
     * Rows of {@link RowKernels#smallRows} whose squares pass float32's range (values near 1e19: a
     * square is 1e38, a row's sum of squares more than the largest float) while the variance does
     * not: such a row must go the double way ({@code shortRows}) and come out normalized, not zero
     * (an infinite sum of squares would give InvStd 0); the same bits with any thread count and
     * either kernel set. Oracle: the float64 normalization, within 1e-5 (float32 InvStd).
     */
    @ParameterizedTest(name = "{0} rows of {1}")
    @MethodSource("overflowShapes")
    void smallRowsPastFloat32Range(StatMode mode, int cols) {
        int rows = 50;
        String name = mode + " overflow " + cols;
        RowNormPlan p = plan(rows, cols, mode, 1, cols, 1, false, false);
        float[] x = data(name, rows * cols, 0);
        for (int i = 0; i < x.length; i++) {
            x[i] *= 1e19f;
        }
        Out first = null;
        for (RowKernels k : kernels()) {
            for (int threads = 1; threads <= 3; threads += 2) {
                Out got = run(k, threads, p, x, null, null);
                if (first == null) {
                    first = got;
                } else {
                    assertArrayEquals(first.y(), got.y(), name + " " + k.name() + " Y on " + threads + " threads");
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            double mu = 0;
            for (int i = 0; i < cols; i++) {
                mu += mode == StatMode.RMS ? 0 : x[r * cols + i] / (double) cols;
            }
            double var = 0;
            for (int i = 0; i < cols; i++) {
                var += (x[r * cols + i] - mu) * (x[r * cols + i] - mu) / cols;
            }
            for (int i = 0; i < cols; i++) {
                double ref = (x[r * cols + i] - mu) / Math.sqrt(var);
                assertEquals(ref, first.y()[r * cols + i], 1e-5 * Math.max(1, Math.abs(ref)),
                        name + " Y[" + r + ", " + i + "]");
            }
        }
    }

    static Stream<Arguments> overflowShapes() {
        return Stream.of(StatMode.RMS, StatMode.MEAN_VAR).flatMap(
                mode -> Stream.of(Arguments.of(mode, 4), Arguments.of(mode, 8), Arguments.of(mode, 16), Arguments.of(mode, 32), Arguments.of(mode, 64)));
    }

    static Stream<Arguments> tinyRowShapes() {
        return Stream.of(StatMode.RMS, StatMode.MEAN_VAR, StatMode.MEAN_VAR_EPS_OUTSIDE).flatMap(mode -> Stream.of(
                Arguments.of(mode, 40, 2, 1, 8, 0.5, true), Arguments.of(mode, 9, 7, 1, 3, 0.5, true),
                Arguments.of(mode, 5, RowNorm.TINY_ROW - 1, 1, 2, 1e4, true), Arguments.of(mode, 30, 4, 1, 32, 1e4, true),
                Arguments.of(mode, 3001, 5, 1, 7, 0.5, true), Arguments.of(mode, 8, 2, 2, 3, 0.5, true),
                Arguments.of(mode, 50, 7, 1, 1, 0.5, false), Arguments.of(mode, 20, 3, 4, 2, 1e4, false),
                // RowKernels.smallRows: every row length, a split between threads inside a sample,
                // rows after the last whole vector, a sample narrower than a vector, no affine.
                Arguments.of(mode, 1001, 2, 1, 3, 0.5, true), Arguments.of(mode, 777, 8, 1, 5, 1e4, true),
                Arguments.of(mode, 333, 16, 1, 2, 0.5, true), Arguments.of(mode, 101, 16, 1, 3, 1e4, false),
                Arguments.of(mode, 67, 8, 1, 1, 0.5, true), Arguments.of(mode, 41, 16, 1, 2, 1e4, true),
                Arguments.of(mode, 9, 4, 1, 1, 0.5, false), Arguments.of(mode, 203, 32, 1, 3, 1e4, true),
                Arguments.of(mode, 45, 32, 1, 1, 0.5, false), Arguments.of(mode, 150, 64, 1, 2, 1e4, true),
                Arguments.of(mode, 21, 64, 1, 1, 0.5, false),
                // Rows of 2, 4 and 8 values in blocks of a vector's count of rows (value j of each row in
                // vector j): full-mantissa values, so a regrouped sum changes bits; the blocks after the
                // first start wherever the rows holding an infinity and a NaN left them.
                Arguments.of(mode, 70, 4, 1, 32, 0.5, true), Arguments.of(mode, 23, 2, 1, 64, 0.5, true),
                Arguments.of(mode, 45, 8, 1, 16, 0.5, true)));
    }

    /**
     * Layer and RMS norm rows of more than one run ({@code RowNorm.Call.longRows}: a row's runs,
     * then its normalization): the results of the passes taken row by row ({@link #assertRowByRow}),
     * bit for bit, on widths whose last run is short, half a run, longer, and a whole run (rows of
     * several chunks: {@link #sameBitsWithAnyThreadCount}, against the chunks split over threads).
     */
    @ParameterizedTest(name = "{0} {1} rows x {2}, bias {3}")
    @MethodSource("longRowShapes")
    void longRowsEqualRowByRow(StatMode mode, int rows, int cols, boolean bias) {
        String name = mode + " long " + rows + "x" + cols + bias;
        assertRowByRow(name, mode, rows, cols, true, bias, data(name, rows * cols, 0.5));
    }

    static Stream<Arguments> longRowShapes() {
        int run = RowKernels.RUN;
        int half = run / 2;
        return Stream.of(StatMode.RMS, StatMode.MEAN_VAR).flatMap(mode -> Stream.of(
                Arguments.of(mode, 5, run + 1, true), Arguments.of(mode, 4, run + half, false),
                Arguments.of(mode, 5, run + half + 1, true), Arguments.of(mode, 3, 2 * run, true),
                Arguments.of(mode, 6, 3 * run - 17, false), Arguments.of(mode, 1, 4 * run + 7, true)));
    }

    /**
     * Layer and RMS norm with neither scale nor bias take a kernel with one scale (1) and bias
     * (-0.0) for the row instead of the identity arrays: the same bits as the row-by-row passes
     * with the identity scale, on short rows and on rows of several runs.
     */
    @ParameterizedTest(name = "{0} {1} rows x {2}")
    @MethodSource("noAffineShapes")
    void noAffineRowsEqualRowByRow(StatMode mode, int rows, int cols) {
        String name = mode + " no affine " + rows + "x" + cols;
        assertRowByRow(name, mode, rows, cols, false, false, data(name, rows * cols, 0.5));
    }

    static Stream<Arguments> noAffineShapes() {
        return Stream.of(StatMode.RMS, StatMode.MEAN_VAR).flatMap(mode -> Stream.of(
                Arguments.of(mode, RowNorm.SHORT_LAG + 3, 200), Arguments.of(mode, 5, RowKernels.RUN + 1),
                Arguments.of(mode, 3, 2 * RowKernels.RUN), Arguments.of(mode, 4, 3 * RowKernels.RUN - 17)));
    }

    /**
     * Asserts that layer norm (scale per column and bias, each if asked) or RMS norm of {@code x}
     * gives the results of the passes taken row by row, bit for bit: each run's statistics in one pass
     * ({@link Moments#runShift}, {@link RowKernels#sumAndSquaresShifted}, with the two-pass redo of
     * {@link Moments#mergeRunOnePass}; RMS: {@link Moments#runSumOfSquares}) merged in order (a row
     * of at most one chunk), the mean applied as its float32 rounding plus the rest, and one
     * normalization of the whole row.
     */
    private static void assertRowByRow(String name, StatMode mode, int rows, int cols, boolean scale, boolean bias,
            float[] x) {
        assertTrue(cols <= RowNorm.CHUNK, "the oracle merges the runs of one chunk");
        RowNormPlan p = plan(rows, cols, mode, 1, cols, 1, scale, bias);
        float[] w = scale ? data(name + "w", cols, 1) : RowNorm.ones(cols);
        float[] b = bias ? data(name + "b", cols, 0) : null;
        for (RowKernels k : kernels()) {
            Out got = run(k, 1, p, x, w, b);
            float[] y = new float[x.length];
            for (int r = 0; r < rows; r++) {
                int off = r * cols;
                Moments m = new Moments();
                double sumOfSquares = 0;
                for (int q = 0; q < cols; q += RowKernels.RUN) {
                    int n = Math.min(RowKernels.RUN, cols - q);
                    if (mode == StatMode.RMS) {
                        sumOfSquares += Moments.runSumOfSquares(k.sumSquares(x, off + q, n), x, off + q, n);
                    } else {
                        float runShift = Moments.runShift(x, off + q, n);
                        m.mergeRunOnePass(k, x, off + q, n, runShift,
                                k.sumAndSquaresShifted(x, off + q, n, runShift), k.squares);
                    }
                }
                float shift = 0f;
                float rest = 0f;
                float inv;
                if (mode == StatMode.RMS) {
                    inv = RowKernels.invStd(mode, sumOfSquares / cols, 1e-5f);
                } else {
                    inv = RowKernels.invStd(mode, m.variance(), 1e-5f);
                    shift = Float.isFinite((float) m.mean) ? (float) m.mean : 0f;
                    rest = (float) (m.mean - shift);
                    assertEquals(Float.floatToIntBits((float) m.mean), Float.floatToIntBits(got.mean()[r]),
                            name + " " + k.name() + " Mean of row " + r);
                }
                k.normalizeAffine(x, y, off, cols, shift, rest, inv, w, b, 0);
                assertEquals(Float.floatToIntBits(inv), Float.floatToIntBits(got.inv()[r]),
                        name + " " + k.name() + " InvStd of row " + r);
            }
            assertArrayEquals(y, got.y(), name + " " + k.name() + " Y");
        }
    }

    /** @return the scalar kernels, and the Vector API kernels when this JVM has the module */
    static RowKernels[] kernels() {
        RowKernels v = RowKernels.vectorOrNull();
        return v == null ? new RowKernels[] {RowKernels.scalar()} : new RowKernels[] {RowKernels.scalar(), v};
    }
}
