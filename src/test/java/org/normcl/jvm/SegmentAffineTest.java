package org.normcl.jvm;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.reference.Reference64;
import org.normcl.reference.Tolerance;

/**
 * Group and instance norm rows (one scale and bias per segment of {@code spatial} values) against
 * the float64 reference ({@link Reference64#groupNorm}), on both kernel sets and on one and two
 * threads: segments of whole runs (2048 values: every run after a row's first normalized by the
 * fused uniform kernel, {@link RowKernels#normalizeUniformSumAndSquaresNext}), segments that end
 * inside a run (1100, 3136: runs that straddle two segments take the unfused path), scales and
 * biases different for every channel, so a run given its neighbour's parameters fails.
 *
 * <p>Tolerance: the statistics are float32 runs merged in double (within a few 1e-7 relative of
 * the reference here: X is 3 + N(0, 1)), and y is a handful of float32 operations on values of
 * size up to about 6, so |error| stays within a few 1e-6; 2e-5 * (1 + |y|) leaves room, and a
 * wrong channel's scale or bias (they differ by at least 0.05) moves y by far more.
 */
class SegmentAffineTest {

    @ParameterizedTest(name = "N {0}, C {1}, G {2}, spatial {3}")
    @CsvSource({"2, 3, 3, 2048", "2, 4, 2, 2048", "2, 4, 2, 3136", "3, 6, 3, 1100", "1, 2, 1, 4096"})
    void matchesFloat64(int n, int c, int g, int spatial) {
        int cpg = c / g;
        int rows = n * g;
        int cols = cpg * spatial;
        RowNormPlan p = RowNormPlan.contiguous(rows, cols, StatMode.MEAN_VAR, 1e-5f, g, cpg, spatial, true, true);
        float[] x = RowNormDeterminismTest.data("seg" + n + "x" + c + "x" + spatial, rows * cols, 3);
        float[] w = new float[c];
        float[] b = new float[c];
        for (int ch = 0; ch < c; ch++) {
            w[ch] = 0.5f + 0.25f * ch;
            b[ch] = -1f + 0.05f * ch * ch + 0.05f;
        }
        // Rows of (N * G, (C / G) * spatial) are group norm of (N, C, spatial): per-channel parameters.
        double[] expected = Reference64.groupNorm(x, new long[] {n, c, spatial}, g, 1e-5f, w, b, false).y();
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            for (int threads : new int[] {1, 2}) {
                Parallel parallel = new Parallel(threads);
                try {
                    float[] y = new float[x.length];
                    new RowNorm(k, parallel).run(p, x, w, b, y, null, null);
                    Tolerance.assertClose(k.name() + " threads " + threads, y, expected, 2e-5, 2e-5);
                } finally {
                    parallel.shutdown();
                }
            }
        }
    }
}
