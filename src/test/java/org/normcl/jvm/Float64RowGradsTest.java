package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;

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
}
