package org.normcl.reference;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;

import org.junit.jupiter.api.Test;

/**
 * The reference gradients are right: against central finite differences of the float64 forward
 * (h = 1e-5: truncation error ~h^2 * f''' ~ 1e-10, rounding ~1e-16 / h ~ 1e-11, so agreement to
 * 1e-7 relative to the gradient's scale is a real check), and the float64 forward they
 * differentiate equals {@link Reference64}'s independent forward.
 */
class Reference64BackwardTest {

    private static double[] random(String seed, int n, double offset, double sd) {
        SplittableRandom r = new SplittableRandom(seed.hashCode());
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = offset + sd * (r.nextDouble() * 2 - 1) * 1.7;
        }
        return a;
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    record Case(String name, long[] shape, Reference64Backward.Sliced op) {
    }

    static List<Case> cases() {
        return List.of(
                new Case("layer 3x5", new long[] {3, 5}, Reference64Backward.layer(new long[] {3, 5}, -1, 1e-5f, false)),
                new Case("layer 2x3x4 axis 1", new long[] {2, 3, 4},
                        Reference64Backward.layer(new long[] {2, 3, 4}, 1, 1e-3f, false)),
                new Case("rms 4x6", new long[] {4, 6}, Reference64Backward.layer(new long[] {4, 6}, -1, 1e-5f, true)),
                new Case("group 2x4x3 G2", new long[] {2, 4, 3},
                        Reference64Backward.group(new long[] {2, 4, 3}, 2, false, 1e-5f)),
                new Case("group per-group", new long[] {2, 4, 3},
                        Reference64Backward.group(new long[] {2, 4, 3}, 2, true, 1e-5f)),
                new Case("instance 2x3x5", new long[] {2, 3, 5},
                        Reference64Backward.instance(new long[] {2, 3, 5}, 1e-5f)),
                new Case("batch 4x3x2", new long[] {4, 3, 2}, Reference64Backward.batch(new long[] {4, 3, 2}, 1e-5f)));
    }

    @Test
    void analyticGradientsMatchFiniteDifferences() {
        for (Case c : cases()) {
            int n = c.op().slice().length;
            double[] x = random(c.name() + "x", n, 0.5, 1);
            double[] dy = random(c.name() + "dy", n, 0, 1);
            double[] w = random(c.name() + "w", c.op().affines(), 1, 0.5);
            double[] b = c.op().rms() ? null : random(c.name() + "b", c.op().affines(), 0, 0.5);
            Reference64Backward.Grads g = Reference64Backward.backward(c.op(), x, dy, w);
            double h = 1e-5;
            Function<double[], double[]> fx = v -> Reference64Backward.forward(c.op(), v, w, b);
            assertClose(c.name() + " dx", Reference64Backward.finiteDifferences(fx, x, dy, h), g.dx());
            Function<double[], double[]> fw = v -> Reference64Backward.forward(c.op(), x, v, b);
            assertClose(c.name() + " dScale", Reference64Backward.finiteDifferences(fw, w, dy, h), g.dScale());
            if (b != null) {
                Function<double[], double[]> fb = v -> Reference64Backward.forward(c.op(), x, w, v);
                assertClose(c.name() + " dBias", Reference64Backward.finiteDifferences(fb, b, dy, h), g.dBias());
            }
        }
    }

    @Test
    void batchInferenceMatchesFiniteDifferences() {
        long[] shape = {3, 2, 4};
        double[] x = random("bi x", 24, 1, 1);
        double[] dy = random("bi dy", 24, 0, 1);
        double[] w = {1.5, -0.7};
        double[] rm = {0.3, -0.2};
        double[] rv = {0.8, 2.0};
        Reference64Backward.Grads g = Reference64Backward.batchInference(shape, x, dy, w, rm, rv, 1e-5f);
        Function<double[], double[]> f = v -> {
            double[] y = new double[v.length];
            for (int i = 0; i < v.length; i++) {
                int ch = (i / 4) % 2;
                y[i] = (v[i] - rm[ch]) / Math.sqrt(rv[ch] + 1e-5f) * w[ch];
            }
            return y;
        };
        assertClose("batch inference dx", Reference64Backward.finiteDifferences(f, x, dy, 1e-5), g.dx());
    }

    @Test
    void forwardEqualsReference64() {
        long[] s = {2, 4, 3};
        float[] xf = toFloat(random("fwd", 24, 1, 2));
        double[] x = Reference64Backward.widen(xf);
        float[] w = toFloat(random("fwd w", 4, 1, 0.5));
        float[] b = toFloat(random("fwd b", 4, 0, 0.5));
        assertClose("group", Reference64.groupNorm(xf, s, 2, 1e-5f, w, b, false).y(),
                Reference64Backward.forward(Reference64Backward.group(s, 2, false, 1e-5f), x,
                        Reference64Backward.widen(w), Reference64Backward.widen(b)));
        float[] w3 = toFloat(random("fwd w3", 3, 1, 0.5));
        assertClose("layer", Reference64.layerNorm(xf, s, -1, 1e-5f, w3, null).y(),
                Reference64Backward.forward(Reference64Backward.layer(s, -1, 1e-5f, false), x,
                        Reference64Backward.widen(w3), null));
        assertClose("rms", Reference64.rmsNorm(xf, s, -1, 1e-5f, w3).y(),
                Reference64Backward.forward(Reference64Backward.layer(s, -1, 1e-5f, true), x,
                        Reference64Backward.widen(w3), null));
        assertClose("batch", Reference64.batchNormTraining(xf, s, w, b, new float[4], new float[4], 1e-5f, 0.9f,
                false).y(), Reference64Backward.forward(Reference64Backward.batch(s, 1e-5f), x,
                        Reference64Backward.widen(w), Reference64Backward.widen(b)));
    }

    private static void assertClose(String what, double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length, what + " length");
        double scale = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-7 * Math.max(1, scale), what + " [" + i + "]");
        }
    }
}
