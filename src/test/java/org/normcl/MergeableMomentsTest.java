package org.normcl;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.reference.Reference64Backward;
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

    /** Asserts that {@code call} throws IllegalArgumentException whose message contains every part. */
    private static void rejected(String what, Executable call, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call, what);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), () -> what + ": message '" + e.getMessage() + "' lacks '" + p + "'");
        }
    }

    @Test
    void momentsOutOfRangeAreRejectedNamingTheIndexAndTheValue() {
        double[] ok = {1, 2, 3};
        for (double bad : new double[] {-1e9, -Double.MIN_VALUE, Double.NEGATIVE_INFINITY}) {
            double[] m2 = {0, bad, 4};
            rejected("m2 " + bad, () -> ChannelMoments.of(5, ok, m2), "m2[1] = " + bad, "expected a value >= 0");
        }
        // What data holding NaN or an infinity gives (a rank's batchNormMoments, gathered for the
        // README's all-reduce recipe) is accepted, and propagates as in one pass.
        for (double odd : new double[] {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
            double[] mean = {1, 2, odd};
            double[] m2 = {0, 1, Double.isNaN(odd) ? odd : Double.POSITIVE_INFINITY};
            assertEquals(odd, ChannelMoments.of(5, mean, m2).mean()[2], "mean " + odd);
        }
        rejected("count", () -> ChannelMoments.of(-1, ok, ok), "count = -1", "expected >= 0");
        rejected("lengths", () -> ChannelMoments.of(2, ok, new double[2]), "mean has 3 slices but m2 has 2");
        rejected("null mean", () -> ChannelMoments.of(2, null, ok), "mean must not be null");
        // Zero M2 (constant data) is fine; an empty shard's values are not used, NaN included.
        assertEquals(0.0, ChannelMoments.of(4, ok, new double[3]).variance(false)[1]);
        assertEquals(0, ChannelMoments.of(0, new double[] {Double.NaN}, new double[] {Double.NaN}).count());
        ChannelMoments a = ChannelMoments.of(3, ok, ok);
        rejected("merge null", () -> ChannelMoments.merge(null), "parts must not be null");
        rejected("merge empty", () -> ChannelMoments.merge(List.of()), "at least one ChannelMoments");
        rejected("merge null element", () -> ChannelMoments.merge(Arrays.asList(a, null)),
                "parts[1] is null: expected a ChannelMoments");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void nanInTheDataPropagatesThroughMomentsAsInASingleEngineRun(Backends.Named backend) {
        // Moments of data are not checked like moments given by hand: a NaN value makes its
        // channel's mean NaN, and Y of that channel NaN, with or without the multi-device split.
        long[] dims = {4, 3, 5};
        float[] x = Data.gaussian("nan moments", Data.size(dims), 0, 1);
        x[2 * 15 + 5 + 1] = Float.NaN; // sample 2, channel 1
        HostTensor hx = HostTensor.of(x, dims);
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        ChannelMoments m = backend.engine().batchNormMoments(hx);
        assertTrue(Double.isNaN(m.mean()[1]), "NaN channel's mean");
        assertTrue(Double.isFinite(m.mean()[0]) && Double.isFinite(m.mean()[2]), "other channels' means");
        try (NormEngine second = secondEngine(backend);
                MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(backend.engine(), second));
                NormResult r = multi.forward(spec, hx, null, null, null, null)) {
            float[] y = r.y().toHost().data();
            for (int i = 0; i < y.length; i++) {
                assertEquals(i / 5 % 3 == 1, Float.isNaN(y[i]), "Y[" + i + "] is NaN exactly in channel 1");
            }
        }
    }

    /**
     * Moments of the whole batch and of three shards merged, each against the float64 two-pass
     * moments of the same values. Bounds: a mean within {@link Tolerances#mean} (32u of |mean| +
     * sigma); M2 within 129u relative: the saved inverse standard deviation is held to 64u relative
     * ({@link Tolerances#invStd}), which is 128u on the variance it is the inverse square root of,
     * plus one rounding to store M2 as float32. The merged M2 adds each shard's bound and the
     * error of the between-shard term {@code sum n_i (m_i - m)^2} of Chan's formula when each shard
     * mean m_i is off by d_i (at most b_i, its mean bound) and m by their weighted average d:
     * exactly {@code sum n_i (2 (m_i - m) d_i + (d_i - d)^2)} (the terms in d cancel, as
     * {@code sum n_i (m_i - m) = 0}), so at most {@code sum n_i (2 |m_i - m| b_i + (2 max b)^2)}.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void infinityInTheFirstShardKeepsTheMeanInfiniteAsInASingleEngineRun(Backends.Named backend) {
        // The oracle: a channel holding +inf has mean +inf (not NaN) and running mean
        // 0.9 * rm + 0.1 * inf = +inf; its variance is NaN (inf - inf). Chan's delta (finite - inf)
        // times a weight below 1, added to +inf, gave NaN when the infinity was in the first shard.
        long[] dims = {4, 3, 5};
        float[] x = Data.gaussian("inf moments", Data.size(dims), 0, 1);
        x[5 + 2] = Float.POSITIVE_INFINITY; // sample 0 (the first shard), channel 1
        float[] rm = {0.5f, 0.5f, 0.5f};
        float[] rv = {1f, 1f, 1f};
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, null, null, rm, rv, spec.epsilon(),
                spec.momentum(), false);
        assertEquals(Double.POSITIVE_INFINITY, ref.mean()[1], "the oracle's mean");
        assertEquals(Double.POSITIVE_INFINITY, ref.newRunningMean()[1], "the oracle's running mean");
        HostTensor hx = HostTensor.of(x, dims);
        try (NormEngine second = secondEngine(backend);
                MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(backend.engine(), second));
                NormResult single = backend.engine().batchNorm(spec, hx, null, null, HostTensor.of(rm, 3),
                        HostTensor.of(rv, 3));
                NormResult r = multi.forward(spec, hx, null, null, HostTensor.of(rm, 3), HostTensor.of(rv, 3))) {
            for (NormResult res : List.of(single, r)) {
                String which = res == single ? "single engine " : "two shards ";
                assertEquals(Float.POSITIVE_INFINITY, res.mean().toHost().data()[1], which + "mean of channel 1");
                assertEquals(Float.POSITIVE_INFINITY, res.runningMean().toHost().data()[1],
                        which + "running mean of channel 1");
                assertTrue(Float.isNaN(res.runningVar().toHost().data()[1]), which + "running variance of channel 1");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void shardsKeepTheDigitsOfALargeOffsetAsASingleEngineDoes(Backends.Named backend) {
        // 1e4 + 0.01 N(0, 1): ulp(1e4) / 2 = 4.9e-4 is 5% of the spread. A shard's mean rounded to
        // float32 put up to that error into the merged mean, 0.05 into Y; one engine is within 1e-6.
        long[] dims = {4, 3, 50};
        float[] x = Data.gaussian("offset moments", Data.size(dims), 1e4, 1e-2);
        HostTensor hx = HostTensor.of(x, dims);
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, null, null, new float[3],
                new float[3], spec.epsilon(), spec.momentum(), false);
        ChannelMoments m = backend.engine().batchNormMoments(HostTensor.of(Arrays.copyOf(x, 150), 1, 3, 50));
        double[] firstSample = Reference64.batchNormTraining(Arrays.copyOf(x, 150), new long[] {1, 3, 50}, null, null,
                new float[3], new float[3], spec.epsilon(), spec.momentum(), false).mean();
        for (int c = 0; c < 3; c++) {
            assertEquals(firstSample[c], m.mean()[c], 1e-6, "a shard's mean of channel " + c);
        }
        try (NormEngine second = secondEngine(backend);
                MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(backend.engine(), second));
                NormResult r = multi.forward(spec, hx, null, null, null, null)) {
            assertYWithin1e4(ref.y(), r, "two shards");
        }
    }

    /** Y within 1e-4 of the oracle: float32 rounding is 1e-6 here, a rounded mean's cost 1e-2. */
    private static void assertYWithin1e4(double[] ref, NormResult r, String what) {
        double[] y = r.y().toHost().toDoubles();
        for (int i = 0; i < y.length; i++) {
            assertEquals(ref[i], y[i], 1e-4, "Y[" + i + "] of " + what);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormFromMomentsKeepsTheDigitsOfALargeOffset(Backends.Named backend) {
        // As above for group norm: Y applied with the moments' mean rounded to float32 and nothing
        // of its rounding error was off by 0.05 on 1e4 + 0.01 N(0, 1).
        long[] dims = {2, 4, 60};
        float[] x = Data.gaussian("offset group moments", Data.size(dims), 1e4, 1e-2);
        float[] w = {0.5f, 1f, 1.5f, 2f};
        HostTensor hx = HostTensor.of(x, dims);
        GroupNorm spec = GroupNorm.of(2);
        Reference64.Normalized ref = Reference64.groupNorm(x, dims, 2, spec.epsilon(), w, null, false);
        NormEngine e = backend.engine();
        try (NormResult r = e.groupNorm(spec, hx, HostTensor.of(w, 4), null, e.groupNormMoments(spec, hx))) {
            assertYWithin1e4(ref.y(), r, "group norm from moments");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void shardMomentsMergeToTheWholeBatch(Backends.Named backend) {
        NormEngine e = backend.engine();
        long[] dims = {7, 3, 11, 13};
        int channels = 3;
        int per = 3 * 11 * 13;
        float[] x = Data.gaussian("moments", Data.size(dims), 1e3, 2);
        HostTensor whole = HostTensor.of(x, dims);
        ChannelMoments all = e.batchNormMoments(whole);
        double[][] ref = oracleMoments(x, 0, 7, channels, 11 * 13);
        List<ChannelMoments> parts = new ArrayList<>();
        List<double[][]> shardRefs = new ArrayList<>();
        for (int[] r : new int[][] {{0, 2}, {2, 3}, {3, 7}}) {
            parts.add(e.batchNormMoments(HostTensor.of(Arrays.copyOfRange(x, r[0] * per, r[1] * per), r[1] - r[0], 3,
                    11, 13)));
            shardRefs.add(oracleMoments(x, r[0], r[1], channels, 11 * 13));
        }
        double[] maxMeanBound = new double[channels];
        for (int s = 0; s < parts.size(); s++) {
            double[][] sr = shardRefs.get(s);
            assertMoments("shard " + s, parts.get(s), sr, m2Bounds(sr));
            for (int c = 0; c < channels; c++) {
                maxMeanBound[c] = Math.max(maxMeanBound[c], meanBounds(sr, parts.get(s).count())[c]);
            }
        }
        double[] mergedBound = new double[channels];
        for (int s = 0; s < parts.size(); s++) {
            double[][] sr = shardRefs.get(s);
            long count = parts.get(s).count();
            for (int c = 0; c < channels; c++) {
                double between = 2 * Math.abs(sr[0][c] - ref[0][c]) * meanBounds(sr, count)[c]
                        + 4 * maxMeanBound[c] * maxMeanBound[c];
                mergedBound[c] += m2Bounds(sr)[c] + count * between;
            }
        }
        ChannelMoments merged = ChannelMoments.merge(parts);
        assertEquals(7 * 11 * 13, merged.count());
        assertEquals(7 * 11 * 13, all.count());
        assertMoments("whole batch", all, ref, m2Bounds(ref));
        assertMoments("merged shards", merged, ref, mergedBound);
    }

    /** @return {mean, M2} per channel of samples [from, to) of (N, channels, inner) data, in float64, two passes */
    private static double[][] oracleMoments(float[] x, int from, int to, int channels, int inner) {
        double[] mean = new double[channels];
        double[] m2 = new double[channels];
        long count = (long) (to - from) * inner;
        for (int c = 0; c < channels; c++) {
            double s = 0;
            for (int n = from; n < to; n++) {
                for (int i = 0; i < inner; i++) {
                    s += x[(n * channels + c) * inner + i];
                }
            }
            mean[c] = s / count;
            double q = 0;
            for (int n = from; n < to; n++) {
                for (int i = 0; i < inner; i++) {
                    double d = x[(n * channels + c) * inner + i] - mean[c];
                    q += d * d;
                }
            }
            m2[c] = q;
        }
        return new double[][] {mean, m2};
    }

    /** 128u relative on M2 (the invStd bound squared) plus u to store it. */
    private static double[] m2Bounds(double[][] ref) {
        double[] b = new double[ref[1].length];
        for (int c = 0; c < b.length; c++) {
            b[c] = 129 * Tolerances.U * ref[1][c];
        }
        return b;
    }

    /** {@link Tolerances#mean} of each channel's reference mean, sigma from its M2 over {@code count} values. */
    private static double[] meanBounds(double[][] ref, long count) {
        double[] b = new double[ref[0].length];
        for (int c = 0; c < b.length; c++) {
            b[c] = Tolerances.mean(ref[0][c], Math.sqrt(ref[1][c] / count));
        }
        return b;
    }

    private static void assertMoments(String what, ChannelMoments m, double[][] ref, double[] m2Bound) {
        Tolerances.assertWithin(what + " mean", m.mean(), ref[0], meanBounds(ref, m.count()));
        Tolerances.assertWithin(what + " M2", m.m2(), ref[1], m2Bound);
    }

    /**
     * A second engine of the backend's kind (on one OpenCL device: a second context), for the
     * multi-device helper; the caller closes it.
     */
    private static NormEngine secondEngine(Backends.Named backend) {
        return backend.name().equals("java") ? NormEngine.create(EngineOptions.java())
                : NormEngine.create(EngineOptions.opencl(backend.engine().device().orElseThrow().index() + ""));
    }


    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void multiDeviceEqualsTheOracleAndSingleDeviceInEveryLayoutAndType(Backends.Named backend) {
        // (4, 3, 5, 3) channels-last has H == C: moments taken channels-first there group the
        // values by H, in the right number of slices, so only the values show the mistake.
        // (1, 3, 10) is one shard; (2, 6) two shards of one value per channel.
        long[][] first = {{5, 4, 9, 7}, {4, 3, 5, 3}, {1, 3, 10}, {2, 6}};
        long[][] last = {{4, 3, 5, 3}, {4, 2, 5, 3}, {5, 7, 2}};
        try (NormEngine second = secondEngine(backend)) {
            for (DType t : DType.values()) {
                for (long[] dims : first) {
                    assertMultiDeviceMatches(backend.engine(), second, Layout.CHANNELS_FIRST, t, dims);
                }
                for (long[] dims : last) {
                    assertMultiDeviceMatches(backend.engine(), second, Layout.CHANNELS_LAST, t, dims);
                }
            }
        }
    }

    @Test
    void multiDeviceHelperNamesABadEngineList() {
        rejected("null list", () -> MultiDeviceBatchNorm.on(null), "engines must not be null");
        rejected("empty list", () -> MultiDeviceBatchNorm.on(List.of()), "engines is empty");
        try (NormEngine a = NormEngine.create(EngineOptions.java())) {
            rejected("null engine", () -> MultiDeviceBatchNorm.on(Arrays.asList(a, null)),
                    "engines[1] is null: expected a NormEngine");
        }
    }

    @Test
    void multiDeviceHelperAfterCloseSaysItIsClosed() {
        try (NormEngine a = NormEngine.create(EngineOptions.java());
                NormEngine b = NormEngine.create(EngineOptions.java())) {
            MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(a, b));
            multi.close();
            multi.close(); // idempotent
            HostTensor x = HostTensor.of(Data.gaussian("closed helper", 24, 0, 1), 4, 3, 2);
            BatchNorm spec = BatchNorm.defaults().withTraining(true);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> multi.forward(spec, x, null, null, null, null));
            assertEquals("this MultiDeviceBatchNorm is closed", e.getMessage());
            // The caller's engines are the caller's: still open.
            assertDoesNotThrow(() -> a.batchNorm(spec, x, null, null, null, null).close());
        }
    }

    /**
     * The multi-device forward of one batch (split in two along N) against the float64 reference
     * on the values actually stored, and against a single-engine run of the same call: Y, its
     * type, the saved mean and inverse standard deviation, and the PyTorch running statistics.
     * Bounds as in {@code DTypeLayoutTest}: the compute bound with the computation's unit
     * roundoff plus the rounding of the stored output.
     */
    private static void assertMultiDeviceMatches(NormEngine engine, NormEngine second, Layout layout, DType t,
            long[] dims) {
        String what = t + " " + layout + " " + Arrays.toString(dims);
        boolean lastLayout = layout == Layout.CHANNELS_LAST;
        Reference64Backward.Sliced op = lastLayout ? Reference64Backward.batchChannelsLast(dims, 1e-5f)
                : Reference64Backward.batch(dims, 1e-5f);
        int c = op.slices();
        int n = Data.size(dims);
        // Channel k centred on 3k, so that values grouped by the wrong axis have other statistics.
        double[] raw = Data.gaussianDoubles(what, n, 0, 1.5);
        for (int i = 0; i < n; i++) {
            raw[i] += 3 * op.slice()[i];
        }
        HostTensor x = HostTensor.fromDoubles(raw, t, Shape.of(dims));
        float[] w = Data.gaussian(what + " w", c, 1, 0.3);
        float[] b = Data.gaussian(what + " b", c, 0, 0.3);
        float[] rm = Data.gaussian(what + " rm", c, 0, 1);
        float[] rv = Data.uniform(what + " rv", c, 0.5, 2);
        BatchNorm spec = BatchNorm.defaults().withTraining(true).withLayout(layout)
                .withConvention(MomentumConvention.PYTORCH);
        try (MultiDeviceBatchNorm multi = MultiDeviceBatchNorm.on(List.of(engine, second));
                NormResult m = multi.forward(spec, x, HostTensor.of(w, c), HostTensor.of(b, c), HostTensor.of(rm, c),
                        HostTensor.of(rv, c));
                NormResult s = engine.batchNorm(spec, x, HostTensor.of(w, c), HostTensor.of(b, c),
                        HostTensor.of(rm, c), HostTensor.of(rv, c))) {
            assertEquals(s.y().dtype(), m.y().dtype(), what + ": Y has the single-engine type");
            assertEquals(t, m.y().dtype(), what + ": Y keeps X's type");
            assertEquals(s.mean().dtype(), m.mean().dtype(), what + ": mean has the single-engine type");
            double[] xd = x.toDoubles();
            double[][] st = Reference64Backward.stats(op, xd);
            double[] mean = st[0];
            double[] inv = st[1];
            double[] xh = Reference64Backward.xhat(op, xd);
            double uc = Tolerances.computeU(t);
            double[] yRef = new double[n];
            double[] bound = new double[n];
            for (int i = 0; i < n; i++) {
                int k = op.slice()[i];
                yRef[i] = xh[i] * w[k] + b[k];
                bound[i] = Tolerances.element(uc, xh[i], Math.abs(mean[k]) * inv[k], w[k], b[k], yRef[i])
                        + Tolerances.storeU(t) * Math.abs(yRef[i]) + Tolerances.storeFloor(t);
            }
            Tolerances.assertWithin(what + " multi-device Y", m.y().toHost().toDoubles(), yRef, bound);
            // Both within the bound of the oracle, so within twice it of each other.
            double[] twice = new double[n];
            for (int i = 0; i < n; i++) {
                twice[i] = 2 * bound[i];
            }
            Tolerances.assertWithin(what + " multi vs single Y", m.y().toHost().toDoubles(),
                    s.y().toHost().toDoubles(), twice);
            long count = n / c;
            double[] meanBound = new double[c];
            double[] invBound = new double[c];
            double[] newRm = new double[c];
            double[] newRv = new double[c];
            double[] runBound = new double[c];
            for (int k = 0; k < c; k++) {
                double sigma = 1 / inv[k];
                meanBound[k] = Tolerances.mean(uc, mean[k], sigma);
                invBound[k] = Tolerances.invStd(uc, inv[k]);
                double var = 1 / (inv[k] * inv[k]) - 1e-5f;
                newRm[k] = 0.9 * rm[k] + 0.1 * mean[k];
                newRv[k] = 0.9 * rv[k] + 0.1 * var * count / (count - 1);
                runBound[k] = 64 * Tolerances.U * (Math.abs(rm[k]) + Math.abs(rv[k]) + Math.abs(mean[k])
                        + sigma * sigma);
            }
            Tolerances.assertWithin(what + " multi-device mean", m.mean().toHost().toDoubles(), mean, meanBound);
            Tolerances.assertWithin(what + " multi-device InvStdDev", m.invStdDev().toHost().toDoubles(), inv,
                    invBound);
            Tolerances.assertWithin(what + " multi-device running mean", m.runningMean().toHost().toDoubles(), newRm,
                    runBound);
            Tolerances.assertWithin(what + " multi-device running var", m.runningVar().toHost().toDoubles(), newRv,
                    runBound);
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
        float[] top = planeHalf(x, 0);
        float[] bottom = planeHalf(x, 15);
        ChannelMoments merged = ChannelMoments.merge(List.of(
                e.groupNormMoments(spec, HostTensor.of(top, 2, 4, 3, 5)),
                e.groupNormMoments(spec, HostTensor.of(bottom, 2, 4, 3, 5))));
        try (NormResult viaMoments = e.groupNorm(spec, HostTensor.of(x, dims), null, null, merged)) {
            Reference64.Normalized ref = Reference64.groupNorm(x, dims, 2, 1e-5f, null, null, false);
            double[] bound = groupBound(x, ref, 60);
            Tolerances.assertWithin("group norm from merged moments", viaMoments.y().toHost().data(), ref.y(), bound);
            // Each device normalizes its own half with the merged moments: the matching half of the
            // whole's reference (the values [from, from + 15) of each plane).
            for (int from : new int[] {0, 15}) {
                try (NormResult half = e.groupNorm(spec, HostTensor.of(planeHalf(x, from), 2, 4, 3, 5), null, null,
                        merged)) {
                    Tolerances.assertWithin("half " + from + " from merged moments", half.y().toHost().data(),
                            planeHalf(ref.y(), from), planeHalf(bound, from));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormFromMomentsTakesChannelsLastX(Backends.Named backend) {
        // The moments of the channels-first tensor (groupNormMoments' layout) normalize the same
        // data stored channels-last: the float64 reference of the channels-first data, transposed.
        NormEngine e = backend.engine();
        long[] dims = {2, 4, 3, 5};
        float[] x = Data.gaussian("gn moments nhwc", Data.size(dims), 2, 1.5);
        GroupNorm spec = GroupNorm.of(2);
        ChannelMoments m = e.groupNormMoments(spec, HostTensor.of(x, dims));
        Reference64.Normalized ref = Reference64.groupNorm(x, dims, 2, 1e-5f, null, null, false);
        double[] bound = groupBound(x, ref, 30);
        try (NormResult r = e.groupNorm(spec.withLayout(Layout.CHANNELS_LAST),
                HostTensor.of(channelsLast(x, 2, 4, 15), 2, 3, 5, 4), null, null, m)) {
            Tolerances.assertWithin("channels-last group norm from moments", r.y().toHost().data(),
                    channelsLast(ref.y(), 2, 4, 15), channelsLast(bound, 2, 4, 15));
        }
    }

    /** Per-value bounds of group norm Y (no affine) against its float64 reference, slices of {@code slice} values. */
    private static double[] groupBound(float[] x, Reference64.Normalized ref, int slice) {
        double[] bound = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int g = i / slice;
            bound[i] = Tolerances.element((x[i] - ref.mean()[g]) * ref.invStd()[g],
                    Math.abs(ref.mean()[g]) * ref.invStd()[g], 1, 0, ref.y()[i]);
        }
        return bound;
    }

    /** (n, c, s) to (n, s, c): a channels-first tensor of {@code c} channels and {@code s} values each. */
    private static float[] channelsLast(float[] x, int n, int c, int s) {
        float[] out = new float[x.length];
        channelsLast(x, out, n, c, s);
        return out;
    }

    /** {@link #channelsLast(float[], int, int, int)} of float64 values. */
    private static double[] channelsLast(double[] x, int n, int c, int s) {
        double[] out = new double[x.length];
        channelsLast(x, out, n, c, s);
        return out;
    }

    /** Copies the (n, c, s) array {@code x} into the (n, s, c) array {@code out}, value by value. */
    private static void channelsLast(Object x, Object out, int n, int c, int s) {
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < c; j++) {
                for (int k = 0; k < s; k++) {
                    System.arraycopy(x, (i * c + j) * s + k, out, (i * s + k) * c + j, 1);
                }
            }
        }
    }

    /** Values {@code [from, from + 15)} of each of the 8 planes of 30 values of a 2x4x6x5 tensor. */
    private static float[] planeHalf(float[] x, int from) {
        float[] half = new float[x.length / 2];
        planeHalf(x, from, half);
        return half;
    }

    /** {@link #planeHalf(float[], int)} of float64 values (a reference, its bounds). */
    private static double[] planeHalf(double[] x, int from) {
        double[] half = new double[x.length / 2];
        planeHalf(x, from, half);
        return half;
    }

    /** Copies values {@code [from, from + 15)} of each plane of 30 of {@code x} into {@code half}. */
    private static void planeHalf(Object x, int from, Object half) {
        for (int plane = 0; plane < 8; plane++) {
            System.arraycopy(x, plane * 30 + from, half, plane * 15, 15);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormRejectsMomentsOfPartOfEachGroup(Backends.Named backend) {
        NormEngine e = backend.engine();
        long[] dims = {2, 4, 6, 5};
        float[] x = Data.gaussian("gn part", Data.size(dims), 2, 1.5);
        GroupNorm spec = GroupNorm.of(2);
        // The moments of the top half only (the first 15 of each plane's 30 values): the right
        // number of slices, half the values each. Normalizing with them was a silent wrong answer.
        ChannelMoments half = e.groupNormMoments(spec, HostTensor.of(planeHalf(x, 0), 2, 4, 3, 5));
        IllegalArgumentException err = assertThrows(IllegalArgumentException.class,
                () -> e.groupNorm(spec, HostTensor.of(x, dims), null, null, half));
        assertEquals("moments has a count of 30 values per slice: expected at least (C / G) * D1 * ... = 60 for X of"
                + " shape [2, 4, 6, 5] (more when X is one part of a spatially split image)", err.getMessage());
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
                double[] meanBound = new double[3];
                double[] varBound = new double[3];
                for (int c = 0; c < 3; c++) {
                    double var = 1 / (ref.invStd()[c] * ref.invStd()[c]);
                    meanBound[c] = Tolerances.runningMean(ref.mean()[c], Math.sqrt(var), rm[c],
                            ref.newRunningMean()[c]);
                    varBound[c] = Tolerances.runningVar(var, rv[c], ref.newRunningVar()[c]);
                }
                Tolerances.assertWithin("running mean n=" + n, r.runningMean().toHost().data(), ref.newRunningMean(),
                        meanBound);
                Tolerances.assertWithin("running var n=" + n, r.runningVar().toHost().data(), ref.newRunningVar(),
                        varBound);
            }
        }
        assertThrows(IllegalArgumentException.class, () -> BatchNorm.defaults().withCumulativeAverage(0));
    }
}
