package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.Tolerances;

/**
 * Batch statistics that merge across shards (Chan's formula), the multi-device helper against a
 * single-device run and the float64 oracle, group-norm moments merged across a spatial split, and
 * PyTorch's cumulative moving average.
 */
class MergeableMomentsTest {

    static Stream<Backends.Named> backends() {
        return Backends.all().stream();
    }

    @Test
    void mergeIsExactForKnownData() {
        // [1, 2, 3] and [4, 5]: whole mean 3, M2 = 4 + 1 + 0 + 1 + 4 = 10.
        ChannelMoments a = ChannelMoments.of(3, new double[] {2}, new double[] {2});
        ChannelMoments b = ChannelMoments.of(2, new double[] {4.5}, new double[] {0.5});
        ChannelMoments m = ChannelMoments.merge(List.of(a, b));
        assertEquals(5, m.count());
        assertEquals(3.0, m.mean()[0], 1e-15);
        assertEquals(10.0, m.m2()[0], 1e-15);
        assertEquals(2.0, m.variance(false)[0], 1e-15);
        assertEquals(2.5, m.variance(true)[0], 1e-15);
        ChannelMoments empty = ChannelMoments.of(0, new double[] {Double.NaN}, new double[] {Double.NaN});
        assertEquals(3.0, ChannelMoments.merge(List.of(empty, a, b, empty)).mean()[0], 1e-15, "empty shards ignored");
        assertThrows(IllegalArgumentException.class,
                () -> ChannelMoments.merge(List.of(a, ChannelMoments.of(1, new double[2], new double[2]))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void shardMomentsMergeToTheWholeBatch(Backends.Named backend) {
        NormEngine e = backend.engine();
        long[] dims = {7, 3, 11, 13};
        float[] x = Data.gaussian("moments", Data.size(dims), 1e3, 2);
        HostTensor whole = HostTensor.of(x, dims);
        ChannelMoments all = e.batchNormMoments(whole);
        List<ChannelMoments> parts = new ArrayList<>();
        int per = 3 * 11 * 13;
        for (int[] r : new int[][] {{0, 2}, {2, 3}, {3, 7}}) {
            parts.add(e.batchNormMoments(HostTensor.of(Arrays.copyOfRange(x, r[0] * per, r[1] * per), r[1] - r[0], 3,
                    11, 13)));
        }
        ChannelMoments merged = ChannelMoments.merge(parts);
        assertEquals(7 * 11 * 13, merged.count());
        for (int c = 0; c < 3; c++) {
            // float32 moments of each shard: the mean within a few ulps of 1e3, M2 within float32 rounding.
            assertEquals(all.mean()[c], merged.mean()[c], 8 * Math.ulp(1e3f), "mean of channel " + c);
            assertEquals(all.m2()[c], merged.m2()[c], 1e-5 * all.m2()[c], "M2 of channel " + c);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void multiDeviceEqualsSingleDeviceAndTheOracle(Backends.Named backend) {
        // Two engines of the same kind (on one OpenCL device: two contexts), as the issue allows.
        NormEngine second = backend.name().equals("java") ? NormEngine.create(EngineOptions.java())
                : NormEngine.create(EngineOptions.opencl(backend.engine().device().orElseThrow().index() + ""));
        try (second) {
            for (long[] dims : new long[][] {{5, 4, 9, 7}, {1, 3, 10}, {2, 6}}) {
                float[] x = Data.gaussian("multi" + dims[0], Data.size(dims), 3, 2);
                int c = (int) dims[1];
                float[] w = Data.gaussian("multi w", c, 1, 0.3);
                float[] b = Data.gaussian("multi b", c, 0, 0.3);
                float[] rm = Data.gaussian("multi rm", c, 0, 1);
                float[] rv = Data.uniform("multi rv", c, 0.5, 2);
                HostTensor hx = HostTensor.of(x, dims);
                BatchNorm spec = BatchNorm.defaults().withTraining(true).withConvention(MomentumConvention.PYTORCH);
                try (MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(backend.engine(), second));
                        NormResult m = multi.forward(spec, hx, HostTensor.of(w, c), HostTensor.of(b, c),
                                HostTensor.of(rm, c), HostTensor.of(rv, c));
                        NormResult s = backend.engine().batchNorm(spec, hx, HostTensor.of(w, c), HostTensor.of(b, c),
                                HostTensor.of(rm, c), HostTensor.of(rv, c))) {
                    Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, w, b, rm, rv, 1e-5f,
                            spec.momentum(), true);
                    int spatial = x.length / (int) dims[0] / c;
                    double[] bound = new double[x.length];
                    for (int i = 0; i < x.length; i++) {
                        int ch = (i / spatial) % c;
                        double inv = ref.invStd()[ch];
                        bound[i] = Tolerances.element((x[i] - ref.mean()[ch]) * inv, Math.abs(ref.mean()[ch]) * inv,
                                w[ch], b[ch], ref.y()[i]);
                    }
                    String shape = Arrays.toString(dims);
                    Tolerances.assertWithin("multi-device Y " + shape, m.y().toHost().data(), ref.y(), bound);
                    // Against the single-device run: both within the bound of the oracle, so within twice it.
                    float[] single = s.y().toHost().data();
                    double[] singleD = new double[single.length];
                    for (int i = 0; i < single.length; i++) {
                        singleD[i] = single[i];
                        bound[i] *= 2;
                    }
                    Tolerances.assertWithin("multi vs single Y " + shape, m.y().toHost().data(), singleD, bound);
                    double[] runBound = new double[c];
                    double[] meanBound = new double[c];
                    for (int ch = 0; ch < c; ch++) {
                        double sigma = 1 / ref.invStd()[ch];
                        meanBound[ch] = Tolerances.mean(ref.mean()[ch], sigma);
                        runBound[ch] = 64 * Tolerances.U * (Math.abs(rv[ch]) + Math.abs(ref.newRunningVar()[ch])
                                + sigma * sigma);
                    }
                    Tolerances.assertWithin("multi-device mean " + shape, m.mean().toHost().data(), ref.mean(),
                            meanBound);
                    Tolerances.assertWithin("multi-device running var " + shape, m.runningVar().toHost().data(),
                            ref.newRunningVar(), runBound);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormMomentsMergeAcrossASpatialSplit(Backends.Named backend) {
        NormEngine e = backend.engine();
        long[] dims = {2, 4, 6, 5};
        float[] x = Data.gaussian("gn split", Data.size(dims), 2, 1.5);
        GroupNorm spec = GroupNorm.of(2);
        // Split along D1 (rows 0..2 and 3..5 of every (n, c) plane): each half is its own tensor.
        float[] top = new float[x.length / 2];
        float[] bottom = new float[x.length / 2];
        for (int plane = 0; plane < 8; plane++) {
            System.arraycopy(x, plane * 30, top, plane * 15, 15);
            System.arraycopy(x, plane * 30 + 15, bottom, plane * 15, 15);
        }
        ChannelMoments merged = ChannelMoments.merge(List.of(
                e.groupNormMoments(spec, HostTensor.of(top, 2, 4, 3, 5)),
                e.groupNormMoments(spec, HostTensor.of(bottom, 2, 4, 3, 5))));
        try (NormResult viaMoments = e.groupNorm(spec, HostTensor.of(x, dims), null, null, merged)) {
            Reference64.Normalized ref = Reference64.groupNorm(x, dims, 2, 1e-5f, null, null, false);
            double[] bound = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                int slice = i / 60;
                bound[i] = Tolerances.element((x[i] - ref.mean()[slice]) * ref.invStd()[slice],
                        Math.abs(ref.mean()[slice]) * ref.invStd()[slice], 1, 0, ref.y()[i]);
            }
            Tolerances.assertWithin("group norm from merged moments", viaMoments.y().toHost().data(), ref.y(), bound);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void cumulativeAverageIsPyTorchWithMomentumOneOverN(Backends.Named backend) {
        long[] dims = {6, 3, 4};
        float[] x = Data.gaussian("cma", Data.size(dims), 1, 2);
        float[] rm = {0.5f, -1, 2};
        float[] rv = {1, 2, 0.5f};
        for (long n : new long[] {1, 2, 7}) {
            try (NormResult r = backend.engine().batchNorm(BatchNorm.defaults().withTraining(true)
                    .withCumulativeAverage(n), HostTensor.of(x, dims), null, null, HostTensor.of(rm, 3),
                    HostTensor.of(rv, 3))) {
                Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, null, null, rm, rv, 1e-5f,
                        (float) (1.0 / n), true);
                double[] bound = new double[3];
                Arrays.fill(bound, 1e-5);
                Tolerances.assertWithin("running mean n=" + n, r.runningMean().toHost().data(), ref.newRunningMean(),
                        bound);
                Tolerances.assertWithin("running var n=" + n, r.runningVar().toHost().data(), ref.newRunningVar(),
                        bound);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> BatchNorm.defaults().withCumulativeAverage(0));
    }
}
