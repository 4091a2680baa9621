package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * float16, bfloat16 and float64 data, float32 or same-type parameters, and channels-last layouts,
 * forward and backward, on every backend, against the float64 reference evaluated on the values
 * actually stored (the inputs rounded to their type).
 *
 * <p>Bounds: the compute bound of {@link Tolerances} with the unit roundoff of the computation
 * (float32 for the 16-bit types and float32, float64 for float64), plus the rounding of the
 * stored output: {@code storeU(type) * |y_ref| + storeFloor(type)} (2^-11 for float16, 2^-8 for
 * bfloat16; see docs/tolerances.md).
 */
class DTypeLayoutTest {

    /** One case. */
    record Case(String op, long[] dims, int groups, Layout layout, DType dtype, boolean sameTypeParams,
            double offset, double sd) {
        @Override
        public String toString() {
            return op + java.util.Arrays.toString(dims) + (groups > 0 ? " G" + groups : "") + " " + dtype
                    + (sameTypeParams ? " params " + dtype : "") + (layout == Layout.CHANNELS_LAST ? " NHWC" : "")
                    + (offset != 0 ? " offset " + offset : "");
        }
    }

    static Stream<Arguments> cases() {
        List<Case> cases = new ArrayList<>();
        for (DType t : DType.values()) {
            for (boolean same : new boolean[] {false, true}) {
                if (same && t == DType.FLOAT32) {
                    continue;
                }
                cases.add(new Case("layer", new long[] {6, 37}, 0, Layout.CHANNELS_FIRST, t, same, 1, 2));
                cases.add(new Case("layer", new long[] {2, 3000}, 0, Layout.CHANNELS_FIRST, t, same, 0, 1));
                cases.add(new Case("rms", new long[] {5, 33}, 0, Layout.CHANNELS_FIRST, t, same, 0, 1));
                for (Layout l : Layout.values()) {
                    long[] d = l == Layout.CHANNELS_FIRST ? new long[] {2, 6, 5, 7} : new long[] {2, 5, 7, 6};
                    cases.add(new Case("group", d, 3, l, t, same, 0.5, 1.5));
                    cases.add(new Case("group-per-group", d, 2, l, t, same, 0, 1));
                    cases.add(new Case("instance", d, 0, l, t, same, -1, 2));
                    cases.add(new Case("batch", d, 0, l, t, same, 2, 1));
                    cases.add(new Case("batch-inference", d, 0, l, t, same, 2, 1));
                }
            }
        }
        // float16 magnitudes near 400: their squares (1.6e5) overflow float16, never the float32 statistics.
        cases.add(new Case("layer", new long[] {4, 129}, 0, Layout.CHANNELS_FIRST, DType.FLOAT16, true, 400, 20));
        cases.add(new Case("batch", new long[] {4, 3, 9, 9}, 0, Layout.CHANNELS_FIRST, DType.FLOAT16, false, -400,
                10));
        cases.add(new Case("group", new long[] {2, 9, 9, 4}, 2, Layout.CHANNELS_LAST, DType.FLOAT16, false, 400, 30));
        // float64 with means of 1e9: only float64 statistics keep the unit spread.
        cases.add(new Case("layer", new long[] {3, 1000}, 0, Layout.CHANNELS_FIRST, DType.FLOAT64, true, 1e9, 1));
        cases.add(new Case("batch", new long[] {5, 2, 40}, 0, Layout.CHANNELS_FIRST, DType.FLOAT64, false, 1e9, 1));
        cases.add(new Case("instance", new long[] {2, 50, 3}, 0, Layout.CHANNELS_LAST, DType.FLOAT64, false, -1e9, 1));
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (Case c : cases) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    private static long channels(Case c) {
        return c.layout() == Layout.CHANNELS_LAST ? c.dims()[c.dims().length - 1] : c.dims()[1];
    }

    private static Reference64Backward.Sliced sliced(Case c) {
        boolean last = c.layout() == Layout.CHANNELS_LAST;
        int ch = (int) channels(c);
        switch (c.op()) {
            case "layer":
                return Reference64Backward.layer(c.dims(), -1, 1e-5f, false);
            case "rms":
                return Reference64Backward.layer(c.dims(), -1, 1e-5f, true);
            case "group":
            case "group-per-group": {
                boolean pg = c.op().equals("group-per-group");
                return last ? Reference64Backward.groupChannelsLast(c.dims(), c.groups(), pg, 1e-5f)
                        : Reference64Backward.group(c.dims(), c.groups(), pg, 1e-5f);
            }
            case "instance":
                return last ? Reference64Backward.instanceChannelsLast(c.dims(), 1e-5f)
                        : Reference64Backward.instance(c.dims(), 1e-5f);
            default:
                return last ? Reference64Backward.batchChannelsLast(c.dims(), 1e-5f)
                        : Reference64Backward.batch(c.dims(), 1e-5f);
        }
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void forwardAndBackwardMatchTheFloat64Reference(Backends.Named backend, Case c) {
        Tolerances.onBackend(backend.name());
        NormEngine e = backend.engine();
        DType t = c.dtype();
        int n = Data.size(c.dims());
        String seed = c.toString();
        HostTensor x = t == DType.FLOAT64 ? HostTensor.ofDoubles(Data.gaussianDoubles(seed, n, c.offset(), c.sd()),
                c.dims()) : HostTensor.convert(Data.gaussian(seed, n, c.offset(), c.sd()), t, c.dims());
        HostTensor dy = t == DType.FLOAT64 ? HostTensor.ofDoubles(Data.gaussianDoubles(seed + "dy", n, 0, 1), c.dims())
                : HostTensor.convert(Data.gaussian(seed + "dy", n, 0, 1), t, c.dims());
        Reference64Backward.Sliced op = sliced(c);
        int affines = op.affines();
        long[] affineDims = c.op().equals("layer") || c.op().equals("rms") ? new long[] {c.dims()[c.dims().length - 1]}
                : new long[] {affines};
        DType pt = c.sameTypeParams() ? t : DType.FLOAT32;
        HostTensor w = HostTensor.convert(Data.gaussian(seed + "w", affines, 1, 0.3), pt, affineDims);
        HostTensor b = c.op().equals("rms") ? null
                : HostTensor.convert(Data.gaussian(seed + "b", affines, 0, 0.3), pt, affineDims);
        double[] xd = x.toDoubles();
        double[] wd = w.toDoubles();
        double[] bd = b == null ? null : b.toDoubles();
        double uc = Tolerances.computeU(t);
        boolean inference = c.op().equals("batch-inference");
        double[] rm = null;
        double[] rv = null;
        NormResult r;
        switch (c.op()) {
            case "layer":
                r = e.layerNorm(LayerNorm.defaults(), x, w, b);
                break;
            case "rms":
                r = e.rmsNorm(RmsNorm.defaults(), x, w);
                break;
            case "group":
            case "group-per-group":
                r = e.groupNorm(groupSpec(c), x, w, b);
                break;
            case "instance":
                r = e.instanceNorm(InstanceNorm.defaults().withLayout(c.layout()), x, w, b);
                break;
            case "batch":
                r = e.batchNorm(BatchNorm.defaults().withTraining(true).withLayout(c.layout()), x, w, b, null, null);
                break;
            default: {
                HostTensor hm = HostTensor.convert(Data.gaussian(seed + "rm", affines, c.offset(), 0.5), pt,
                        affines);
                HostTensor hv = HostTensor.convert(Data.uniform(seed + "rv", affines, 0.5, 2), pt, affines);
                rm = hm.toDoubles();
                rv = hv.toDoubles();
                r = e.batchNorm(BatchNorm.defaults().withLayout(c.layout()), x, w, b, hm, hv);
            }
        }
        try (r) {
            assertEquals(t, r.y().dtype(), "Y keeps X's type");
            assertEquals(t.statistics(), r.invStdDev().dtype(), "statistics type");
            double[] mean;
            double[] inv;
            double[] xh = inference ? null : Reference64Backward.xhat(op, xd);
            if (inference) {
                mean = new double[affines];
                inv = new double[affines];
                for (int k = 0; k < affines; k++) {
                    mean[k] = rm[k];
                    inv[k] = 1 / Math.sqrt(rv[k] + (double) 1e-5f);
                }
            } else {
                double[][] st = Reference64Backward.stats(op, xd);
                mean = st[0];
                inv = st[1];
            }
            double[] yRef = new double[n];
            double[] bound = new double[n];
            for (int i = 0; i < n; i++) {
                int s = op.slice()[i];
                int a = op.affine()[i];
                double xhat = inference ? (xd[i] - mean[s]) * inv[s] : xh[i];
                yRef[i] = xhat * wd[a] + (bd == null ? 0 : bd[a]);
                bound[i] = Tolerances.element(uc, xhat, Math.abs(mean[s]) * inv[s], wd[a], bd == null ? 0 : bd[a],
                        yRef[i]) + Tolerances.storeU(t) * Math.abs(yRef[i]) + Tolerances.storeFloor(t);
            }
            Tolerances.assertWithin(c + " Y", r.y().toHost().toDoubles(), yRef, bound);
            if (!inference) {
                double[] ib = new double[inv.length];
                for (int s = 0; s < ib.length; s++) {
                    ib[s] = Tolerances.invStd(uc, inv[s]);
                }
                Tolerances.assertWithin(c + " InvStdDev", r.invStdDev().toHost().toDoubles(), inv, ib);
            }
        }
        if (inference) {
            return;
        }
        // Backward, from recomputed statistics.
        GradResult g;
        switch (c.op()) {
            case "layer":
                g = e.layerNormBackward(LayerNorm.defaults(), dy, x, w, null);
                break;
            case "rms":
                g = e.rmsNormBackward(RmsNorm.defaults(), dy, x, w, null);
                break;
            case "group":
            case "group-per-group":
                g = e.groupNormBackward(groupSpec(c), dy, x, w, null);
                break;
            case "instance":
                g = e.instanceNormBackward(InstanceNorm.defaults().withLayout(c.layout()), dy, x, w, null);
                break;
            default:
                g = e.batchNormBackward(BatchNorm.defaults().withTraining(true).withLayout(c.layout()), dy, x, w, null,
                        null, null);
        }
        try (g) {
            assertEquals(t, g.dx().dtype(), "dX keeps X's type");
            assertEquals(pt, g.dScale().dtype(), "dScale has the parameter type");
            double[] dyd = dy.toDoubles();
            Reference64Backward.Grads ref = Reference64Backward.backward(op, xd, dyd, wd);
            GradBounds.Bounds gb = GradBounds.of(op, xd, dyd, wd, uc);
            Tolerances.assertWithin(c + " dX", g.dx().toHost().toDoubles(), ref.dx(), stored(gb.dx(), ref.dx(), t));
            Tolerances.assertWithin(c + " dScale", g.dScale().toHost().toDoubles(), ref.dScale(),
                    stored(gb.dScale(), ref.dScale(), pt));
            if (ref.dBias() == null) {
                assertEquals(null, g.dBias(), "RMS norm has no dBias");
            } else {
                assertEquals(pt, g.dBias().dtype(), "dBias has the parameter type");
                Tolerances.assertWithin(c + " dBias", g.dBias().toHost().toDoubles(), ref.dBias(),
                        stored(gb.dBias(), ref.dBias(), pt));
            }
        }
    }

    /** A compute bound plus the rounding of storing the result in {@code type} (see the class comment). */
    private static double[] stored(double[] bound, double[] ref, DType type) {
        double[] b = bound.clone();
        for (int i = 0; i < b.length; i++) {
            b[i] += Tolerances.storeU(type) * Math.abs(ref[i]) + Tolerances.storeFloor(type);
        }
        return b;
    }

    private static GroupNorm groupSpec(Case c) {
        return GroupNorm.of(c.groups()).withLayout(c.layout()).withAffine(
                c.op().equals("group-per-group") ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL);
    }

    static Stream<Backends.Named> backends() {
        return Backends.all().stream();
    }

    /** Channels-last gives the same answers as the NCHW computation on the transposed tensor. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void channelsLastEqualsChannelsFirstOnTheTransposedTensor(Backends.Named backend) {
        NormEngine e = backend.engine();
        long n = 3;
        long c = 6;
        long h = 4;
        long wdt = 5;
        float[] nchw = Data.gaussian("transpose", (int) (n * c * h * wdt), 1, 2);
        float[] nhwc = new float[nchw.length];
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                for (int s = 0; s < h * wdt; s++) {
                    nhwc[(int) ((i * h * wdt + s) * c + ch)] = nchw[(int) ((i * c + ch) * h * wdt + s)];
                }
            }
        }
        float[] w = Data.gaussian("transpose w", (int) c, 1, 0.3);
        HostTensor first = HostTensor.of(nchw, n, c, h, wdt);
        HostTensor last = HostTensor.of(nhwc, n, h, wdt, c);
        HostTensor hw = HostTensor.of(w, c);
        try (NormResult a = e.groupNorm(GroupNorm.of(3), first, hw, null);
                NormResult bl = e.groupNorm(GroupNorm.of(3).withLayout(Layout.CHANNELS_LAST), last, hw, null)) {
            assertTransposedClose(a.y().toHost().data(), bl.y().toHost().data(), n, c, h * wdt);
            float[] ma = a.mean().toHost().data();
            float[] mb = bl.mean().toHost().data();
            for (int i = 0; i < ma.length; i++) {
                assertEquals(ma[i], mb[i], 1e-5, "group mean " + i);
            }
        }
        try (NormResult a = e.batchNorm(BatchNorm.defaults().withTraining(true), first, hw, null, null, null);
                NormResult bl = e.batchNorm(BatchNorm.defaults().withTraining(true).withLayout(Layout.CHANNELS_LAST),
                        last, hw, null, null, null)) {
            assertTransposedClose(a.y().toHost().data(), bl.y().toHost().data(), n, c, h * wdt);
        }
        try (NormResult a = e.instanceNorm(InstanceNorm.defaults(), first, hw, null);
                NormResult bl = e.instanceNorm(InstanceNorm.defaults().withLayout(Layout.CHANNELS_LAST), last, hw,
                        null)) {
            assertTransposedClose(a.y().toHost().data(), bl.y().toHost().data(), n, c, h * wdt);
        }
    }

    /** Both results are within float32 rounding of the same values: 1e-5 on these unit-scale outputs. */
    private static void assertTransposedClose(float[] nchw, float[] nhwc, long n, long c, long s) {
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                for (int k = 0; k < s; k++) {
                    float a = nchw[(int) ((i * c + ch) * s + k)];
                    float b = nhwc[(int) ((i * s + k) * c + ch)];
                    assertEquals(a, b, 1e-5, "element (" + i + ", " + ch + ", " + k + ")");
                }
            }
        }
    }

    /** bfloat16 keeps NaN a NaN and rounds to nearest even; float16 rounds ties to even. */
    @Test
    void sixteenBitRoundingMatchesIeee() {
        assertTrue(Float.isNaN(HalfFloats.bfloat16ToFloat(HalfFloats.floatToBfloat16(Float.NaN))));
        // 1 + 2^-8 lies halfway between bfloat16 1 and 1 + 2^-7: ties to even gives 1.
        assertEquals(1f, HalfFloats.bfloat16ToFloat(HalfFloats.floatToBfloat16(1f + 0x1p-8f)));
        // 1 + 3*2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties to even gives 1 + 2^-6.
        assertEquals(1f + 0x1p-6f, HalfFloats.bfloat16ToFloat(HalfFloats.floatToBfloat16(1f + 3 * 0x1p-8f)));
        assertEquals(1f, HalfFloats.halfToFloat(HalfFloats.floatToHalf(1f + 0x1p-11f)));
        assertEquals(1f + 0x1p-9f, HalfFloats.halfToFloat(HalfFloats.floatToHalf(1f + 3 * 0x1p-11f)));
        assertEquals(65504f, HalfFloats.halfToFloat(HalfFloats.floatToHalf(65504f)));
        assertEquals(Float.POSITIVE_INFINITY, HalfFloats.halfToFloat(HalfFloats.floatToHalf(65520f)));
        assertEquals(0x1p-24f, HalfFloats.halfToFloat(HalfFloats.floatToHalf(0x1p-24f)), "smallest subnormal");
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = HalfFloats.halfToFloat((short) bits);
            if (!Float.isNaN(f)) {
                assertEquals((short) bits, HalfFloats.floatToHalf(f), "half round trip of " + Integer.toHexString(bits));
            }
        }
    }

    /** An explicit OpenCL engine without fp64 refuses float64; AUTO engines run it on Java. */
    @Test
    void float64SupportFollowsTheDevice() {
        for (Backends.Named b : Backends.all()) {
            boolean fp64 = b.engine().device().map(DeviceInfo::fp64).orElse(true);
            assertEquals(fp64, b.engine().supports(DType.FLOAT64), b.name());
        }
    }
}
