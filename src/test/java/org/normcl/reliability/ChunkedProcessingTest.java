package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.normcl.BatchNorm;
import org.normcl.ChannelMoments;
import org.normcl.DType;
import org.normcl.EngineOptions;
import org.normcl.GradResult;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.Layout;
import org.normcl.LayerNorm;
import org.normcl.MeanVarianceNorm;
import org.normcl.MomentumConvention;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.SavedStats;
import org.normcl.reference.Reference64;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * Host tensors larger than the device's largest buffer are processed in chunks (rows, or whole
 * samples), with the same results: a small CL_DEVICE_MAX_MEM_ALLOC_SIZE is pretended through
 * {@link org.normcl.opencl.FaultInjection#limitAllocation(long)} so that small tensors need chunks.
 * Row normalizations treat rows independently, so their chunked results are bitwise those of one
 * pass; batch statistics and parameter gradients are merged across chunks, so those are checked
 * against the float64 oracle within the usual bounds.
 */
class ChunkedProcessingTest {
    private static final long LIMIT = 4096; // bytes: a few rows per chunk below

    private NormEngine engine;

    @BeforeEach
    void openClEngine() {
        assumeFalse(Backends.requireDevicesInCi().isEmpty(), "no OpenCL device");
        engine = NormEngine.create(EngineOptions.opencl("0"));
    }

    @AfterEach
    void close() {
        org.normcl.opencl.FaultInjection.reset();
        if (engine != null) {
            engine.close();
        }
    }

    private static void limit() {
        org.normcl.opencl.FaultInjection.limitAllocation(LIMIT);
    }

    private static void unlimit() {
        org.normcl.opencl.FaultInjection.limitAllocation(Long.MAX_VALUE);
    }

    @Test
    void rowNormalizationsInChunksEqualOnePass() {
        HostTensor x = HostTensor.of(Data.gaussian("chunks", 64 * 300, 1, 2), 64, 300); // 76.8 KB, 1.2 KB rows
        HostTensor w = HostTensor.of(Data.gaussian("chunks w", 300, 1, 0.3), 300);
        HostTensor img = HostTensor.of(Data.gaussian("chunks img", 12 * 6 * 40, 0, 1), 12, 6, 40); // 960 B samples
        HostTensor nhwc = HostTensor.of(Data.gaussian("chunks nhwc", 12 * 40 * 6, 0, 1), 12, 40, 6);
        HostTensor cw = HostTensor.of(Data.gaussian("chunks cw", 6, 1, 0.3), 6);
        HostTensor x16 = HostTensor.convert(Data.gaussian("chunks16", 64 * 300, 0, 1), DType.FLOAT16, 64, 300);
        float[][] one = run(x, w, img, nhwc, cw, x16);
        limit();
        float[][] chunked = run(x, w, img, nhwc, cw, x16);
        for (int k = 0; k < one.length; k++) {
            assertArrayEquals(one[k], chunked[k], "output " + k);
        }
    }

    private float[][] run(HostTensor x, HostTensor w, HostTensor img, HostTensor nhwc, HostTensor cw, HostTensor x16) {
        GroupNorm gn = GroupNorm.of(3);
        GroupNorm gnLast = GroupNorm.of(2).withLayout(Layout.CHANNELS_LAST);
        try (NormResult ln = engine.layerNorm(LayerNorm.defaults(), x, w, w);
                NormResult rms = engine.rmsNorm(RmsNorm.defaults(), x, w);
                NormResult g = engine.groupNorm(gn, img, cw, cw);
                NormResult gl = engine.groupNorm(gnLast, nhwc, cw, null);
                NormResult h = engine.layerNorm(LayerNorm.defaults(), x16, null, null);
                NormResult bi = engine.batchNorm(BatchNorm.defaults(), img, cw, cw, cw, cw);
                GradResult lb = engine.layerNormBackward(LayerNorm.defaults(), x, x, w, SavedStats.of(ln))) {
            return new float[][] {ln.y().toHost().data(), ln.mean().toHost().data(), ln.invStdDev().toHost().data(),
                rms.y().toHost().data(), g.y().toHost().data(), g.mean().toHost().data(), gl.y().toHost().data(),
                h.y().toHost().toFloats(), bi.y().toHost().data(), lb.dx().toHost().data()};
        }
    }

    @Test
    void batchStatisticsAndParameterGradientsMergeAcrossChunks() {
        long[] dims = {16, 3, 50}; // 600 B per sample: 6 samples per chunk
        HostTensor x = HostTensor.of(Data.gaussian("bn chunks", 16 * 150, 2, 1.5), dims);
        HostTensor dy = HostTensor.of(Data.gaussian("bn chunks dy", 16 * 150, 0, 1), dims);
        float[] w = Data.gaussian("bn chunks w", 3, 1, 0.3);
        HostTensor hw = HostTensor.of(w, 3);
        limit();
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        Reference64Backward.Sliced op = Reference64Backward.batch(dims, 1e-5f);
        double[] xd = x.toDoubles();
        double[] dyd = dy.toDoubles();
        try (NormResult r = engine.batchNorm(spec, x, hw, null, null, null);
                GradResult g = engine.batchNormBackward(spec, dy, x, hw, null, null, null)) {
            double[] yRef = Reference64Backward.forward(op, xd, Reference64Backward.widen(w), null);
            double[] xhat = Reference64Backward.xhat(op, xd);
            double[][] st = Reference64Backward.stats(op, xd);
            double[] bound = new double[yRef.length];
            for (int i = 0; i < bound.length; i++) {
                int c = op.slice()[i];
                bound[i] = Tolerances.element(xhat[i], Math.abs(st[0][c]) * st[1][c], w[c], 0, yRef[i]);
            }
            Tolerances.assertWithin("chunked batch norm Y", r.y().toHost().data(), yRef, bound);
            Reference64Backward.Grads ref = Reference64Backward.backward(op, xd, dyd, Reference64Backward.widen(w));
            GradBounds.Bounds gb = GradBounds.of(op, xd, dyd, Reference64Backward.widen(w), Tolerances.U);
            Tolerances.assertWithin("chunked batch norm dX", g.dx().toHost().data(), ref.dx(), gb.dx());
            Tolerances.assertWithin("chunked batch norm dScale", g.dScale().toHost().data(), ref.dScale(), gb.dScale());
            Tolerances.assertWithin("chunked batch norm dBias", g.dBias().toHost().data(), ref.dBias(), gb.dBias());
        }
        unlimit();
    }

    /** (N, C, H, W) with 672-byte samples: 6 samples per 4096-byte chunk, the last chunk 4 samples. */
    private static final long[] NCHW = {10, 4, 6, 7};

    private static HostTensor nchw(String name, double mean, double sigma) {
        return HostTensor.of(Data.gaussian(name, 10 * 4 * 6 * 7, mean, sigma), NCHW);
    }

    /**
     * Mean-variance normalization over the batch (the default axes [0, 2, 3], axes [0, 1, 3] with
     * N * C outer slices, every axis) reduces across samples: the chunks' moments are merged, as for
     * batch norm, and Y, Mean and the inverse scale match the float64 oracle.
     */
    @Test
    void meanVarianceNormOverTheBatchMergesAcrossChunks() {
        HostTensor x = nchw("mvn chunks", 2, 3);
        float[] xf = x.data();
        limit();
        for (int[] axes : new int[][] {{0, 2, 3}, {0, 1, 3}, {0, 1, 2, 3}}) {
            String name = "chunked MVN over " + java.util.Arrays.toString(axes);
            try (NormResult r = engine.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(axes), x)) {
                Reference64.Mvn ref = Reference64.meanVarianceNormDetailed(xf, NCHW, axes, Reference64.MVN_DEFAULT_EPS);
                double[] bound = new double[xf.length];
                for (int i = 0; i < bound.length; i++) {
                    double sigma = ref.elementStd()[i];
                    bound[i] = Tolerances.element(ref.y()[i], Math.abs(ref.elementMean()[i]) / sigma, 1, 0, ref.y()[i]);
                }
                Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
                // The statistics, one per kept index: read them off the first element of each slice.
                float[] mean = r.mean().toHost().data();
                float[] inv = r.invStdDev().toHost().data();
                double[] meanRef = new double[mean.length];
                double[] invRef = new double[mean.length];
                double[] meanBound = new double[mean.length];
                double[] invBound = new double[mean.length];
                long[] statDims = r.mean().shape().dims();
                for (int i = 0; i < xf.length; i++) {
                    int k = statIndex(i, NCHW, statDims);
                    meanRef[k] = ref.elementMean()[i];
                    invRef[k] = 1 / (ref.elementStd()[i] + Reference64.MVN_DEFAULT_EPS);
                    meanBound[k] = Tolerances.mean(meanRef[k], ref.elementStd()[i]);
                    invBound[k] = Tolerances.invStd(invRef[k]);
                }
                Tolerances.assertWithin(name + " Mean", mean, meanRef, meanBound);
                Tolerances.assertWithin(name + " inverse scale", inv, invRef, invBound);
            }
        }
        unlimit();
    }

    /** Element i's index in the statistics (X's shape with the reduced axes set to 1). */
    private static int statIndex(int i, long[] dims, long[] statDims) {
        int k = 0;
        int rest = i;
        int stride = 1;
        for (int d = dims.length - 1; d >= 0; d--) {
            int coord = (int) (rest % dims[d]);
            rest /= (int) dims[d];
            if (statDims[d] != 1) {
                k += coord * stride;
                stride *= (int) statDims[d];
            }
        }
        return k;
    }

    /**
     * Batch norm with caller-merged moments applies them per chunk: Y, the statistics and the
     * running statistics are bitwise those of one pass, and the running statistics are updated
     * once (from the moments), whichever overload merges them.
     */
    @Test
    void batchNormWithMergedMomentsInChunksEqualsOnePass() {
        HostTensor x = nchw("bn moments chunks", 2, 1.5);
        HostTensor nhwc = HostTensor.of(Data.gaussian("bn moments nhwc", 10 * 6 * 7 * 4, -1, 2), 10, 6, 7, 4);
        HostTensor w = HostTensor.of(Data.gaussian("bn moments w", 4, 1, 0.3), 4);
        HostTensor b = HostTensor.of(Data.gaussian("bn moments b", 4, 0, 0.3), 4);
        HostTensor rm = HostTensor.of(Data.gaussian("bn moments rm", 4, 0, 1), 4);
        HostTensor rv = HostTensor.of(new float[] {0.5f, 1f, 2f, 4f}, 4);
        BatchNorm spec = BatchNorm.defaults().withTraining(true).withConvention(MomentumConvention.PYTORCH);
        BatchNorm last = spec.withLayout(Layout.CHANNELS_LAST);
        ChannelMoments m = engine.batchNormMoments(spec, x);
        ChannelMoments mLast = engine.batchNormMoments(last, nhwc);
        float[][] one;
        try (NormResult r = engine.batchNorm(spec, x, w, b, rm, rv, m);
                NormResult l = engine.batchNorm(last, nhwc, w, b, rm, rv, mLast)) {
            one = outputs(r, l);
        }
        limit();
        try (NormResult r = engine.batchNorm(spec, x, w, b, rm, rv, m);
                NormResult l = engine.batchNorm(last, nhwc, w, b, rm, rv, mLast)) {
            float[][] chunked = outputs(r, l);
            for (int k = 0; k < one.length; k++) {
                assertArrayEquals(one[k], chunked[k], "output " + k);
            }
        }
        // Without moments the chunked batch norm merges its own; the running update is still one.
        ChannelMoments merged = engine.batchNormMoments(spec, x);
        try (NormResult own = engine.batchNorm(spec, x, w, b, rm, rv);
                NormResult given = engine.batchNorm(spec, x, w, b, rm, rv, merged)) {
            assertArrayEquals(given.y().toHost().data(), own.y().toHost().data(), "Y");
            assertArrayEquals(given.runningMean().toHost().data(), own.runningMean().toHost().data(), "running mean");
            assertArrayEquals(given.runningVar().toHost().data(), own.runningVar().toHost().data(), "running var");
            // One update (PyTorch: the unbiased variance, batch weight 0.1) from the whole batch's
            // statistics, against the float64 oracle; bounds as in OperatorAccuracyTest. An update
            // per chunk, or from one chunk's statistics, is off by far more.
            Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x.data(), NCHW, w.data(), b.data(),
                    rm.data(), rv.data(), 1e-5f, spec.momentum(), true);
            double[] meanBound = new double[4];
            double[] varBound = new double[4];
            for (int c = 0; c < 4; c++) {
                double var = 1 / (ref.invStd()[c] * ref.invStd()[c]);
                meanBound[c] = Tolerances.runningMean(ref.mean()[c], Math.sqrt(var), rm.data()[c],
                        ref.newRunningMean()[c]);
                varBound[c] = Tolerances.runningVar(var, rv.data()[c], ref.newRunningVar()[c]);
            }
            Tolerances.assertWithin("chunked running mean", own.runningMean().toHost().data(), ref.newRunningMean(),
                    meanBound);
            Tolerances.assertWithin("chunked running var", own.runningVar().toHost().data(), ref.newRunningVar(),
                    varBound);
        }
        unlimit();
    }

    private static float[][] outputs(NormResult... results) {
        java.util.List<float[]> out = new java.util.ArrayList<>();
        for (NormResult r : results) {
            out.add(r.y().toHost().data());
            out.add(r.mean().toHost().data());
            out.add(r.invStdDev().toHost().data());
            if (r.runningMean() != null) {
                out.add(r.runningMean().toHost().data());
                out.add(r.runningVar().toHost().data());
            }
        }
        return out.toArray(new float[0][]);
    }

    /**
     * Group-norm moments and the group norm that applies them are per sample: bitwise one pass.
     * (For the moments as long as the device reduces a slice in one part, as here: OpenCL splits
     * slices of more than 16384 values into parts by how many slices there are.)
     */
    @Test
    void groupNormMomentsAndTheirApplyInChunksEqualOnePass() {
        HostTensor x = nchw("gn moments chunks", 1, 2);
        HostTensor w = HostTensor.of(Data.gaussian("gn moments w", 4, 1, 0.3), 4);
        GroupNorm spec = GroupNorm.of(2);
        ChannelMoments m = engine.groupNormMoments(spec, x);
        float[][] one;
        try (NormResult r = engine.groupNorm(spec, x, w, w, m)) {
            one = outputs(r);
        }
        limit();
        ChannelMoments chunkedMoments = engine.groupNormMoments(spec, x);
        assertEquals(m.count(), chunkedMoments.count(), "count");
        assertArrayEquals(m.mean(), chunkedMoments.mean(), "mean");
        assertArrayEquals(m.m2(), chunkedMoments.m2(), "M2");
        try (NormResult r = engine.groupNorm(spec, x, w, w, m)) {
            float[][] chunked = outputs(r);
            for (int k = 0; k < one.length; k++) {
                assertArrayEquals(one[k], chunked[k], "output " + k);
            }
        }
        unlimit();
    }

    /** One sample larger than a buffer: the chunking error, not the device-tensor one. */
    @Test
    void aSampleLargerThanOneBufferIsAClearErrorForMoments() {
        limit();
        HostTensor x = HostTensor.of(new float[2 * 1000], 1, 2, 1000); // one 8000-byte sample
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> engine.batchNormMoments(x));
        assertTrue(b.getMessage().contains("cannot be processed in chunks"), b.getMessage());
        IllegalArgumentException g = assertThrows(IllegalArgumentException.class,
                () -> engine.groupNormMoments(GroupNorm.of(2), x));
        assertTrue(g.getMessage().contains("cannot be processed in chunks"), g.getMessage());
    }

    @Test
    void aSliceLargerThanOneBufferIsAClearError() {
        limit();
        HostTensor x = HostTensor.of(new float[2 * 2000], 2, 2000); // 8000-byte rows
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> engine.layerNorm(LayerNorm.defaults(), x, null, null));
        assertTrue(e.getMessage().contains("cannot be processed in chunks") && e.getMessage().contains("[2, 2000]"),
                e.getMessage());
        IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> engine.upload(x));
        assertTrue(d.getMessage().contains("CL_DEVICE_MAX_MEM_ALLOC_SIZE") && d.getMessage().contains("on the host"),
                d.getMessage());
    }
}
