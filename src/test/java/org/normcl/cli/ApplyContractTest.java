package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.normcl.cli.CliTestSupport.gaussian;
import static org.normcl.cli.CliTestSupport.size;
import static org.normcl.cli.CliTestSupport.uniform;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.reference.Reference64;
import org.normcl.reference.TestNpy;
import org.normcl.reference.Tolerance;

/**
 * The success contract of {@code normcl apply OP}: every operator on {@code --backend java} and
 * {@code --backend opencl} (skipped loudly without an OpenCL device, a failure under {@code CI=true}),
 * on seeded random inputs written and read back with the independent test {@code .npy} code
 * ({@link TestNpy}), compared with the float64 oracle {@link Reference64}.
 *
 * <p><b>Tolerances.</b> Every output here is unit-scale: normalized values times a scale near 1 plus
 * a bias below 1, so |y| is a few units at most. A numerically stable float32 implementation (two
 * passes, or Welford/Chan merges, with float32 storage) rounds at u = 2^-24 = 6e-8 per step; its
 * statistics plus the apply step cost a few dozen u, about 1e-6, which is what both backends show
 * (the probe self-test reports 2e-7 to 2e-6). We allow:
 * <ul>
 *   <li>{@link #NORMAL} = 5e-5 x max(1, max|y_ref|) on well-conditioned data: some 50x the expected
 *       error, so any reduction order passes, while a wrong count, epsilon, axis, group layout or
 *       momentum convention (errors of 1e-2 and more on these sizes) fails;
 *   <li>{@link #STRESS} = 1e-4 x max(1, max|y_ref|) on stress data: a 70001-long row (summation
 *       error grows with the length) and a large common offset 1e4 + N(0,1), on which a naive
 *       E[x^2] - E[x]^2 variance is wrong by O(1), i.e. fails by four orders of magnitude.
 * </ul>
 * Saved statistics are compared relative to their own scale: the mean within 5e-5 x sigma plus
 * 1e-6 relative (16u: a mean near 1e4 cannot be stored closer than u|mean| in float32), the inverse
 * standard deviation and the running variance within 1e-5 relative.
 */
class ApplyContractTest {
    /** Absolute tolerance, relative to max(1, max|y|), on well-conditioned data (see the class comment). */
    static final double NORMAL = 5e-5;
    /** Absolute tolerance, relative to max(1, max|y|), on stress data (see the class comment). */
    static final double STRESS = 1e-4;
    /** float32 unit roundoff. */
    static final double U = Math.ulp(1.0f) / 2;

    @TempDir
    Path dir;

    static Stream<String> backends() {
        return Stream.of("java", "opencl");
    }

    // ------------------------------------------------------------------ layer-norm

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void layerNormLastAxisWithAffineAndSavedStatistics(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 17, 5};
        float[] x = gaussian(11, size(shape), 0.5, 2.0);
        float[] w = gaussian(12, 5, 1.0, 0.2);
        float[] b = gaussian(13, 5, 0.0, 0.3);
        write("x.npy", shape, x);
        write("w.npy", new long[] {5}, w);
        write("b.npy", new long[] {5}, b);

        apply(backend, "layer-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--scale", p("w.npy"),
                "--bias", p("b.npy"), "--save-mean", p("mean.npy"), "--save-inv-std", p("istd.npy"));

        Reference64.Normalized ref = Reference64.layerNorm(x, shape, -1, 1e-5f, w, b);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        // Saved statistics: X.shape[:axis] + [1] * (rank - axis).
        assertMean("mean", read("mean.npy", new long[] {3, 17, 1}), ref.mean(), 2.0);
        assertInvStd("inv-std", read("istd.npy", new long[] {3, 17, 1}), ref.invStd());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void layerNormAxis1OnRank3WithEpsilon(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 17, 5};
        // Small variance (0.09) so that epsilon = 0.25 changes the result by a factor of ~2.
        float[] x = gaussian(21, size(shape), -1.0, 0.3);
        float[] w = gaussian(22, 17 * 5, 1.0, 0.1);
        float[] b = gaussian(23, 17 * 5, 0.0, 0.1);
        write("x.npy", shape, x);
        write("w.npy", new long[] {17, 5}, w);
        write("b.npy", new long[] {17, 5}, b);

        apply(backend, "layer-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--axis", "1", "--epsilon",
                "0.25", "--scale", p("w.npy"), "--bias", p("b.npy"), "--save-mean", p("mean.npy"), "--save-inv-std",
                p("istd.npy"));

        Reference64.Normalized ref = Reference64.layerNorm(x, shape, 1, 0.25f, w, b);
        float[] y = read("y.npy", shape);
        assertY("y", y, ref.y(), NORMAL);
        assertMean("mean", read("mean.npy", new long[] {3, 1, 1}), ref.mean(), 0.3);
        assertInvStd("inv-std", read("istd.npy", new long[] {3, 1, 1}), ref.invStd());
        // The epsilon was really used: the default one gives a very different answer.
        double[] withDefault = Reference64.layerNorm(x, shape, 1, 1e-5f, w, b).y();
        assertTrue(Tolerance.maxAbsError(y, withDefault) > 0.1, "--epsilon 0.25 had no visible effect");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void layerNormNegativeAxisOnRank4(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {2, 3, 4, 5};
        float[] x = gaussian(31, size(shape), 3.0, 1.5);
        write("x.npy", shape, x);

        apply(backend, "layer-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--axis", "-2", "--save-mean",
                p("mean.npy"), "--save-inv-std", p("istd.npy"));

        Reference64.Normalized ref = Reference64.layerNorm(x, shape, -2, 1e-5f, null, null);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertMean("mean", read("mean.npy", new long[] {2, 3, 1, 1}), ref.mean(), 1.5);
        assertInvStd("inv-std", read("istd.npy", new long[] {2, 3, 1, 1}), ref.invStd());
    }

    /** Without {@code --backend}: AUTO (the best OpenCL device, else Java) must give the same contract. */
    @Test
    void layerNormDefaultBackend() {
        long[] shape = {9, 13};
        float[] x = gaussian(41, size(shape), 0, 1);
        write("x.npy", shape, x);
        CliTestSupport.Result r = CliTestSupport.run("apply", "layer-norm", "--input", p("x.npy"), "--output",
                p("y.npy"));
        r.assertOk().assertNoStackTrace();
        assertY("y", read("y.npy", shape), Reference64.layerNorm(x, shape, -1, 1e-5f, null, null).y(), NORMAL);
    }

    // ------------------------------------------------------------------ rms-norm

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void rmsNormLastAxisWithScaleAndInvRms(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 17, 5};
        float[] x = gaussian(51, size(shape), 0.7, 1.3);
        float[] w = gaussian(52, 5, 1.0, 0.2);
        write("x.npy", shape, x);
        write("w.npy", new long[] {5}, w);

        apply(backend, "rms-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--scale", p("w.npy"),
                "--epsilon", "1e-3", "--save-inv-std", p("irms.npy"));

        Reference64.RmsNormalized ref = Reference64.rmsNorm(x, shape, -1, 1e-3f, w);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertInvStd("inv-rms", read("irms.npy", new long[] {3, 17, 1}), ref.invRms());
        assertEquals(Set.of("x.npy", "w.npy", "y.npy", "irms.npy"), Set.copyOf(CliTestSupport.names(dir)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void rmsNormAxis1OnRank3(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {4, 9, 7};
        float[] x = gaussian(61, size(shape), -0.4, 2.2);
        write("x.npy", shape, x);

        apply(backend, "rms-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--axis", "1");

        assertY("y", read("y.npy", shape), Reference64.rmsNorm(x, shape, 1, 1e-5f, null).y(), NORMAL);
    }

    // ------------------------------------------------------------------ group-norm, instance-norm

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormThreeGroups(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {2, 6, 7, 3};
        float[] x = gaussian(71, size(shape), 1.0, 2.5);
        float[] w = gaussian(72, 6, 1.0, 0.2);
        float[] b = gaussian(73, 6, 0.0, 0.3);
        write("x.npy", shape, x);
        write("w.npy", new long[] {6}, w);
        write("b.npy", new long[] {6}, b);

        apply(backend, "group-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--groups", "3", "--scale",
                p("w.npy"), "--bias", p("b.npy"), "--save-mean", p("mean.npy"), "--save-inv-std", p("istd.npy"));

        Reference64.Normalized ref = Reference64.groupNorm(x, shape, 3, 1e-5f, w, b, false);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertMean("mean", read("mean.npy", new long[] {2, 3}), ref.mean(), 2.5);
        assertInvStd("inv-std", read("istd.npy", new long[] {2, 3}), ref.invStd());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void groupNormPerGroupAffine(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 8, 5};
        float[] x = gaussian(81, size(shape), -2.0, 0.8);
        float[] w = gaussian(82, 4, 1.0, 0.2);
        float[] b = gaussian(83, 4, 0.0, 0.3);
        write("x.npy", shape, x);
        write("w.npy", new long[] {4}, w);
        write("b.npy", new long[] {4}, b);

        apply(backend, "group-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--groups", "4",
                "--per-group-affine", "--scale", p("w.npy"), "--bias", p("b.npy"), "--epsilon", "1e-4");

        assertY("y", read("y.npy", shape), Reference64.groupNorm(x, shape, 4, 1e-4f, w, b, true).y(), NORMAL);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void instanceNormRank3(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 5, 11};
        float[] x = gaussian(91, size(shape), 0.3, 1.7);
        float[] w = gaussian(92, 5, 1.0, 0.2);
        float[] b = gaussian(93, 5, 0.0, 0.3);
        write("x.npy", shape, x);
        write("w.npy", new long[] {5}, w);
        write("b.npy", new long[] {5}, b);

        apply(backend, "instance-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--scale", p("w.npy"),
                "--bias", p("b.npy"), "--save-mean", p("mean.npy"), "--save-inv-std", p("istd.npy"));

        Reference64.Normalized ref = Reference64.instanceNorm(x, shape, 1e-5f, w, b);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertMean("mean", read("mean.npy", new long[] {3, 5}), ref.mean(), 1.7);
        assertInvStd("inv-std", read("istd.npy", new long[] {3, 5}), ref.invStd());
    }

    // ------------------------------------------------------------------ batch-norm

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchNormInferenceWithRunningStatistics(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {4, 3, 5, 2};
        float[] x = gaussian(101, size(shape), 0.5, 1.5);
        float[] w = gaussian(102, 3, 1.0, 0.2);
        float[] b = gaussian(103, 3, 0.0, 0.3);
        float[] m = gaussian(104, 3, 0.5, 0.5);
        float[] v = uniform(105, 3, 0.5, 3.0);
        write("x.npy", shape, x);
        write("w.npy", new long[] {3}, w);
        write("b.npy", new long[] {3}, b);
        write("m.npy", new long[] {3}, m);
        write("v.npy", new long[] {3}, v);

        apply(backend, "batch-norm", "--input", p("x.npy"), "--output", p("y.npy"), "--scale", p("w.npy"),
                "--bias", p("b.npy"), "--mean", p("m.npy"), "--var", p("v.npy"), "--epsilon", "1e-3",
                "--save-mean", p("sm.npy"), "--save-inv-std", p("sis.npy"));

        assertY("y", read("y.npy", shape), Reference64.batchNormInference(x, shape, w, b, m, v, 1e-3f), NORMAL);
        // Inference uses the running statistics: saved mean = running mean, inv-std = 1/sqrt(var + eps).
        double[] invStd = new double[3];
        for (int c = 0; c < 3; c++) {
            invStd[c] = 1 / Math.sqrt((double) v[c] + (double) 1e-3f);
        }
        assertMean("save-mean", read("sm.npy", new long[] {3}), Reference64.toDouble(m), 1.0);
        assertInvStd("save-inv-std", read("sis.npy", new long[] {3}), invStd);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchNormTrainingDefaultMomentumOnnxConvention(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {5, 4, 3, 3};
        float[] x = gaussian(111, size(shape), 1.0, 2.0);
        float[] w = gaussian(112, 4, 1.0, 0.2);
        float[] b = gaussian(113, 4, 0.0, 0.3);
        float[] m = gaussian(114, 4, 0.0, 1.0);
        float[] v = uniform(115, 4, 0.5, 2.0);
        write("x.npy", shape, x);
        write("w.npy", new long[] {4}, w);
        write("b.npy", new long[] {4}, b);
        write("m.npy", new long[] {4}, m);
        write("v.npy", new long[] {4}, v);

        apply(backend, "batch-norm", "--training", "--input", p("x.npy"), "--output", p("y.npy"), "--scale",
                p("w.npy"), "--bias", p("b.npy"), "--mean", p("m.npy"), "--var", p("v.npy"), "--output-mean",
                p("om.npy"), "--output-var", p("ov.npy"), "--save-mean", p("sm.npy"), "--save-inv-std",
                p("sis.npy"));

        // ONNX BatchNormalization-15, training_mode=1, momentum 0.9:
        // running = running * 0.9 + batch * 0.1, with the biased batch variance.
        Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, shape, w, b, m, v, 1e-5f, 0.9f, false);
        assertTraining(ref, shape, 4, 2.0);
        assertEquals(Set.of("x.npy", "w.npy", "b.npy", "m.npy", "v.npy", "y.npy", "om.npy", "ov.npy", "sm.npy",
                "sis.npy"), Set.copyOf(CliTestSupport.names(dir)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchNormTrainingExplicitMomentum(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {6, 2, 9};
        float[] x = gaussian(121, size(shape), -3.0, 0.7);
        float[] m = gaussian(124, 2, 0.0, 1.0);
        float[] v = uniform(125, 2, 0.5, 2.0);
        write("x.npy", shape, x);
        write("m.npy", new long[] {2}, m);
        write("v.npy", new long[] {2}, v);

        apply(backend, "batch-norm", "--training", "--momentum", "0.8", "--input", p("x.npy"), "--output",
                p("y.npy"), "--mean", p("m.npy"), "--var", p("v.npy"), "--output-mean", p("om.npy"), "--output-var",
                p("ov.npy"), "--save-mean", p("sm.npy"), "--save-inv-std", p("sis.npy"));

        Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, shape, null, null, m, v, 1e-5f, 0.8f,
                false);
        assertTraining(ref, shape, 2, 0.7);
        // Sanity: 0.8 is not silently replaced by the default 0.9.
        double[] with09 = Reference64.batchNormTraining(x, shape, null, null, m, v, 1e-5f, 0.9f, false)
                .newRunningMean();
        assertTrue(Tolerance.maxAbsError(read("om.npy", new long[] {2}), with09) > 1e-2,
                "--momentum 0.8 gave the running mean of momentum 0.9");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void batchNormTrainingWithoutRunningStatistics(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {7, 3};
        float[] x = gaussian(131, size(shape), 2.0, 1.2);
        write("x.npy", shape, x);

        apply(backend, "batch-norm", "--training", "--input", p("x.npy"), "--output", p("y.npy"), "--save-mean",
                p("sm.npy"), "--save-inv-std", p("sis.npy"));

        float[] zeros = new float[3];
        float[] ones = {1, 1, 1};
        Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, shape, null, null, zeros, ones, 1e-5f,
                0.9f, false);
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertMean("save-mean", read("sm.npy", new long[] {3}), ref.mean(), 1.2);
        assertInvStd("save-inv-std", read("sis.npy", new long[] {3}), ref.invStd());
    }

    // ------------------------------------------------------------------ mvn

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void mvnDefaultAxes(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {3, 4, 5, 2};
        float[] x = gaussian(141, size(shape), 1.5, 0.9);
        write("x.npy", shape, x);

        apply(backend, "mvn", "--input", p("x.npy"), "--output", p("y.npy"));

        assertY("y", read("y.npy", shape), Reference64.meanVarianceNorm(x, shape, Reference64.MVN_DEFAULT_AXES),
                NORMAL);
    }

    // ------------------------------------------------------------------ stress data

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void longRows(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] shape = {2, 70001};
        float[] x = gaussian(151, size(shape), 5.0, 3.0);
        float[] w = gaussian(152, 70001, 1.0, 0.2);
        float[] b = gaussian(153, 70001, 0.0, 0.3);
        write("x.npy", shape, x);
        write("w.npy", new long[] {70001}, w);
        write("b.npy", new long[] {70001}, b);

        apply(backend, "layer-norm", "--input", p("x.npy"), "--output", p("ln.npy"), "--scale", p("w.npy"),
                "--bias", p("b.npy"), "--save-mean", p("mean.npy"), "--save-inv-std", p("istd.npy"));
        apply(backend, "rms-norm", "--input", p("x.npy"), "--output", p("rms.npy"), "--scale", p("w.npy"));

        Reference64.Normalized ln = Reference64.layerNorm(x, shape, -1, 1e-5f, w, b);
        assertY("layer-norm y", read("ln.npy", shape), ln.y(), STRESS);
        assertMean("mean", read("mean.npy", new long[] {2, 1}), ln.mean(), 3.0);
        assertInvStd("inv-std", read("istd.npy", new long[] {2, 1}), ln.invStd());
        assertY("rms-norm y", read("rms.npy", shape), Reference64.rmsNorm(x, shape, -1, 1e-5f, w).y(), STRESS);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void largeCommonOffset(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] rows = {4, 1000};
        float[] xr = gaussian(161, size(rows), 1e4, 1.0);
        long[] nchw = {2, 6, 7, 3};
        float[] xc = gaussian(162, size(nchw), 1e4, 1.0);
        write("xr.npy", rows, xr);
        write("xc.npy", nchw, xc);

        apply(backend, "layer-norm", "--input", p("xr.npy"), "--output", p("ln.npy"), "--save-mean", p("mean.npy"));
        apply(backend, "group-norm", "--groups", "3", "--input", p("xc.npy"), "--output", p("gn.npy"));
        apply(backend, "instance-norm", "--input", p("xc.npy"), "--output", p("in.npy"));
        apply(backend, "batch-norm", "--training", "--input", p("xc.npy"), "--output", p("bn.npy"));

        Reference64.Normalized ln = Reference64.layerNorm(xr, rows, -1, 1e-5f, null, null);
        assertY("layer-norm y", read("ln.npy", rows), ln.y(), STRESS);
        assertMean("layer-norm mean", read("mean.npy", new long[] {4, 1}), ln.mean(), 1.0);
        assertY("group-norm y", read("gn.npy", nchw), Reference64.groupNorm(xc, nchw, 3, 1e-5f, null, null, false).y(),
                STRESS);
        assertY("instance-norm y", read("in.npy", nchw), Reference64.instanceNorm(xc, nchw, 1e-5f, null, null).y(),
                STRESS);
        // Batch-norm hands the per-channel mean from the statistics pass to the apply pass as a float32
        // [C] tensor (the same tensor --save-mean writes), so y inherits that rounding: u |mean| / sigma
        // = 6e-8 * 1e4 / 1 = 6e-4 at most (2x for margin). A naive one-pass variance would still be off
        // by O(1) here.
        Reference64.BatchNormTraining bn = Reference64.batchNormTraining(xc, nchw, null, null, new float[6],
                new float[6], 1e-5f, 0.9f, false);
        assertY("batch-norm y", read("bn.npy", nchw), bn.y(), STRESS + 2 * U * 1e4 / 0.9);
    }

    // ------------------------------------------------------------------ special values, empty tensors

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void nanStaysInItsRowOrGroup(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] rows = {4, 9};
        float[] xr = gaussian(171, size(rows), 0, 1);
        xr[2 * 9 + 4] = Float.NaN; // row 2 only
        long[] nchw = {2, 6, 4};
        float[] xc = gaussian(172, size(nchw), 0, 1);
        xc[(1 * 6 + 3) * 4 + 1] = Float.NaN; // sample 1, channel 3: group 1 of 3, instance (1, 3)
        write("xr.npy", rows, xr);
        write("xc.npy", nchw, xc);

        apply(backend, "layer-norm", "--input", p("xr.npy"), "--output", p("ln.npy"), "--save-mean", p("lnm.npy"));
        apply(backend, "rms-norm", "--input", p("xr.npy"), "--output", p("rms.npy"));
        apply(backend, "group-norm", "--groups", "3", "--input", p("xc.npy"), "--output", p("gn.npy"),
                "--save-mean", p("gnm.npy"));
        apply(backend, "instance-norm", "--input", p("xc.npy"), "--output", p("in.npy"));

        // Tolerance.assertClose matches an expected NaN only with a NaN and a finite value only with a
        // finite one, so comparing with the oracle pins exactly where the NaNs are.
        Reference64.Normalized ln = Reference64.layerNorm(xr, rows, -1, 1e-5f, null, null);
        float[] lnY = read("ln.npy", rows);
        assertY("layer-norm y", lnY, ln.y(), NORMAL);
        assertEquals(9, countNaN(lnY), "NaNs in layer-norm output (row 2 only)");
        assertMean("layer-norm mean", read("lnm.npy", new long[] {4, 1}), ln.mean(), 1.0);
        float[] rms = read("rms.npy", rows);
        assertY("rms-norm y", rms, Reference64.rmsNorm(xr, rows, -1, 1e-5f, null).y(), NORMAL);
        assertEquals(9, countNaN(rms), "NaNs in rms-norm output (row 2 only)");

        Reference64.Normalized gn = Reference64.groupNorm(xc, nchw, 3, 1e-5f, null, null, false);
        float[] gnY = read("gn.npy", nchw);
        assertY("group-norm y", gnY, gn.y(), NORMAL);
        assertEquals(2 * 4, countNaN(gnY), "NaNs in group-norm output (one group of 2 channels x 4)");
        float[] gnm = read("gnm.npy", new long[] {2, 3});
        assertMean("group-norm mean", gnm, gn.mean(), 1.0);
        assertEquals(1, countNaN(gnm));
        assertTrue(Float.isNaN(gnm[1 * 3 + 1]));
        float[] inY = read("in.npy", nchw);
        assertY("instance-norm y", inY, Reference64.instanceNorm(xc, nchw, 1e-5f, null, null).y(), NORMAL);
        assertEquals(4, countNaN(inY), "NaNs in instance-norm output (one channel of one sample)");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void emptyBatchGivesEmptyOutputs(String backend) {
        CliTestSupport.requireBackend(backend);
        long[] rows = {0, 5};
        long[] nchw = {0, 4, 3, 3};
        write("xr.npy", rows, new float[0]);
        write("xc.npy", nchw, new float[0]);
        float[] m = {0.5f, -1f, 2f, 0f};
        float[] v = {1f, 2f, 0.5f, 3f};
        write("m.npy", new long[] {4}, m);
        write("v.npy", new long[] {4}, v);
        write("w5.npy", new long[] {5}, new float[] {1, 2, 3, 4, 5});

        apply(backend, "layer-norm", "--input", p("xr.npy"), "--output", p("ln.npy"), "--scale", p("w5.npy"),
                "--save-mean", p("lnm.npy"), "--save-inv-std", p("lni.npy"));
        apply(backend, "rms-norm", "--input", p("xr.npy"), "--output", p("rms.npy"), "--save-inv-std", p("rmsi.npy"));
        apply(backend, "instance-norm", "--input", p("xc.npy"), "--output", p("in.npy"), "--save-mean",
                p("inm.npy"));
        apply(backend, "group-norm", "--groups", "2", "--input", p("xc.npy"), "--output", p("gn.npy"),
                "--save-mean", p("gnm.npy"));
        apply(backend, "batch-norm", "--input", p("xc.npy"), "--output", p("bni.npy"), "--mean", p("m.npy"),
                "--var", p("v.npy"));
        apply(backend, "batch-norm", "--training", "--input", p("xc.npy"), "--output", p("bnt.npy"), "--mean",
                p("m.npy"), "--var", p("v.npy"), "--output-mean", p("om.npy"), "--output-var", p("ov.npy"));

        read("ln.npy", rows);
        read("lnm.npy", new long[] {0, 1});
        read("lni.npy", new long[] {0, 1});
        read("rms.npy", rows);
        read("rmsi.npy", new long[] {0, 1});
        read("in.npy", nchw);
        read("inm.npy", new long[] {0, 4});
        read("gn.npy", nchw);
        read("gnm.npy", new long[] {0, 2});
        read("bni.npy", nchw);
        read("bnt.npy", nchw);
        // No batch statistics to blend in: the running statistics come back unchanged.
        assertArrayEquals(m, read("om.npy", new long[] {4}));
        assertArrayEquals(v, read("ov.npy", new long[] {4}));
    }

    // ------------------------------------------------------------------ helpers

    private String p(String name) {
        return dir.resolve(name).toString();
    }

    private void write(String name, long[] shape, float[] data) {
        TestNpy.writeFloat32(dir.resolve(name), shape, data);
    }

    /** Reads an output with the independent test reader (float32, C order) and checks its shape. */
    private float[] read(String name, long[] expectedShape) {
        TestNpy.Float32 a = TestNpy.readFloat32(dir.resolve(name));
        assertArrayEquals(expectedShape, a.shape(), () -> name + " has shape " + Arrays.toString(a.shape()));
        return a.data();
    }

    /** Runs {@code normcl apply ARGS --backend BACKEND}, expecting success and no temporary file left. */
    private void apply(String backend, String... args) {
        Set<String> before = new TreeSet<>(CliTestSupport.names(dir));
        List<String> all = new ArrayList<>();
        all.add("apply");
        all.addAll(Arrays.asList(args));
        all.add("--backend");
        all.add(backend);
        CliTestSupport.Result r = CliTestSupport.run(all.toArray(new String[0]));
        r.assertOk().assertNoStackTrace();
        assertEquals("", r.out(), "apply prints nothing on stdout on success");
        for (String n : CliTestSupport.names(dir)) {
            assertFalse(n.startsWith(".") || n.contains(".tmp"), () -> "stray temporary file " + n + "\n" + r);
            assertTrue(before.contains(n) || Arrays.stream(args).anyMatch(a -> a.equals(p(n))),
                    () -> "unexpected file " + n + "\n" + r);
        }
    }

    private static void assertY(String what, float[] actual, double[] expected, double atol) {
        Tolerance.assertClose(what, actual, expected, atol * Math.max(1, Tolerance.maxAbsFinite(expected)), 0);
    }

    private static void assertMean(String what, float[] actual, double[] expected, double sigma) {
        Tolerance.assertClose(what, actual, expected, NORMAL * sigma, 1e-6);
    }

    private static void assertInvStd(String what, float[] actual, double[] expected) {
        Tolerance.assertClose(what, actual, expected, 0, 1e-5);
    }

    private void assertTraining(Reference64.BatchNormTraining ref, long[] shape, int c, double sigma) {
        assertY("y", read("y.npy", shape), ref.y(), NORMAL);
        assertMean("save-mean (batch mean)", read("sm.npy", new long[] {c}), ref.mean(), sigma);
        assertInvStd("save-inv-std (batch)", read("sis.npy", new long[] {c}), ref.invStd());
        assertMean("output-mean (running)", read("om.npy", new long[] {c}), ref.newRunningMean(), sigma);
        Tolerance.assertClose("output-var (running)", read("ov.npy", new long[] {c}), ref.newRunningVar(), 1e-6,
                1e-5);
    }

    private static int countNaN(float[] a) {
        int n = 0;
        for (float f : a) {
            if (Float.isNaN(f)) {
                n++;
            }
        }
        return n;
    }
}
