package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.testing.Tolerances;

/**
 * Per-channel statistics on both of their paths (contiguous segments, and channels as columns
 * when the segments are short, as in a 1-D batch norm's (N, C)), against a double-precision
 * reference and across thread counts; and the edge cases of the float32 runs: infinities,
 * and sums that overflow float32 but not the result.
 */
class ChannelAndEdgeCaseTest {

    /** Channel statistics and apply with the given kernels and threads. */
    record Out(float[] mean, float[] meanLo, float[] inv, float[] rm, float[] rv, float[] y) {
    }

    static Out channel(RowKernels k, int threads, ChannelPlan p, float[] x, float[] w, float[] b) {
        Parallel parallel = new Parallel(threads);
        try {
            int c = (int) p.channels();
            Out o = new Out(new float[c], new float[c], new float[c], new float[c], new float[c], new float[x.length]);
            float[] rmIn = new float[c];
            float[] rvIn = new float[c];
            java.util.Arrays.fill(rvIn, 1f);
            ChannelNorm cn = new ChannelNorm(k, parallel, new ArrayPool(1L << 26));
            cn.stats(p, x, o.mean(), o.meanLo(), o.inv(), new RunningUpdate(0.1f, true), rmIn, rvIn, o.rm(), o.rv());
            cn.apply(p, x, o.mean(), o.meanLo(), o.inv(), w, b, o.y());
            return o;
        } finally {
            parallel.shutdown();
        }
    }

    /**
     * {@link RowKernels#mergeColumnBlock} against {@link ChannelNorm#mergeColumn}, column by column,
     * to the last bit of the double moments (the float32 outputs of the test below would hide a
     * difference of an ulp): blocks of 40 and 64 rows, first and later blocks, sums that take the
     * plain path and a few that cancel or are not finite, and a mean so far that is infinite.
     */
    @Test
    void mergeColumnBlockGivesTheScalarMergeBits() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        int n = 203;
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            for (int rows : new int[] {40, 64}) {
                for (double count : new double[] {0, 128, 960}) {
                    float[] sum = new float[n];
                    float[] squares = new float[n];
                    double[] mean = new double[n + 3];
                    double[] m2 = new double[n + 3];
                    for (int j = 0; j < n; j++) {
                        double mu = r.nextGaussian() * 0.3;
                        sum[j] = (float) (mu * rows);
                        squares[j] = (float) (rows * (1 + r.nextDouble()) + mu * mu * rows);
                        mean[j + 3] = r.nextGaussian();
                        m2[j + 3] = count * (1 + r.nextDouble());
                    }
                    sum[17] = 40f * rows; // cancels: the one-pass M2 is refused
                    squares[50] = Float.POSITIVE_INFINITY;
                    sum[51] = Float.NaN;
                    mean[120 + 3] = Double.POSITIVE_INFINITY;
                    double f = rows / (count + rows);
                    double g = count * rows / (count + rows);
                    double[] expMean = mean.clone();
                    double[] expM2 = m2.clone();
                    for (int j = 0; j < n; j++) {
                        scalarMerge(sum[j], squares[j], rows, count, f, g, expMean, expM2, j + 3);
                    }
                    for (int j = 0; j < n; j++) {
                        j = k.mergeColumnBlock(sum, squares, j, n, rows, count, f, g, mean, m2, 3);
                        if (j == n) {
                            break;
                        }
                        scalarMerge(sum[j], squares[j], rows, count, f, g, mean, m2, j + 3);
                    }
                    String what = k.name() + " rows " + rows + " count " + count;
                    assertArrayEquals(bits(expMean), bits(mean), what + " mean");
                    assertArrayEquals(bits(expM2), bits(m2), what + " M2");
                }
            }
        }
    }

    /** The column path's scalar merge of one column (the plain path, or NaN moments where it is refused). */
    private static void scalarMerge(float sum, float squares, int rows, double count, double f, double g,
            double[] mean, double[] m2, int c) {
        double rq = Moments.onePassM2(sum, squares, rows);
        double rm = Double.isNaN(rq) ? Double.NaN : (double) sum / rows;
        ChannelNorm.mergeColumn(mean, m2, c, count, f, g, rm, rq);
    }

    private static long[] bits(double[] a) {
        long[] b = new long[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = Double.doubleToRawLongBits(a[i]);
        }
        return b;
    }

    /**
     * The column path (inner 1) merges groups of columns on the Vector API
     * ({@link RowKernels#mergeColumnBlock}) and the rest one by one; the scalar kernels merge every
     * column one by one. Both sum each column's block in row order, so every output must have the
     * same bits. The data sends columns down each branch: ordinary ones, a column whose first 16
     * values (its shift) sit far from the rest (every block is redone in two passes), one with a
     * NaN and one with an infinity in the second block, and channel counts that end in a partial
     * group.
     */
    @ParameterizedTest(name = "outer {0}, channels {1}")
    @CsvSource({"1000, 37", "200, 8", "130, 3", "700, 1030"})
    void columnPathMergesGiveTheScalarBits(int outer, int channels) {
        ChannelPlan p = new ChannelPlan(outer, channels, 1, StatMode.MEAN_VAR, 1e-5f);
        float[] x = RowNormDeterminismTest.data("cols" + outer + "x" + channels, outer * channels, 10);
        for (int r = 0; r < 16; r++) {
            x[r * channels] += 40; // column 0: its shift far from its other values
        }
        if (channels > 2) {
            x[70 * channels + 1] = Float.NaN;
            x[90 * channels + 2] = Float.POSITIVE_INFINITY;
        }
        float[] w = RowNormDeterminismTest.data("colsw", channels, 1);
        float[] b = RowNormDeterminismTest.data("colsb", channels, 0);
        RowKernels[] kernels = RowNormDeterminismTest.kernels();
        Out scalar = channel(kernels[0], 2, p, x, w, b);
        for (RowKernels k : kernels) {
            Out o = channel(k, 2, p, x, w, b);
            assertArrayEquals(scalar.mean(), o.mean(), k.name() + " mean");
            assertArrayEquals(scalar.meanLo(), o.meanLo(), k.name() + " meanLo");
            assertArrayEquals(scalar.inv(), o.inv(), k.name() + " inv");
            assertArrayEquals(scalar.rm(), o.rm(), k.name() + " running mean");
            assertArrayEquals(scalar.rv(), o.rv(), k.name() + " running var");
        }
        if (channels > 2) {
            assertTrue(Float.isNaN(scalar.mean()[1]), "the NaN column's mean");
        }
    }

    @ParameterizedTest(name = "outer {0}, channels {1}, inner {2}")
    @CsvSource({"300, 7, 1", "100, 5, 3", "64, 2, 63", "4, 3, 64", "3, 2, 5000", "2, 1, 200000", "1000, 64, 1",
        "700, 1030, 1"})
    void channelStatisticsMatchFloat64AndThreads(int outer, int channels, int inner) {
        ChannelPlan p = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
        float[] x = RowNormDeterminismTest.data("ch" + outer + "x" + channels + "x" + inner, outer * channels * inner,
                1e3);
        float[] w = RowNormDeterminismTest.data("chw", channels, 1);
        float[] b = RowNormDeterminismTest.data("chb", channels, 0);
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            Out one = channel(k, 1, p, x, w, b);
            for (int threads : new int[] {2, 3}) {
                Out other = channel(k, threads, p, x, w, b);
                assertArrayEquals(one.mean(), other.mean(), k.name() + " mean with " + threads + " threads");
                assertArrayEquals(one.inv(), other.inv(), k.name() + " inv with " + threads + " threads");
                assertArrayEquals(one.rv(), other.rv(), k.name() + " running var with " + threads + " threads");
                assertArrayEquals(one.meanLo(), other.meanLo(), k.name() + " meanLo with " + threads + " threads");
                assertArrayEquals(one.y(), other.y(), k.name() + " Y with " + threads + " threads");
            }
            for (int c = 0; c < channels; c++) {
                double s = 0;
                int n = outer * inner;
                for (int o = 0; o < outer; o++) {
                    for (int i = 0; i < inner; i++) {
                        s += x[(o * channels + c) * inner + i];
                    }
                }
                double mean = s / n;
                double m2 = 0;
                for (int o = 0; o < outer; o++) {
                    for (int i = 0; i < inner; i++) {
                        double d = x[(o * channels + c) * inner + i] - mean;
                        m2 += d * d;
                    }
                }
                double var = m2 / n;
                double inv = 1 / Math.sqrt(var + 1e-5f);
                // Mean within 32u of (|mean| + sigma), InvStd within 64u relative (the accuracy tests' bounds).
                assertEquals(mean, one.mean()[c], 32 * 0x1p-24 * (Math.abs(mean) + Math.sqrt(var)), k.name() + " mean "
                        + c);
                assertEquals(mean, (double) one.mean()[c] + one.meanLo()[c], 32 * 0x1p-24 * Math.sqrt(var) + 1e-12
                        * Math.abs(mean), k.name() + " mean + meanLo " + c);
                assertEquals(inv, one.inv()[c], 64 * 0x1p-24 * inv, k.name() + " inv " + c);
                double unbiased = m2 / (n - 1);
                double rvRef = 0.9 * 1 + 0.1 * unbiased;
                assertEquals(rvRef, one.rv()[c], Tolerances.runningVar(var, 1, rvRef), k.name() + " running var");
                // Y: every element of the channel, within the accuracy tests' bound (Tolerances.element).
                int count = 0;
                double[] yRef = new double[n];
                double[] bound = new double[n];
                float[] got = new float[n];
                for (int o = 0; o < outer; o++) {
                    for (int i = 0; i < inner; i++) {
                        int at = (o * channels + c) * inner + i;
                        double xhat = (x[at] - mean) * inv;
                        yRef[count] = xhat * w[c] + b[c];
                        bound[count] = Tolerances.element(xhat, Math.abs(mean) * inv, w[c], b[c], yRef[count]);
                        got[count++] = one.y()[at];
                    }
                }
                Tolerances.assertWithin(k.name() + " Y of channel " + c, got, yRef, bound);
            }
        }
    }

    @Test
    void infinityInAColumnChannelStaysInItsChannel() {
        // (N, C) = (500, 40): channels are columns; +Inf in channel 3 (row 333), NaN in channel 7.
        ChannelPlan p = new ChannelPlan(500, 40, 1, StatMode.MEAN_VAR, 1e-5f);
        float[] x = RowNormDeterminismTest.data("colinf", 500 * 40, 2);
        x[333 * 40 + 3] = Float.POSITIVE_INFINITY;
        x[100 * 40 + 7] = Float.NaN;
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            for (int threads : new int[] {1, 2}) {
                Out o = channel(k, threads, p, x, null, null);
                for (int c = 0; c < 40; c++) {
                    if (c == 3) {
                        assertEquals(Float.POSITIVE_INFINITY, o.mean()[c], k.name() + " mean of the channel with +Inf");
                        assertTrue(Float.isNaN(o.inv()[c]), "its InvStd is NaN");
                    } else if (c == 7) {
                        assertTrue(Float.isNaN(o.mean()[c]) && Float.isNaN(o.inv()[c]), "NaN channel");
                    } else {
                        assertTrue(Float.isFinite(o.mean()[c]) && Float.isFinite(o.inv()[c]), "channel " + c);
                    }
                }
            }
        }
    }

    @Test
    void infinityInALongRowStaysInItsRow() {
        int cols = 100_000; // several chunks: the split path with 2 threads
        RowNormPlan p = RowNormPlan.contiguous(2, cols, StatMode.MEAN_VAR, 1e-5f, 1, cols, 1, false, false);
        float[] x = RowNormDeterminismTest.data("inf", 2 * cols, 0);
        x[cols + 77_777] = Float.POSITIVE_INFINITY;
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            for (int threads : new int[] {1, 2}) {
                RowNormDeterminismTest.Out o = RowNormDeterminismTest.run(k, threads, p, x, null, null);
                assertTrue(Float.isFinite(o.mean()[0]) && Float.isFinite(o.inv()[0]), "row 0 is finite");
                assertEquals(Float.POSITIVE_INFINITY, o.mean()[1], k.name() + " mean of the row with +Inf");
                assertTrue(Float.isNaN(o.inv()[1]), k.name() + " InvStd of the row with +Inf is NaN");
                for (int i = 0; i < cols; i++) {
                    assertTrue(Float.isFinite(o.y()[i]), "row 0 outputs finite at " + i);
                    assertTrue(Float.isNaN(o.y()[cols + i]), "row 1 outputs NaN at " + i);
                }
            }
        }
    }

    @Test
    void float32OverflowInARunIsRedoneInDouble() {
        // 1e19^2 = 1e38 fits float32, but a run's sum of squares does not: the run is redone in
        // double, and the mean square (1e38) is finite again.
        int cols = 3000;
        float[] x = new float[2 * cols];
        java.util.Arrays.fill(x, 1e19f);
        RowNormPlan rms = RowNormPlan.contiguous(2, cols, StatMode.RMS, 1e-5f, 1, cols, 1, false, false);
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            RowNormDeterminismTest.Out o = RowNormDeterminismTest.run(k, 2, rms, x, null, null);
            assertEquals(1e-19f, o.inv()[0], 1e-25f, k.name() + " inverse RMS");
            assertEquals(1f, o.y()[5], 1e-6f, k.name() + " y");
        }
        // Values of +-3e38 around a shift of 3e38: (x - shift) overflows float32 in the run's sum.
        float[] z = new float[cols];
        for (int i = 0; i < cols; i++) {
            z[i] = i % 2 == 0 ? 3e38f : -3e38f;
        }
        RowNormPlan ln = RowNormPlan.contiguous(1, cols, StatMode.MEAN_VAR, 1e-5f, 1, cols, 1, false, false);
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            RowNormDeterminismTest.Out o = RowNormDeterminismTest.run(k, 1, ln, z, null, null);
            assertEquals(0f, o.mean()[0], k.name() + " mean of +-3e38");
            assertEquals(0f, o.inv()[0], k.name() + " InvStd of a variance of 9e76 (infinite in float32)");
        }
    }

    /**
     * Rows of one value (instance norm of (N, C) data): each value's mean is the value, its variance
     * 0, so y is {@code 0 * w + b} (b, or NaN where w is infinite), the inverse deviation
     * {@code 1 / sqrt(eps)} in float64 rounded once; a value that is not finite has that mean and a
     * NaN y. On 1 and 3 threads, with and without scale and bias, against float64.
     */
    @Test
    void singleValueRowsNormalizeToTheBias() {
        int outer = 700;
        int channels = 96;
        int n = outer * channels;
        float eps = 1e-5f;
        float[] x = RowNormDeterminismTest.data("one", n, 50);
        x[3] = Float.NaN;
        x[100] = Float.POSITIVE_INFINITY;
        x[200] = -0.0f;
        x[300] = 3e38f;
        float[] w = RowNormDeterminismTest.data("one w", channels, 1);
        float[] b = RowNormDeterminismTest.data("one b", channels, 1);
        w[5] = Float.POSITIVE_INFINITY;
        double inv = (float) (1 / Math.sqrt((double) eps));
        RowNormPlan p = RowNormPlan.contiguous(n, 1, StatMode.MEAN_VAR, eps, channels, 1, 1, true, true);
        for (int threads : new int[] {1, 3}) {
            for (boolean affine : new boolean[] {true, false}) {
                float[] y = new float[n];
                float[] mean = new float[n];
                float[] invOut = new float[n];
                Parallel parallel = new Parallel(threads);
                try {
                    FastFloatKernels.rowNorm(parallel, p, x, affine ? w : null, affine ? b : null, y, mean, invOut);
                } finally {
                    parallel.shutdown();
                }
                for (int i = 0; i < n; i++) {
                    int c = i % channels;
                    String what = "threads " + threads + (affine ? " affine" : "") + " value " + i;
                    assertEquals(x[i], mean[i], 0.0, what + " mean");
                    if (!Float.isFinite(x[i]) || (affine && Float.isInfinite(w[c]))) {
                        assertTrue(Float.isNaN(y[i]), what + " y of a non-finite value or scale: NaN, got " + y[i]);
                        continue;
                    }
                    assertEquals(inv, invOut[i], 0.0, what + " inverse deviation");
                    assertEquals(affine ? b[c] : 0.0, y[i], 0.0, what + " y");
                }
            }
        }
    }
}
