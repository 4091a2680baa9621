package org.normcl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * Every backward pass on every backend against the float64 analytic gradients of
 * {@link Reference64Backward} (themselves checked against finite differences), within the bounds
 * of {@link GradBounds}; with the forward's saved statistics and with statistics recomputed;
 * odd, long and large-offset shapes.
 */
class BackwardAccuracyTest {

    /** One case: an operator, a shape and how its gradients are taken. */
    record Case(String name, String op, long[] shape, int axisOrGroups, boolean perGroup, double offset,
            boolean useSaved, boolean withScale) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Case> cases = new ArrayList<>();
        cases.add(new Case("layer 5x13", "layer", new long[] {5, 13}, -1, false, 0, true, true));
        cases.add(new Case("layer hidden 1", "layer", new long[] {6, 1}, -1, false, 0, true, true));
        cases.add(new Case("layer 3x7x9 axis 1 recomputed", "layer", new long[] {3, 7, 9}, 1, false, 0.5, false, true));
        cases.add(new Case("layer long 3x65537", "layer", new long[] {3, 65537}, -1, false, 0, true, true));
        // One run a row (1024 values), 37 rows: pairs, an odd last row and a flush of the float32
        // parameter-gradient terms every 16 rows in the Java backend's row pipeline.
        cases.add(new Case("layer one run 37x1024", "layer", new long[] {37, 1024}, -1, false, 0, true, true));
        cases.add(new Case("layer 300x64 no scale", "layer", new long[] {300, 64}, -1, false, 0, true, false));
        cases.add(new Case("layer offset 1e4", "layer", new long[] {16, 257}, -1, false, 1e4, true, true));
        cases.add(new Case("rms 5x13", "rms", new long[] {5, 13}, -1, false, 0, true, true));
        cases.add(new Case("rms long 2x65537 recomputed", "rms", new long[] {2, 65537}, -1, false, 0, false, true));
        cases.add(new Case("rms one run 21x1024 recomputed", "rms", new long[] {21, 1024}, -1, false, 0, false,
                true));
        cases.add(new Case("rms 3x5x7 axis -2", "rms", new long[] {3, 5, 7}, -2, false, 0, true, true));
        cases.add(new Case("group 2x6x5x5 G3", "group", new long[] {2, 6, 5, 5}, 3, false, 0, true, true));
        cases.add(new Case("group per-group", "group", new long[] {3, 4, 2, 2}, 2, true, 0, true, true));
        cases.add(new Case("group odd 3x4x7 recomputed", "group", new long[] {3, 4, 7}, 2, false, 1, false, true));
        cases.add(new Case("group large 1x4x256x256 G1", "group", new long[] {1, 4, 256, 256}, 1, false, 0, true, true));
        cases.add(new Case("group offset 1e4", "group", new long[] {2, 8, 9, 9}, 4, false, 1e4, true, true));
        cases.add(new Case("instance 2x3x4x5", "instance", new long[] {2, 3, 4, 5}, 0, false, 0, true, true));
        cases.add(new Case("instance long 2x3x70001", "instance", new long[] {2, 3, 70001}, 0, false, 2, false, true));
        cases.add(new Case("batch train 4x3x5x5", "batch", new long[] {4, 3, 5, 5}, 0, false, 0, true, true));
        cases.add(new Case("batch train rank 2 recomputed", "batch", new long[] {64, 10}, 0, false, 0, false, true));
        cases.add(new Case("batch train 2 values per channel", "batch", new long[] {2, 3}, 0, false, 0, true, true));
        cases.add(new Case("batch train 1.2M per channel", "batch", new long[] {4, 2, 600, 512}, 0, false, 1, true,
                true));
        cases.add(new Case("batch train offset 1e4", "batch", new long[] {8, 3, 33, 17}, 0, false, 1e4, true, true));
        cases.add(new Case("batch train no scale", "batch", new long[] {4, 3, 7}, 0, false, 0, true, false));
        cases.add(new Case("batch inference", "batch-inference", new long[] {4, 3, 5, 5}, 0, false, 1, true, true));
        List<Arguments> args = new ArrayList<>();
        for (Backends.Named b : Backends.all()) {
            for (Case c : cases) {
                args.add(Arguments.of(b, c));
            }
        }
        return args.stream();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("cases")
    void matchesAnalyticFloat64Gradients(Backends.Named backend, Case c) {
        Tolerances.onBackend(backend.name());
        NormEngine e = backend.engine();
        Shape s = Shape.of(c.shape());
        float[] x = Data.gaussian(c.name() + "x", s.intSize(), c.offset(), 1.5);
        float[] dy = Data.gaussian(c.name() + "dy", s.intSize(), 0.1, 1);
        HostTensor hx = HostTensor.of(x, s);
        HostTensor hdy = HostTensor.of(dy, s);
        float eps = 1e-5f;
        Reference64Backward.Sliced op;
        Shape affineShape;
        switch (c.op()) {
            case "layer":
            case "rms": {
                boolean rms = c.op().equals("rms");
                op = Reference64Backward.layer(c.shape(), c.axisOrGroups(), eps, rms);
                int ax = s.normalizeAxis(c.axisOrGroups(), "axis");
                affineShape = s.slice(ax, s.rank());
                break;
            }
            case "group":
                op = Reference64Backward.group(c.shape(), c.axisOrGroups(), c.perGroup(), eps);
                affineShape = Shape.of(c.perGroup() ? c.axisOrGroups() : c.shape()[1]);
                break;
            case "instance":
                op = Reference64Backward.instance(c.shape(), eps);
                affineShape = Shape.of(c.shape()[1]);
                break;
            default:
                op = Reference64Backward.batch(c.shape(), eps);
                affineShape = Shape.of(c.shape()[1]);
        }
        float[] w = c.withScale() ? Data.gaussian(c.name() + "w", (int) affineShape.size(), 1, 0.5) : null;
        HostTensor hw = w == null ? null : HostTensor.of(w, affineShape);
        GradResult g;
        Reference64Backward.Grads ref;
        GradBounds.Bounds bounds;
        switch (c.op()) {
            case "layer": {
                LayerNorm spec = LayerNorm.defaults().withAxis(c.axisOrGroups());
                try (NormResult f = e.layerNorm(spec, hx, hw, null)) {
                    g = e.layerNormBackward(spec, hdy, hx, hw, c.useSaved() ? SavedStats.of(f) : null);
                }
                break;
            }
            case "rms": {
                RmsNorm spec = RmsNorm.defaults().withAxis(c.axisOrGroups());
                try (NormResult f = e.rmsNorm(spec, hx, hw)) {
                    g = e.rmsNormBackward(spec, hdy, hx, hw, c.useSaved() ? SavedStats.of(f) : null);
                }
                break;
            }
            case "group": {
                GroupNorm spec = GroupNorm.of(c.axisOrGroups())
                        .withAffine(c.perGroup() ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL);
                try (NormResult f = e.groupNorm(spec, hx, hw, null)) {
                    g = e.groupNormBackward(spec, hdy, hx, hw, c.useSaved() ? SavedStats.of(f) : null);
                }
                break;
            }
            case "instance": {
                try (NormResult f = e.instanceNorm(InstanceNorm.defaults(), hx, hw, null)) {
                    g = e.instanceNormBackward(InstanceNorm.defaults(), hdy, hx, hw,
                            c.useSaved() ? SavedStats.of(f) : null);
                }
                break;
            }
            case "batch": {
                BatchNorm spec = BatchNorm.defaults().withTraining(true);
                try (NormResult f = e.batchNorm(spec, hx, hw, null, null, null)) {
                    g = e.batchNormBackward(spec, hdy, hx, hw, null, null, c.useSaved() ? SavedStats.of(f) : null);
                }
                break;
            }
            default: { // batch inference
                int ch = (int) c.shape()[1];
                float[] rm = Data.gaussian(c.name() + "rm", ch, 1, 0.5);
                float[] rv = Data.uniform(c.name() + "rv", ch, 0.5, 2);
                g = e.batchNormBackward(BatchNorm.defaults(), hdy, hx, hw, HostTensor.of(rm, ch), HostTensor.of(rv, ch),
                        null);
                ref = Reference64Backward.batchInference(c.shape(), Reference64Backward.widen(x),
                        Reference64Backward.widen(dy), Reference64Backward.widen(w), Reference64Backward.widen(rm),
                        Reference64Backward.widen(rv), eps);
                try (GradResult r = g) {
                    double[] dxBound = new double[x.length];
                    for (int i = 0; i < x.length; i++) {
                        dxBound[i] = 8 * Tolerances.U * Math.abs(ref.dx()[i]) + Double.MIN_NORMAL;
                    }
                    Tolerances.assertWithin(c.name() + " dX", r.dx().toHost().data(), ref.dx(), dxBound);
                    checkParams(c, r, ref, boundsForInference(c, x, dy, rm, rv, eps));
                }
                return;
            }
        }
        ref = Reference64Backward.backward(op, Reference64Backward.widen(x), Reference64Backward.widen(dy),
                Reference64Backward.widen(w));
        bounds = GradBounds.of(op, x, dy, w);
        try (GradResult r = g) {
            assertEquals(s, r.dx().shape(), "dX shape");
            assertEquals(affineShape, r.dScale().shape(), "dScale shape");
            Tolerances.assertWithin(c.name() + " dX", r.dx().toHost().data(), ref.dx(), bounds.dx());
            checkParams(c, r, ref, bounds);
        }
    }

    private static void checkParams(Case c, GradResult r, Reference64Backward.Grads ref, GradBounds.Bounds bounds) {
        Tolerances.assertWithin(c.name() + " dScale", r.dScale().toHost().data(), ref.dScale(), bounds.dScale());
        if (ref.dBias() == null) {
            assertNull(r.dBias(), "RMS norm has no dBias");
        } else {
            Tolerances.assertWithin(c.name() + " dBias", r.dBias().toHost().data(), ref.dBias(), bounds.dBias());
        }
    }

    /** Inference: xhat uses the running statistics, so m and xhat come from them. */
    private static GradBounds.Bounds boundsForInference(Case c, float[] x, float[] dy, float[] rm, float[] rv,
            float eps) {
        int ch = (int) c.shape()[1];
        int spatial = (int) Shape.of(c.shape()).product(2, c.shape().length);
        double[] dScale = new double[ch];
        double[] dBias = new double[ch];
        for (int i = 0; i < x.length; i++) {
            int k = (i / spatial) % ch;
            double inv = 1 / Math.sqrt(rv[k] + (double) eps);
            double xhat = (x[i] - rm[k]) * inv;
            double m = Math.abs(rm[k]) * inv;
            dScale[k] += Tolerances.U * (Math.abs(dy[i]) * (2 * m + 32 * (1 + Math.abs(xhat))) + 32 * Math.abs(dy[i] * xhat));
            dBias[k] += 32 * Tolerances.U * Math.abs(dy[i]);
        }
        return new GradBounds.Bounds(null, dScale, dBias);
    }

    static Stream<Backends.Named> backends() {
        return Backends.all().stream();
    }

    /** dScale and dBias are reduced in a fixed order: the same bits on every run. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void parameterGradientsAreBitwiseReproducible(Backends.Named backend) {
        NormEngine e = backend.engine();
        long[][] shapes = {{257, 1031}, {4, 2, 300, 301}};
        for (long[] dims : shapes) {
            Shape s = Shape.of(dims);
            float[] x = Data.gaussian("det x", s.intSize(), 1, 2);
            float[] dy = Data.gaussian("det dy", s.intSize(), 0, 1);
            HostTensor hx = HostTensor.of(x, s);
            HostTensor hdy = HostTensor.of(dy, s);
            float[][] first = null;
            for (int run = 0; run < 3; run++) {
                float[][] now;
                if (dims.length == 2) {
                    try (GradResult g = e.layerNormBackward(LayerNorm.defaults(), hdy, hx, null, null)) {
                        now = new float[][] {g.dx().toHost().data(), g.dScale().toHost().data(),
                            g.dBias().toHost().data()};
                    }
                } else {
                    try (GradResult g = e.batchNormBackward(BatchNorm.defaults().withTraining(true), hdy, hx, null,
                            null, null, null)) {
                        now = new float[][] {g.dx().toHost().data(), g.dScale().toHost().data(),
                            g.dBias().toHost().data()};
                    }
                }
                if (first == null) {
                    first = now;
                } else {
                    for (int k = 0; k < 3; k++) {
                        assertArrayEquals(first[k], now[k], "run " + run + " output " + k + " on " + s);
                    }
                }
            }
        }
    }
}
