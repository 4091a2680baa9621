package org.normcl.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import org.normcl.BatchNorm;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.MeanVarianceNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.Shape;

/**
 * Runs every operator on one engine and on a reference engine (the Java backend) and compares
 * them: what {@code normcl probe} and {@code normcl demo} report.
 */
final class SelfTest {
    /**
     * Largest |difference| accepted between a device and the Java backend. Outputs are normalized
     * (unit scale, |y| &lt; ~10 with the affine terms used here); float32 rounding differences
     * between the two reduction orders are ~1e-6, so 1e-4 passes every correct kernel and fails
     * any that is wrong by more than rounding.
     */
    static final double TOLERANCE = 1e-4;

    /** An operator run on a shape. */
    record Case(String op, long[] dims) {
        Shape shape() {
            return Shape.of(dims);
        }
    }

    /** One comparison's outcome. */
    record Outcome(String op, Shape shape, boolean passed, double maxError, double millis, String error) {
        Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("op", op);
            m.put("shape", toList(shape));
            m.put("pass", passed);
            m.put("max_error", Double.isNaN(maxError) ? null : maxError);
            m.put("time_ms", Double.isNaN(millis) ? null : Math.round(millis * 1000) / 1000.0);
            if (error != null) {
                m.put("error", error);
            }
            return m;
        }
    }

    /** Small shapes: quick enough to run on every device, even a simulator. */
    static List<Case> probeCases() {
        return List.of(new Case("layer-norm", new long[] {64, 1000}), new Case("rms-norm", new long[] {64, 1000}),
                new Case("batch-norm", new long[] {8, 16, 12, 12}), new Case("group-norm", new long[] {4, 16, 12, 12}),
                new Case("instance-norm", new long[] {4, 16, 12, 12}), new Case("mvn", new long[] {4, 16, 12, 12}));
    }

    /** Realistic shapes: a transformer activation and an image batch. */
    static List<Case> demoCases() {
        long[] tokens = {4096, 1024};
        long[] images = {32, 64, 56, 56};
        return List.of(new Case("layer-norm", tokens), new Case("rms-norm", tokens), new Case("batch-norm", images),
                new Case("group-norm", images), new Case("instance-norm", images));
    }

    private SelfTest() {
    }

    /**
     * @param engine the engine under test
     * @param reference the Java engine to compare with, or null to time only
     * @param cases what to run
     * @param repeats timed runs after one warm-up run; the median is reported
     */
    static List<Outcome> run(NormEngine engine, NormEngine reference, List<Case> cases, int repeats) {
        List<Outcome> out = new ArrayList<>();
        for (Case c : cases) {
            Inputs in = Inputs.random(c, 20261126L);
            try {
                float[] y = null;
                double[] times = new double[Math.max(1, repeats)];
                for (int i = -1; i < times.length; i++) {
                    long t0 = System.nanoTime();
                    try (NormResult r = runOne(engine, c.op(), in)) {
                        y = r.y().toHost().data();
                    }
                    if (i >= 0) {
                        times[i] = (System.nanoTime() - t0) / 1e6;
                    }
                }
                java.util.Arrays.sort(times);
                double median = times[times.length / 2];
                double err = Double.NaN;
                boolean pass = true;
                if (reference != null) {
                    float[] ref;
                    try (NormResult r = runOne(reference, c.op(), in)) {
                        ref = r.y().toHost().data();
                    }
                    err = maxAbsDiff(y, ref);
                    pass = err <= TOLERANCE;
                }
                out.add(new Outcome(c.op(), c.shape(), pass, err, median, null));
            } catch (RuntimeException e) {
                out.add(new Outcome(c.op(), c.shape(), false, Double.NaN, Double.NaN, ExitCodes.message(e)));
            }
        }
        return out;
    }

    static NormResult runOne(NormEngine e, String op, Inputs in) {
        switch (op) {
            case "layer-norm":
                return e.layerNorm(LayerNorm.defaults(), in.x, in.rowScale, in.rowBias);
            case "rms-norm":
                return e.rmsNorm(RmsNorm.defaults(), in.x, in.rowScale);
            case "batch-norm":
                return e.batchNorm(BatchNorm.defaults().withTraining(true), in.x, in.chScale, in.chBias, in.runMean,
                        in.runVar);
            case "group-norm":
                return e.groupNorm(GroupNorm.of((int) Math.min(8, in.x.shape().dim(1))), in.x, in.chScale, in.chBias);
            case "instance-norm":
                return e.instanceNorm(InstanceNorm.defaults(), in.x, in.chScale, in.chBias);
            case "mvn":
                return e.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(0, 2, 3), in.x);
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
    }

    /** Random inputs for a case: X ~ 3 + 2 N(0,1); scale ~ 1 + 0.1 N; bias ~ 0.1 N. */
    static final class Inputs {
        HostTensor x;
        HostTensor rowScale;
        HostTensor rowBias;
        HostTensor chScale;
        HostTensor chBias;
        HostTensor runMean;
        HostTensor runVar;

        static Inputs random(Case c, long seed) {
            SplittableRandom rnd = new SplittableRandom(seed);
            Inputs in = new Inputs();
            Shape s = c.shape();
            in.x = HostTensor.of(gaussian(rnd, s.intSize(), 3, 2), s);
            long last = s.dim(-1);
            in.rowScale = HostTensor.of(gaussian(rnd, (int) last, 1, 0.1), last);
            in.rowBias = HostTensor.of(gaussian(rnd, (int) last, 0, 0.1), last);
            if (s.rank() >= 2) {
                long ch = s.dim(1);
                in.chScale = HostTensor.of(gaussian(rnd, (int) ch, 1, 0.1), ch);
                in.chBias = HostTensor.of(gaussian(rnd, (int) ch, 0, 0.1), ch);
                in.runMean = HostTensor.of(new float[(int) ch], ch);
                float[] ones = new float[(int) ch];
                java.util.Arrays.fill(ones, 1f);
                in.runVar = HostTensor.of(ones, ch);
            }
            return in;
        }

        private static float[] gaussian(SplittableRandom rnd, int n, double mean, double sd) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                // Box-Muller; SplittableRandom has no nextGaussian on Java 17.
                double u1 = 1.0 - rnd.nextDouble();
                double u2 = rnd.nextDouble();
                a[i] = (float) (mean + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
            }
            return a;
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(a[i]) != Float.isNaN(b[i])) {
                return Double.POSITIVE_INFINITY;
            }
            if (!Float.isNaN(a[i])) {
                m = Math.max(m, Math.abs((double) a[i] - b[i]));
            }
        }
        return m;
    }

    static List<Long> toList(Shape s) {
        List<Long> l = new ArrayList<>();
        for (long d : s.dims()) {
            l.add(d);
        }
        return l;
    }
}
