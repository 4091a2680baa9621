package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * {@link DoubleKernels#rowGrads}, the float64 layer/RMS norm backward, on shapes of several row
 * blocks (the other tests' float64 cases have one): its parameter-gradient sums against plain sums
 * over the rows, within the bound of any summation order; the same bits on 1, 2 and 3 threads;
 * and the same sums with dx as without it (the fused pass and {@code affineGrad} alone).
 */
class Float64RowGradsTest {
    private static final double U = 0x1p-53;

    @Test
    void sumsMatchPlainSumsAndDoNotDependOnThreadsOrDx() {
        for (int[] shape : new int[][] {{200, 37}, {1000, 16}, {65, 1031}}) {
            for (boolean rms : new boolean[] {false, true}) {
                check(shape[0], shape[1], rms);
            }
        }
    }

    private static void check(int rows, int n, boolean rms) {
        Random rnd = new Random(rows * 31L + n);
        double[] x = new double[rows * n];
        double[] dy = new double[rows * n];
        double[] scale = new double[n];
        double[] mean = new double[rows];
        double[] inv = new double[rows];
        for (int i = 0; i < x.length; i++) {
            x[i] = 3 + rnd.nextGaussian();
            dy[i] = rnd.nextGaussian();
        }
        for (int c = 0; c < n; c++) {
            scale[c] = 1 + 0.1 * rnd.nextGaussian();
        }
        for (int r = 0; r < rows; r++) {
            mean[r] = 3 + 0.01 * rnd.nextGaussian();
            inv[r] = 1 + 0.1 * rnd.nextDouble();
        }
        String what = rows + "x" + n + (rms ? " rms" : " layer");

        double[][] withDx = run(1, rows, n, rms, dy, x, scale, mean, inv, true);
        for (int threads : new int[] {2, 3}) {
            double[][] other = run(threads, rows, n, rms, dy, x, scale, mean, inv, true);
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(withDx[i], other[i], what + ": result " + i + " on " + threads + " threads");
            }
        }
        double[][] alone = run(2, rows, n, rms, dy, x, scale, mean, inv, false);
        assertArrayEquals(withDx[1], alone[1], what + ": dScale with and without dx");
        assertArrayEquals(withDx[2], alone[2], what + ": dBias with and without dx");

        for (int c = 0; c < n; c++) {
            double s = 0;
            double b = 0;
            double sAbs = 0;
            double bAbs = 0;
            for (int r = 0; r < rows; r++) {
                int i = r * n + c;
                double term = dy[i] * ((x[i] - (rms ? 0 : mean[r])) * inv[r]);
                s += term;
                b += dy[i];
                sAbs += Math.abs(term);
                bAbs += Math.abs(dy[i]);
            }
            // Two summation orders, each within (rows - 1) u sum|terms| of the exact sum; the terms
            // themselves round differently by a few u.
            assertTrue(Math.abs(withDx[1][c] - s) <= 2 * (rows + 4) * U * sAbs, what + ": dScale[" + c + "]");
            assertTrue(Math.abs(withDx[2][c] - b) <= 2 * rows * U * bAbs, what + ": dBias[" + c + "]");
        }
    }

    /** @return dx (null unless asked for), dScale, dBias */
    private static double[][] run(int threads, int rows, int n, boolean rms, double[] dy, double[] x, double[] scale,
            double[] mean, double[] inv, boolean withDx) {
        Parallel parallel = new Parallel(threads);
        try {
            double[] dx = withDx ? new double[rows * n] : null;
            double[] dScale = new double[n];
            double[] dBias = new double[n];
            DoubleKernels.rowGrads(parallel, new ArrayPool(1 << 20), rows, n, rms, dy, x, scale, mean, inv, dx,
                    dScale, dBias, null);
            return new double[][] {dx, dScale, dBias};
        } finally {
            parallel.shutdown();
        }
    }

    /**
     * Group and instance norm of channels-first float64 data: dX, dScale and dBias of the fused call
     * are the bits of {@code rowNormBackward} then {@code affineGrad}, on 1 and 3 threads, on shapes
     * with one and several channels per group.
     */
    @Test
    void channelGradsAlongTheRowsAreTheTwoCallsBits() {
        int[][] shapes = {{6, 8, 300, 2}, {3, 12, 4096, 12}, {40, 4, 16, 4}}; // N, C, spatial, groups
        for (int[] sh : shapes) {
            int outer = sh[0];
            int channels = sh[1];
            int spatial = sh[2];
            int groups = sh[3];
            int cpg = channels / groups;
            int n = outer * channels * spatial;
            int rows = outer * groups;
            Random rnd = new Random(n);
            double[] x = new double[n];
            double[] dy = new double[n];
            for (int i = 0; i < n; i++) {
                x[i] = 1e3 + 3 * rnd.nextGaussian();
                dy[i] = rnd.nextGaussian();
            }
            double[] scale = new double[channels];
            for (int c = 0; c < channels; c++) {
                scale[c] = 1 + 0.1 * rnd.nextGaussian();
            }
            double[] mean = new double[rows];
            double[] inv = new double[rows];
            for (int r = 0; r < rows; r++) {
                mean[r] = 1e3 + 0.1 * rnd.nextGaussian();
                inv[r] = 0.3 + 0.01 * rnd.nextGaussian();
            }
            RowNormPlan p = RowNormPlan.contiguous(rows, (long) cpg * spatial, StatMode.MEAN_VAR, 1e-5f, groups, cpg,
                    spatial, true, true);
            AffineGradPlan g = new AffineGradPlan(outer, channels, spatial, groups, cpg, false);
            assertTrue(DoubleKernels.fusesChannelGrads(p, g), "the fused path applies");
            for (int threads : new int[] {1, 3}) {
                Parallel parallel = new Parallel(threads);
                try {
                    double[] dx1 = new double[n];
                    double[] s1 = new double[channels];
                    double[] b1 = new double[channels];
                    DoubleKernels.rowNormBackward(parallel, p, dy, x, scale, mean, inv, dx1);
                    DoubleKernels.affineGrad(parallel, new ArrayPool(1 << 20), g, dy, x, mean, inv, s1, b1, null);
                    double[] dx2 = new double[n];
                    double[] s2 = new double[channels];
                    double[] b2 = new double[channels];
                    DoubleKernels.rowBackwardWithChannelGrads(parallel, p, dy, x, scale, mean, inv, dx2, s2, b2);
                    String what = outer + "x" + channels + "x" + spatial + "/" + groups + ", threads " + threads;
                    assertArrayEquals(dx1, dx2, what + ": dX");
                    assertArrayEquals(s1, s2, what + ": dScale");
                    assertArrayEquals(b1, b2, what + ": dBias");
                } finally {
                    parallel.shutdown();
                }
            }
        }
    }
}
