package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.normcl.BatchNorm;
import org.normcl.DType;
import org.normcl.EngineOptions;
import org.normcl.GradResult;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.RmsNorm;
import org.normcl.Shape;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.testing.Data;

/**
 * The Java backward passes' parameter gradients: the same bits on any number of threads, the same
 * bits whether computed along with dX ({@link JavaBackend#rowNormBackwardWithGrad}) or on their own
 * ({@link JavaBackward#affineGrad}); and the Vector API
 * {@link GradKernels} against the scalar ones (the same float operations elementwise, so the same
 * bits; reductions within rounding of a float64 sum).
 */
class BackwardFusionTest {

    /** dX, dScale and dBias of one backward pass on an engine of {@code threads} Java threads. */
    private static List<float[]> grads(int threads, String op, long[] dims) {
        Shape s = Shape.of(dims);
        HostTensor x = HostTensor.of(Data.gaussian(op + " x", s.intSize(), 0.5, 2), s);
        HostTensor dy = HostTensor.of(Data.gaussian(op + " dy", s.intSize(), 0.1, 1), s);
        long affine = op.equals("layer") || op.equals("rms") ? dims[dims.length - 1] : dims[1];
        HostTensor w = HostTensor.of(Data.gaussian(op + " w", (int) affine, 1, 0.5), affine);
        List<float[]> out = new ArrayList<>();
        try (NormEngine e = NormEngine.create(EngineOptions.java().withThreads(threads))) {
            GradResult g;
            switch (op) {
                case "layer":
                    g = e.layerNormBackward(LayerNorm.defaults(), dy, x, w, null);
                    break;
                case "rms":
                    g = e.rmsNormBackward(RmsNorm.defaults(), dy, x, w, null);
                    break;
                case "group":
                    g = e.groupNormBackward(GroupNorm.of(4), dy, x, w, null);
                    break;
                case "instance":
                    g = e.instanceNormBackward(InstanceNorm.defaults(), dy, x, w, null);
                    break;
                default:
                    g = e.batchNormBackward(BatchNorm.defaults().withTraining(true), dy, x, w, null, null, null);
            }
            try (g) {
                out.add(g.dx().toHost().data());
                out.add(g.dScale().toHost().data());
                if (g.dBias() != null) {
                    out.add(g.dBias().toHost().data());
                }
            }
        }
        return out;
    }

    @Test
    void gradientsAreTheSameBitsOnAnyNumberOfThreads() {
        Object[][] cases = {{"layer", new long[] {257, 1031}}, {"layer", new long[] {3000, 64}},
            {"rms", new long[] {70, 4099}}, {"layer", new long[] {129, 1024}},
            {"group", new long[] {5, 8, 30, 31}}, {"group", new long[] {900, 16}}, {"group", new long[] {1001, 8}},
            {"group", new long[] {333, 32}}, {"group", new long[] {77, 20}},
            {"instance", new long[] {3, 5, 1301}}, {"instance", new long[] {700, 6}},
            {"batch", new long[] {4, 3, 50, 61}}, {"batch", new long[] {3000, 40}}};
        for (Object[] c : cases) {
            String op = (String) c[0];
            long[] dims = (long[]) c[1];
            List<float[]> one = grads(1, op, dims);
            for (int threads : new int[] {2, 3, 7}) {
                List<float[]> many = grads(threads, op, dims);
                assertEquals(one.size(), many.size());
                for (int k = 0; k < one.size(); k++) {
                    assertArrayEquals(one.get(k), many.get(k), op + " " + Shape.of(dims) + " output " + k + " on "
                            + threads + " threads");
                }
            }
        }
    }

    @Test
    void fusedPassGivesTheBitsOfTheTwoCalls() {
        // {outer, groups, channels per group, spatial}: layer norm, short rows, long rows, spatial segments.
        int[][] layouts = {{97, 1, 300, 1}, {50, 4, 3, 1}, {5, 1, 3000, 1}, {37, 1, 2048, 1}, {41, 1, 1024, 1},
            {6, 5, 1, 77}, {3, 2, 3, 40}};
        try (JavaBackend be = new JavaBackend(2)) {
            for (int[] lay : layouts) {
                for (boolean rms : new boolean[] {false, true}) {
                    fusedAgainstAlone(be, lay[0], lay[1], lay[2], lay[3], rms);
                }
            }
        }
    }

    private static void fusedAgainstAlone(JavaBackend be, int outer, int groups, int cpg, int spatial, boolean rms) {
        int rows = outer * groups;
        int cols = cpg * spatial;
        int channels = groups * cpg;
        int n = rows * cols;
        String what = outer + "x" + groups + "x" + cpg + "x" + spatial + (rms ? " rms" : "");
        StatMode mode = rms ? StatMode.RMS : StatMode.MEAN_VAR;
        RowNormPlan plan = RowNormPlan.contiguous(rows, cols, mode, 1e-5f, groups, cpg, spatial, true, !rms);
        AffineGradPlan grad = new AffineGradPlan(outer, channels, spatial, groups, groups == 1 ? channels : cpg,
                rms);
        Buffer x = buffer(be, Data.gaussian("fuse x", n, 1, 2));
        Buffer dy = buffer(be, Data.gaussian("fuse dy", n, 0, 1));
        Buffer w = buffer(be, Data.gaussian("fuse w", channels, 1, 0.3));
        Buffer mean = rms ? null : be.allocate(DType.FLOAT32, rows);
        Buffer inv = be.allocate(DType.FLOAT32, rows);
        be.rowNorm(plan, x, null, null, null, mean, inv);
        Buffer dx = be.allocate(DType.FLOAT32, n);
        Buffer ds = be.allocate(DType.FLOAT32, channels);
        Buffer db = be.allocate(DType.FLOAT32, channels);
        be.rowNormBackwardWithGrad(plan, grad, dy, x, w, mean, inv, dx, ds, db);
        float[] fusedS = floats(be, ds);
        float[] fusedB = floats(be, db);
        float[] fusedDx = floats(be, dx);
        Buffer dx2 = be.allocate(DType.FLOAT32, n);
        Buffer ds2 = be.allocate(DType.FLOAT32, channels);
        Buffer db2 = be.allocate(DType.FLOAT32, channels);
        be.rowNormBackward(plan, dy, x, w, mean, inv, dx2);
        be.affineGrad(grad, dy, x, mean, inv, ds2, db2, null);
        assertArrayEquals(floats(be, dx2), fusedDx, "dX: fused against alone, " + what);
        assertArrayEquals(floats(be, ds2), fusedS, "dScale: fused against alone, " + what);
        assertArrayEquals(floats(be, db2), fusedB, "dBias: fused against alone, " + what);
        assertTrue(!java.util.Arrays.equals(fusedS, new float[channels]), "dScale is not all zero, " + what);
    }

    /**
     * Batch norm of channels-first data through {@code channelBackwardWithGrad} (one task per
     * channel, its sums then its dX) gives the bits of affineGrad followed by channelBackward, in
     * training and inference, with and without scale, on 1 and 3 threads.
     */
    @Test
    void fusedBatchNormBackwardGivesTheBitsOfTheTwoCalls() {
        int[][] shapes = {{8, 16, 300}, {3, 12, 4096}, {70, 16, 65}};
        for (int threads : new int[] {1, 3}) {
            try (JavaBackend be = new JavaBackend(threads)) {
                for (int[] sh : shapes) {
                    for (boolean training : new boolean[] {true, false}) {
                        for (boolean withScale : new boolean[] {true, false}) {
                            batchNormFusedAgainstTwoCalls(be, threads, sh[0], sh[1], sh[2], training, withScale);
                        }
                    }
                }
            }
        }
    }

    private static void batchNormFusedAgainstTwoCalls(JavaBackend be, int threads, int outer, int channels,
            int inner, boolean training, boolean withScale) {
        int n = outer * channels * inner;
        String what = outer + "x" + channels + "x" + inner + " training " + training + " scale " + withScale
                + " threads " + threads;
        ChannelPlan plan = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1e-5f);
        assertTrue(JavaBackward.fusesChannelBackward(plan, threads), "the fused path applies to " + what);
        Buffer x = buffer(be, Data.gaussian("bn fuse x " + n, n, 3, 2));
        Buffer dy = buffer(be, Data.gaussian("bn fuse dy " + n, n, 0, 1));
        Buffer w = withScale ? buffer(be, Data.gaussian("bn fuse w", channels, 1, 0.3)) : null;
        Buffer mean = be.allocate(DType.FLOAT32, channels);
        Buffer inv = be.allocate(DType.FLOAT32, channels);
        be.channelStats(plan, x, mean, null, inv, null, null, null, null, null);
        Buffer sums = be.allocate(DType.FLOAT32, 2L * channels);
        Buffer dx1 = be.allocate(DType.FLOAT32, n);
        Buffer ds1 = be.allocate(DType.FLOAT32, channels);
        Buffer db1 = be.allocate(DType.FLOAT32, channels);
        be.affineGrad(new AffineGradPlan(outer, channels, inner, 0, 1, false), dy, x, mean, inv, ds1, db1,
                training ? sums : null);
        be.channelBackward(plan, plan.perChannel(), dy, x, mean, inv, w, training ? sums : null, dx1);
        Buffer dx2 = be.allocate(DType.FLOAT32, n);
        Buffer ds2 = be.allocate(DType.FLOAT32, channels);
        Buffer db2 = be.allocate(DType.FLOAT32, channels);
        be.channelBackwardWithGrad(plan, training, dy, x, mean, inv, w, ds2, db2, dx2);
        assertArrayEquals(floats(be, dx1), floats(be, dx2), "dX, " + what);
        assertArrayEquals(floats(be, ds1), floats(be, ds2), "dScale, " + what);
        assertArrayEquals(floats(be, db1), floats(be, db2), "dBias, " + what);
    }

    private static Buffer buffer(JavaBackend be, float[] data) {
        Buffer b = be.allocate(DType.FLOAT32, data.length);
        be.write(b, HostTensor.of(data, data.length));
        return b;
    }

    private static float[] floats(JavaBackend be, Buffer b) {
        return be.read(b, Shape.of(b.elements())).data();
    }

    @Test
    void vectorAndScalarKernelsAgree() {
        GradKernels vector = GradKernels.vectorOrNull();
        assumeTrue(vector != null, "the Vector API is not in this JVM: only the scalar kernels exist here");
        GradKernels scalar = new ScalarGradKernels();
        for (int n : new int[] {1, 7, 15, 16, 17, 33, 64, 100, 1000, 1024}) {
            float[] dy = Data.gaussian("k dy " + n, n + 3, 0, 1);
            float[] x = Data.gaussian("k x " + n, n + 3, 2, 3);
            float[] w = Data.gaussian("k w " + n, n + 5, 1, 0.5);
            float mu = 1.75f;
            float is = 0.37f;
            // Reductions: each within n float roundings of the float64 sums.
            double g = 0;
            double q = 0;
            double bound = 0;
            for (int i = 0; i < n; i++) {
                double a = (double) dy[i + 3] * w[i + 5];
                double xhat = ((double) x[i + 3] - mu) * is;
                g += a;
                q += a * xhat;
                bound += Math.abs(a) * (1 + Math.abs(xhat));
            }
            bound *= (n + 4) * 0x1p-24;
            for (GradKernels k : new GradKernels[] {scalar, vector}) {
                assertEquals(g, k.rowSums(dy, x, w, 3, 5, n, mu, is), bound, "sum g, n = " + n);
                assertEquals(q, k.second, bound, "sum g * xhat, n = " + n);
            }
            // Elementwise: the same operations, so the same bits; accumulate is dxAccumulate's accumulation.
            float[][] dx = new float[2][n + 3];
            float[][] fs = new float[3][n + 5];
            float[][] fb = new float[3][n + 5];
            for (int v = 0; v < 3; v++) {
                java.util.Arrays.fill(fs[v], 0.25f);
                java.util.Arrays.fill(fb[v], -0.5f);
            }
            scalar.dxAccumulate(dy, x, w, dx[0], 3, 5, n, mu, is, 0.125f, -0.3f, fs[0], fb[0]);
            vector.dxAccumulate(dy, x, w, dx[1], 3, 5, n, mu, is, 0.125f, -0.3f, fs[1], fb[1]);
            vector.accumulate(dy, x, 3, 5, n, mu, is, fs[2], fb[2]);
            assertArrayEquals(dx[0], dx[1], "dx, n = " + n);
            for (int i = 0; i < n; i++) {
                double xhat = ((double) x[i + 3] - mu) * is;
                double ref = is * ((double) dy[i + 3] * w[i + 5] - 0.125 + xhat * 0.3);
                assertEquals(ref, dx[0][i + 3], 1e-5 * (1 + Math.abs(ref)), "dx against float64, n = " + n);
            }
            assertArrayEquals(fs[0], fs[1], "dScale terms, n = " + n);
            assertArrayEquals(fb[0], fb[1], "dBias terms, n = " + n);
            assertArrayEquals(fs[1], fs[2], "dScale terms alone, n = " + n);
            assertArrayEquals(fb[1], fb[2], "dBias terms alone, n = " + n);
            scalar.accumulate(dy, x, 3, 5, n, mu, is, fs[0], fb[0]);
            vector.accumulate(dy, x, 3, 5, n, mu, is, fs[1], fb[1]);
            assertArrayEquals(fs[0], fs[1], "scalar accumulate, n = " + n);
            float[] mean = Data.gaussian("k mean " + n, n, 2, 1);
            float[] inv = Data.uniform("k inv " + n, n, 0.2, 2);
            scalar.accumulateColumns(dy, x, 3, n, mean, inv, fs[0], fb[0]);
            vector.accumulateColumns(dy, x, 3, n, mean, inv, fs[1], fb[1]);
            assertArrayEquals(fs[0], fs[1], "column-statistic dScale terms, n = " + n);
            assertArrayEquals(fb[0], fb[1], "column-statistic dBias terms, n = " + n);
            float[] ux = new float[n + 3];
            float[] vx = new float[n + 3];
            scalar.dxUniform(dy, x, ux, 3, n, mu, is, 1.5f, 0.125f, -0.3f);
            vector.dxUniform(dy, x, vx, 3, n, mu, is, 1.5f, 0.125f, -0.3f);
            assertArrayEquals(ux, vx, "dx with one scale, n = " + n);
            // dx alone: dxAccumulate's dx, bit for bit, on both implementations.
            for (GradKernels k : new GradKernels[] {scalar, vector}) {
                float[] alone = new float[n + 3];
                k.dx(dy, x, w, alone, 3, 5, n, mu, is, 0.125f, -0.3f);
                assertArrayEquals(dx[0], alone, "dx without the accumulators, n = " + n);
            }
            if (n == 1) {
                smallRowsAgree(scalar, vector);
            }
            pairMatchesTwoRows(scalar, vector, n);
            singleValueRowsAgree(scalar, vector, n);
            columnDxAgrees(scalar, vector, n);
            channelPipelineAgrees(scalar, vector, n);
        }
    }

    /**
     * Batch-norm training dx of a channel, and the pipeline step that writes it while taking the next
     * run's sums: dx the same bits on both kernel sets and in both forms, within rounding of float64;
     * the step's sums those of {@link GradKernels#rowSums} with unit scale.
     */
    private static void channelPipelineAgrees(GradKernels scalar, GradKernels vector, int n) {
        float[] dy = Data.gaussian("cp dy " + n, 2 * n + 3, 0, 1);
        float[] x = Data.gaussian("cp x " + n, 2 * n + 3, 2, 3);
        float[] ones = RowNorm.ones(n);
        float mu = 1.75f;
        float is = 0.37f;
        float kc = 0.8f;
        float meanDy = 0.125f;
        float meanDyXhat = -0.3f;
        float[] expected = new float[2 * n + 3];
        scalar.channelDx(dy, x, expected, 3, n, mu, is, kc, meanDy, meanDyXhat);
        for (int i = 3; i < 3 + n; i++) {
            double xhat = ((double) x[i] - mu) * is;
            double ref = kc * (dy[i] - (double) meanDy - xhat * meanDyXhat);
            assertEquals(ref, expected[i], 1e-5 * (1 + Math.abs(ref)), "channel dx against float64, n = " + n);
        }
        for (GradKernels k : new GradKernels[] {scalar, vector}) {
            float[] alone = new float[2 * n + 3];
            k.channelDx(dy, x, alone, 3, n, mu, is, kc, meanDy, meanDyXhat);
            assertArrayEquals(expected, alone, "channel dx, n = " + n);
            float[] piped = new float[2 * n + 3];
            float sum = k.channelDxThenSums(dy, x, piped, 3, mu, is, kc, meanDy, meanDyXhat, n + 3, n, 0.5f, 1.25f,
                    ones);
            float second = k.second;
            assertArrayEquals(expected, piped, "channel dx in the pipeline step, n = " + n);
            // the sums of the same implementation's rowSums (the two reduce in different orders)
            assertEquals(Float.floatToIntBits(k.rowSums(dy, x, ones, n + 3, 0, n, 0.5f, 1.25f)),
                    Float.floatToIntBits(sum), "the step's sum of dy, n = " + n);
            assertEquals(Float.floatToIntBits(k.second), Float.floatToIntBits(second),
                    "the step's sum of dy * xhat, n = " + n);
        }
    }

    /**
     * Rows of one value (instance norm of (N, C) data): dx, dScale and dBias terms the same bits on
     * both kernel sets (signed zeros, infinities and NaN among the inputs included), with and without
     * dx, and dx within a few roundings of the float64 formula (a row's mean(g) is g itself, so
     * {@code dx = (g - g * xhat^2) * inv} for RMS norm and {@code -g * xhat^2 * inv} otherwise).
     */
    private static void singleValueRowsAgree(GradKernels scalar, GradKernels vector, int n) {
        float[] dy = Data.gaussian("sv dy " + n, n + 3, 0, 1);
        float[] x = Data.gaussian("sv x " + n, n + 3, 1, 2);
        float[] w = Data.gaussian("sv w " + n, n, 1, 0.5);
        float[] mean = Data.gaussian("sv mean " + n, n + 3, 1, 1);
        float[] inv = Data.uniform("sv inv " + n, n + 3, 0.2, 2);
        if (n > 6) {
            dy[3] = -0.0f;
            x[4] = mean[4]; // xhat = 0
            dy[5] = Float.POSITIVE_INFINITY;
            x[6] = Float.NaN;
            w[4] = -0.0f;
        }
        for (boolean rms : new boolean[] {false, true}) {
            float[][] dx = new float[3][n + 3];
            float[][] fs = new float[3][n];
            float[][] fb = new float[3][n];
            for (int v = 0; v < 3; v++) {
                java.util.Arrays.fill(fs[v], 0.25f);
                java.util.Arrays.fill(fb[v], -0.5f);
            }
            scalar.singleValueRows(dy, x, w, mean, inv, dx[0], 3, 0, n, rms, fs[0], fb[0]);
            vector.singleValueRows(dy, x, w, mean, inv, dx[1], 3, 0, n, rms, fs[1], fb[1]);
            vector.singleValueRows(dy, x, w, mean, inv, null, 3, 0, n, rms, fs[2], fb[2]);
            String what = (rms ? "rms" : "mean-var") + " single-value rows, n = " + n;
            assertArrayEquals(dx[0], dx[1], what + ": dx");
            assertArrayEquals(fs[0], fs[1], what + ": dScale terms");
            assertArrayEquals(fb[0], fb[1], what + ": dBias terms");
            assertArrayEquals(fs[1], fs[2], what + ": dScale terms without dx");
            assertArrayEquals(fb[1], fb[2], what + ": dBias terms without dx");
            for (int c = 0; c < n; c++) {
                int i = c + 3;
                double xhat = ((double) x[i] - (rms ? 0 : mean[i])) * inv[i];
                double g = (double) dy[i] * w[c];
                double ref = ((rms ? g : 0) - g * xhat * xhat) * inv[i];
                if (Double.isFinite(ref)) {
                    double terms = (Math.abs(g) + Math.abs(g * xhat * xhat)) * inv[i];
                    assertEquals(ref, dx[0][i], 8 * 0x1p-24 * terms + 1e-30, what + ": dx[" + c + "] against float64");
                } else {
                    assertTrue(!Float.isFinite(dx[0][i]), what + ": dx[" + c + "] not finite");
                }
            }
        }
    }

    /**
     * Rows of 2 to 64 values, a power of two ({@link GradKernels#smallRows}, group norm of (N, C) data;
     * from 16 values whole vectors a row): dx, dScale and dBias terms the same bits on both kernel
     * sets, with and without dx, on samples whose channels are and are not a multiple of the vector
     * width, the last sample's statistics ending at the arrays' end (its last vectors go row by row);
     * dx within rounding of the float64 formula {@code inv * (g - mean(g) - xhat * mean(g * xhat))}
     * (RMS: no mean(g)). Without dx, rows of 16 and more take the plain loops on both sets.
     */
    private static void smallRowsAgree(GradKernels scalar, GradKernels vector) {
        for (int c : new int[] {2, 4, 8, 16, 32, 64}) {
            for (int groups : new int[] {1, 3, 8, 13}) {
                int channels = groups * c;
                int outer = 5;
                int n = outer * channels;
                int rows = outer * groups;
                float[] dy = Data.gaussian("sr dy " + c + groups, n, 0, 1);
                float[] x = Data.gaussian("sr x " + c + groups, n, 1, 2);
                float[] w = Data.gaussian("sr w " + c + groups, channels, 1, 0.5);
                float[] mean = Data.gaussian("sr mean " + c + groups, rows, 1, 1);
                float[] inv = Data.uniform("sr inv " + c + groups, rows, 0.2, 2);
                for (boolean rms : new boolean[] {false, true}) {
                    String what = (rms ? "rms" : "mean-var") + " rows of " + c + ", " + groups + " groups";
                    float[][] dx = new float[2][n];
                    float[][] fs = new float[3][channels];
                    float[][] fb = new float[3][channels];
                    for (int o = 0; o < outer; o++) {
                        scalar.smallRows(dy, x, w, mean, inv, dx[0], o * channels, 0, channels, c, rms, fs[0], fb[0]);
                        vector.smallRows(dy, x, w, mean, inv, dx[1], o * channels, 0, channels, c, rms, fs[1], fb[1]);
                        vector.smallRows(dy, x, w, mean, inv, null, o * channels, 0, channels, c, rms, fs[2], fb[2]);
                    }
                    assertArrayEquals(dx[0], dx[1], what + ": dx");
                    assertArrayEquals(fs[0], fs[1], what + ": dScale terms");
                    assertArrayEquals(fb[0], fb[1], what + ": dBias terms");
                    assertArrayEquals(fs[1], fs[2], what + ": dScale terms without dx");
                    assertArrayEquals(fb[1], fb[2], what + ": dBias terms without dx");
                    for (int r = 0; r < rows; r++) {
                        double mu = rms ? 0 : mean[r];
                        double sg = 0;
                        double sgx = 0;
                        double size = 0;
                        for (int i = 0; i < c; i++) {
                            int v = r * c + i;
                            double g = (double) dy[v] * w[v % channels];
                            sg += g;
                            sgx += g * (x[v] - mu) * inv[r];
                            size += Math.abs(g) * (1 + Math.abs((x[v] - mu) * inv[r]));
                        }
                        for (int i = 0; i < c; i++) {
                            int v = r * c + i;
                            double xhat = (x[v] - mu) * inv[r];
                            double ref = inv[r] * ((double) dy[v] * w[v % channels] - (rms ? 0 : sg / c) - xhat * sgx / c);
                            // The sums' float32 trees (log2(c) <= 6 levels) and the formula's few roundings.
                            double bound = 0x1p-24 * inv[r] * (8 * Math.abs(dy[v] * w[v % channels])
                                    + 8 * (1 + Math.abs(xhat)) * size / c);
                            assertEquals(ref, dx[0][v], bound, what + ": dx[" + v + "] against float64");
                        }
                    }
                }
            }
        }
    }

    /** (N, C) batch-norm dx: the same bits on both kernel sets, and within rounding of float64. */
    private static void columnDxAgrees(GradKernels scalar, GradKernels vector, int n) {
        float[] dy = Data.gaussian("cdx dy " + n, n + 2, 0, 1);
        float[] x = Data.gaussian("cdx x " + n, n + 2, 1, 2);
        float[] mean = Data.gaussian("cdx mean " + n, n, 1, 0.5);
        float[] inv = Data.uniform("cdx inv " + n, n, 0.2, 2);
        float[] ks = Data.gaussian("cdx ks " + n, n, 1, 0.5);
        float[] meanDy = Data.gaussian("cdx mdy " + n, n, 0, 0.1);
        float[] meanDyXhat = Data.gaussian("cdx mdx " + n, n, 0, 0.1);
        float[][] dx = new float[2][n + 2];
        float[][] dxInference = new float[2][n + 2];
        GradKernels[] kernels = {scalar, vector};
        for (int v = 0; v < 2; v++) {
            kernels[v].columnDx(dy, x, dx[v], 2, n, mean, inv, ks, meanDy, meanDyXhat);
            kernels[v].columnDxNoSums(dy, dxInference[v], 2, n, ks);
        }
        assertArrayEquals(dx[0], dx[1], "column dx, n = " + n);
        assertArrayEquals(dxInference[0], dxInference[1], "column dx without sums, n = " + n);
        for (int c = 0; c < n; c++) {
            double xhat = ((double) x[c + 2] - mean[c]) * inv[c];
            double ref = (double) ks[c] * ((double) dy[c + 2] - meanDy[c] - xhat * meanDyXhat[c]);
            // Six roundings (two in xhat, then the product, two subtractions and the scale): 8 u of the terms.
            double terms = Math.abs(ks[c])
                    * (Math.abs(dy[c + 2]) + Math.abs(meanDy[c]) + Math.abs(xhat * meanDyXhat[c]));
            assertEquals(ref, dx[0][c + 2], 8 * 0x1p-24 * terms, "column dx against float64, n = " + n);
            assertEquals((double) dy[c + 2] * ks[c], dxInference[0][c + 2], 0x1p-24 * Math.abs(dy[c + 2] * ks[c]),
                    "column dx without sums against float64, n = " + n);
        }
    }

    /**
     * The first pass of two rows at once (the long-row pipeline) gives each row's sums and the
     * accumulators' bits of the row-by-row calls: row a's terms added first, then row b's.
     */
    private static void pairMatchesTwoRows(GradKernels scalar, GradKernels vector, int n) {
        int offB = n + 9;
        float[] dy = Data.gaussian("pair dy " + n, 2 * n + 9, 0, 1);
        float[] x = Data.gaussian("pair x " + n, 2 * n + 9, 1, 2);
        float[] w = Data.gaussian("pair w " + n, n + 4, 1, 0.5);
        float muA = 0.75f;
        float isA = 0.6f;
        float muB = -1.25f;
        float isB = 1.7f;
        for (GradKernels k : new GradKernels[] {scalar, vector}) {
            float[] fs = Data.gaussian("pair fs " + n, n + 4, 0, 1);
            float[] fb = Data.gaussian("pair fb " + n, n + 4, 0, 1);
            float[] fs2 = fs.clone();
            float[] fb2 = fb.clone();
            float[] sums = new float[4];
            k.pairSumsAccumulate(dy, x, w, 0, offB, 4, n, muA, isA, muB, isB, fs, fb, sums);
            k.accumulate(dy, x, 0, 4, n, muA, isA, fs2, fb2);
            k.accumulate(dy, x, offB, 4, n, muB, isB, fs2, fb2);
            assertArrayEquals(fs2, fs, "pair: dScale terms, n = " + n);
            assertArrayEquals(fb2, fb, "pair: dBias terms, n = " + n);
            assertEquals(k.rowSums(dy, x, w, 0, 4, n, muA, isA), sums[0], 0f, "pair: row a's sum g, n = " + n);
            assertEquals(k.second, sums[1], 0f, "pair: row a's sum g * xhat, n = " + n);
            assertEquals(k.rowSums(dy, x, w, offB, 4, n, muB, isB), sums[2], 0f, "pair: row b's sum g, n = " + n);
            assertEquals(k.second, sums[3], 0f, "pair: row b's sum g * xhat, n = " + n);
        }
    }
}
