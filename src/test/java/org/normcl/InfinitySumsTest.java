package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;

/**
 * An infinity in a sum stays an infinity: {@code inf + finite = inf}, as in the float64 oracle and
 * in PyTorch, never NaN. The sums at risk are the compensated (Kahan) ones of the OpenCL kernels,
 * whose correction term {@code (inf - inf) - y} is NaN: RMS norm's sum of squares over a row of more
 * than one run (or over a work-group's strided values) and the backward passes' sums of dY and
 * dY * xhat. An infinite mean square must give {@code invRms = 0} (so {@code y = x * 0 = 0}, NaN only
 * where x is infinite), an infinite dY an infinite dBias.
 */
class InfinitySumsTest {

    static java.util.List<Backends.Named> backends() {
        return Backends.all();
    }

    /** Every element has the oracle's class (NaN, +inf, -inf, finite), and finite ones are close. */
    private static void assertSameValues(String what, double[] ref, double[] got) {
        assertEquals(ref.length, got.length, what + " length");
        for (int i = 0; i < ref.length; i++) {
            String at = what + "[" + i + "]: expected " + ref[i] + ", got " + got[i];
            if (Double.isNaN(ref[i]) || Double.isInfinite(ref[i])) {
                assertEquals(ref[i], got[i], at); // assertEquals treats NaN as equal to NaN
            } else {
                assertTrue(Double.isFinite(got[i]) && Math.abs(got[i] - ref[i]) <= 1e-3 * (1 + Math.abs(ref[i])), at);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void rmsNormOfALongRowWithAnInfinityIsZeroElsewhere(Backends.Named backend) {
        int cols = 2500; // three runs of up to 1024 values; the infinities in the first run
        long[] dims = {3, cols};
        float[] x = Data.gaussian("rms inf", 3 * cols, 0, 1);
        x[cols + 100] = Float.POSITIVE_INFINITY;
        x[2 * cols + 7] = Float.NEGATIVE_INFINITY;
        float[] w = Data.gaussian("rms inf w", cols, 1, 0.5);
        try (NormResult r = backend.engine().rmsNorm(RmsNorm.defaults(), HostTensor.of(x, dims),
                HostTensor.of(w, cols))) {
            Reference64.RmsNormalized ref = Reference64.rmsNorm(x, dims, -1, 1e-5f, w);
            assertEquals(0.0, ref.invRms()[1], "the oracle: an infinite mean square gives invRms 0");
            assertSameValues("invRms", ref.invRms(), r.invStdDev().toHost().toDoubles());
            assertSameValues("Y", ref.y(), r.y().toHost().toDoubles());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void anInfiniteDyGivesInfiniteParameterGradients(Backends.Named backend) {
        NormEngine e = backend.engine();
        // layer and RMS norm: 3 rows of 300, dY = +inf at row 1, column 150
        long[] ls = {3, 300};
        float[] x = Data.gaussian("dy inf x", 900, 0, 1);
        float[] dy = Data.gaussian("dy inf dy", 900, 0, 1);
        dy[450] = Float.POSITIVE_INFINITY;
        float[] w = Data.uniform("dy inf w", 300, 0.5, 1.5);
        try (GradResult g = e.layerNormBackward(LayerNorm.defaults(), HostTensor.of(dy, ls), HostTensor.of(x, ls),
                HostTensor.of(w, 300), null)) {
            Reference64Backward.Grads ref = Reference64Backward.backward(
                    Reference64Backward.layer(ls, -1, 1e-5f, false), widen(x), widen(dy), widen(w));
            assertEquals(Double.POSITIVE_INFINITY, ref.dBias()[150], "the oracle: dBias = sum of dY = +inf");
            assertSameValues("layer dBias", ref.dBias(), g.dBias().toHost().toDoubles());
            assertSameValues("layer dScale", ref.dScale(), g.dScale().toHost().toDoubles());
            assertSameValues("layer dX", ref.dx(), g.dx().toHost().toDoubles());
        }
        try (GradResult g = e.rmsNormBackward(RmsNorm.defaults(), HostTensor.of(dy, ls), HostTensor.of(x, ls),
                HostTensor.of(w, 300), null)) {
            Reference64Backward.Grads ref = Reference64Backward.backward(
                    Reference64Backward.layer(ls, -1, 1e-5f, true), widen(x), widen(dy), widen(w));
            assertSameValues("rms dScale", ref.dScale(), g.dScale().toHost().toDoubles());
            assertSameValues("rms dX", ref.dx(), g.dx().toHost().toDoubles());
        }
        // group (2 groups of 2 channels) and training-mode batch norm on (3, 4, 50), dY = +inf in channel 1
        long[] cs = {3, 4, 50};
        float[] xc = Data.gaussian("dy inf xc", 600, 0, 1);
        float[] dyc = Data.gaussian("dy inf dyc", 600, 0, 1);
        dyc[(4 + 1) * 50 + 10] = Float.POSITIVE_INFINITY;
        float[] wc = {0.8f, 1.2f, 0.9f, 1.1f};
        try (GradResult g = e.groupNormBackward(GroupNorm.of(2), HostTensor.of(dyc, cs), HostTensor.of(xc, cs),
                HostTensor.of(wc, 4), null)) {
            Reference64Backward.Grads ref = Reference64Backward.backward(
                    Reference64Backward.group(cs, 2, false, 1e-5f), widen(xc), widen(dyc), widen(wc));
            assertSameValues("group dBias", ref.dBias(), g.dBias().toHost().toDoubles());
            assertSameValues("group dScale", ref.dScale(), g.dScale().toHost().toDoubles());
            assertSameValues("group dX", ref.dx(), g.dx().toHost().toDoubles());
        }
        try (GradResult g = e.batchNormBackward(BatchNorm.defaults().withTraining(true), HostTensor.of(dyc, cs),
                HostTensor.of(xc, cs), HostTensor.of(wc, 4), null, null, null)) {
            Reference64Backward.Grads ref = Reference64Backward.backward(Reference64Backward.batch(cs, 1e-5f),
                    widen(xc), widen(dyc), widen(wc));
            assertSameValues("batch dBias", ref.dBias(), g.dBias().toHost().toDoubles());
            assertSameValues("batch dScale", ref.dScale(), g.dScale().toHost().toDoubles());
            assertSameValues("batch dX", ref.dx(), g.dx().toHost().toDoubles());
        }
    }

    private static double[] widen(float[] a) {
        return Reference64Backward.widen(a);
    }
}
