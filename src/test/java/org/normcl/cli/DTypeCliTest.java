package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DType;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * {@code normcl apply} and {@code normcl grad} on every element type: X (and dY) stored as float32,
 * float16, bfloat16 ({@code --bf16}, {@code <u2}) or float64, the parameters (scale, bias, running
 * statistics) as float32 or as X's type, on the Java and the OpenCL backend. Every output is checked
 * for its file type (Y and dX in X's type, saved statistics in float32 or float64 for float64 X,
 * running statistics and dScale/dBias in the parameters' type) and against the float64 reference on
 * the stored inputs, within the bounds explained in {@link DTypeCliSupport}. The saved statistics
 * that {@code apply} writes are fed back to {@code grad} when the parameters are float32, so the
 * {@code --save-mean}/{@code --saved-mean} round trip is covered for every type; with parameters in
 * X's type {@code grad} recomputes them.
 */
class DTypeCliTest {
    @TempDir
    Path dir;

    /** (N, C, H, W): every operator, including mvn's default axes [0, 2, 3], takes it. */
    static final long[] SHAPE = {2, 4, 3, 5};
    static final float EPS = 1e-5f;
    /** ONNX momentum, as the engine holds it (float32). */
    static final double MOMENTUM = 0.9f;

    enum Op {
        LAYER("layer-norm", true, true, "--axis", "2"),
        RMS("rms-norm", true, false),
        BATCH_TRAINING("batch-norm", true, true, "--training"),
        BATCH_INFERENCE("batch-norm", false, true),
        GROUP("group-norm", true, true, "--groups", "2"),
        INSTANCE("instance-norm", true, true),
        MVN("mvn", false, false);

        final String cli;
        final boolean grad;
        final boolean bias;
        final String[] extra;

        Op(String cli, boolean grad, boolean bias, String... extra) {
            this.cli = cli;
            this.grad = grad;
            this.bias = bias;
            this.extra = extra;
        }

        boolean affine() {
            return this != MVN;
        }

        /** The reference layout (not for batch inference or mvn, which are computed directly). */
        Reference64Backward.Sliced sliced(long[] shape) {
            switch (this) {
                case LAYER:
                    return Reference64Backward.layer(shape, 2, EPS, false);
                case RMS:
                    return Reference64Backward.layer(shape, -1, EPS, true);
                case GROUP:
                    return Reference64Backward.group(shape, 2, false, EPS);
                case INSTANCE:
                    return Reference64Backward.instance(shape, EPS);
                case MVN:
                    return Reference64Backward.batch(shape, 0f);
                default:
                    return Reference64Backward.batch(shape, EPS);
            }
        }

        long[] affineShape(long[] shape) {
            switch (this) {
                case LAYER:
                    return Arrays.copyOfRange(shape, 2, shape.length);
                case RMS:
                    return new long[] {shape[shape.length - 1]};
                default:
                    return new long[] {shape[1]};
            }
        }
    }

    static Stream<Arguments> cases() {
        List<Arguments> args = new ArrayList<>();
        for (String backend : new String[] {"java", "opencl"}) {
            for (Op op : Op.values()) {
                for (DType x : DTypeCliSupport.DTYPES) {
                    args.add(Arguments.of(backend, op, x, DType.FLOAT32));
                    if (x != DType.FLOAT32 && op.affine()) {
                        args.add(Arguments.of(backend, op, x, x));
                    }
                }
            }
        }
        return args.stream();
    }

    private String f(String name) {
        return dir.resolve(name).toString();
    }

    @ParameterizedTest(name = "{0} {1} X {2}, parameters {3}")
    @MethodSource("cases")
    void applyAndGradMatchFloat64(String backend, Op op, DType xt, DType pt) {
        CliTestSupport.requireBackend(backend);
        String what = backend + " " + op.cli + " " + DTypeCliSupport.shortName(xt) + "/" + DTypeCliSupport.shortName(pt);
        Tolerances.onBackend(backend);
        long seed = what.hashCode();
        int n = CliTestSupport.size(SHAPE);
        double[] x = DTypeCliSupport.write(dir.resolve("x.npy"), xt, SHAPE, DTypeCliSupport.xData(xt, seed, n));
        List<String> args = new ArrayList<>(List.of("apply", op.cli, "--backend", backend, "--input", f("x.npy"),
                "--output", f("y.npy"), "--save-inv-std", f("inv.npy")));
        args.addAll(List.of(DTypeCliSupport.typeFlag(xt)));
        args.addAll(List.of(op.extra));
        if (!DTypeCliSupport.supportsFloat64(backend) && xt == DType.FLOAT64) {
            CliTestSupport.Result r = CliTestSupport.run(args.toArray(new String[0]));
            assertEquals(1, r.code(), () -> "float64 on a device without cl_khr_fp64\n" + r);
            assertTrue(r.err().contains("cl_khr_fp64"), r::toString);
            return;
        }
        long[] affine = op.affineShape(SHAPE);
        int k = CliTestSupport.size(affine);
        double[] w = null;
        double[] b = null;
        if (op.affine()) {
            w = DTypeCliSupport.write(dir.resolve("w.npy"), pt, affine, DTypeCliSupport.gaussian(seed + 2, k, 1, 0.4));
            args.addAll(List.of("--scale", f("w.npy")));
        }
        if (op.bias) {
            b = DTypeCliSupport.write(dir.resolve("b.npy"), pt, affine, DTypeCliSupport.gaussian(seed + 3, k, 0.2, 0.5));
            args.addAll(List.of("--bias", f("b.npy")));
        }
        Reference64Backward.Sliced sliced = op.sliced(SHAPE);
        double[][] st = Reference64Backward.stats(sliced, x);
        double[] rm = null;
        double[] rv = null;
        if (op == Op.BATCH_TRAINING || op == Op.BATCH_INFERENCE) {
            // Running statistics near the batch's own, in the parameters' type.
            double[] g1 = DTypeCliSupport.gaussian(seed + 4, k, 0, 1);
            double[] g2 = DTypeCliSupport.gaussian(seed + 5, k, 0, 1);
            double[] m0 = new double[k];
            double[] v0 = new double[k];
            for (int c = 0; c < k; c++) {
                double sd = 1 / st[1][c];
                m0[c] = st[0][c] + 0.1 * sd * g1[c];
                v0[c] = sd * sd * (1 + 0.2 * Math.abs(g2[c]));
            }
            rm = DTypeCliSupport.write(dir.resolve("m.npy"), pt, affine, m0);
            rv = DTypeCliSupport.write(dir.resolve("v.npy"), pt, affine, v0);
            args.addAll(List.of("--mean", f("m.npy"), "--var", f("v.npy")));
            if (op == Op.BATCH_TRAINING) {
                args.addAll(List.of("--output-mean", f("om.npy"), "--output-var", f("ov.npy")));
            }
        }
        boolean savesMean = op != Op.RMS && op != Op.BATCH_INFERENCE;
        if (savesMean) {
            args.addAll(List.of("--save-mean", f("mean.npy")));
        }
        CliTestSupport.run(args.toArray(new String[0])).assertOk();

        double u = Tolerances.computeU(xt);
        DType statType = xt == DType.FLOAT64 ? DType.FLOAT64 : DType.FLOAT32;
        checkForward(what, op, xt, x, w, b, rm, rv, sliced, st, u);
        if (op != Op.BATCH_INFERENCE) {
            // The statistics used, in float32 (float64 for float64 X).
            int slices = sliced.slices();
            double[] meanBound = new double[slices];
            double[] invBound = new double[slices];
            double[] invRef = new double[slices];
            for (int s = 0; s < slices; s++) {
                double sigma = 1 / st[1][s];
                meanBound[s] = Tolerances.mean(u, st[0][s], sigma);
                invRef[s] = op == Op.MVN ? 1 / (sigma + (double) 1e-9f) : st[1][s];
                invBound[s] = Tolerances.invStd(u, invRef[s]);
            }
            DTypeCliSupport.assertClose(what + " saved inv-std", DTypeCliSupport.read(dir.resolve("inv.npy"), statType,
                    null), invRef, DTypeCliSupport.stored(invBound, invRef, statType));
            if (savesMean) {
                DTypeCliSupport.assertClose(what + " saved mean", DTypeCliSupport.read(dir.resolve("mean.npy"),
                        statType, null), st[0], DTypeCliSupport.stored(meanBound, st[0], statType));
            }
            if (op == Op.BATCH_TRAINING) {
                checkRunningStats(what, pt, rm, rv, st, meanBound, u, n / k);
            }
        }
        if (op.grad) {
            checkGrad(what, backend, op, xt, pt, x, w, sliced, seed);
        }
    }

    private void checkForward(String what, Op op, DType xt, double[] x, double[] w, double[] b, double[] rm,
            double[] rv, Reference64Backward.Sliced sliced, double[][] st, double u) {
        int n = x.length;
        double[] yRef = new double[n];
        double[] bound = new double[n];
        for (int i = 0; i < n; i++) {
            int s = sliced.slice()[i];
            int a = sliced.affine()[i];
            double mean;
            double inv;
            if (op == Op.BATCH_INFERENCE) {
                mean = rm[s];
                inv = 1 / Math.sqrt(rv[s] + EPS);
            } else if (op == Op.MVN) {
                mean = st[0][s];
                inv = 1 / (1 / st[1][s] + (double) 1e-9f);
            } else {
                mean = st[0][s];
                inv = st[1][s];
            }
            double xhat = (x[i] - mean) * inv;
            double wi = w == null ? 1 : w[a];
            double bi = b == null ? 0 : b[a];
            yRef[i] = xhat * wi + bi;
            bound[i] = Tolerances.element(u, xhat, Math.abs(mean) * inv, wi, bi, yRef[i]);
        }
        double[] y = DTypeCliSupport.read(dir.resolve("y.npy"), xt, SHAPE);
        DTypeCliSupport.assertClose(what + " Y", y, yRef, DTypeCliSupport.stored(bound, yRef, xt));
    }

    /**
     * ONNX running statistics: {@code r * m + batch * (1 - m)}, biased variance. The compute error
     * is (1 - m) times that of the batch statistics (the mean bound; the variance, as the square of
     * the inverse standard deviation, twice the invStd bound's relative 64u) plus the update's own
     * few roundings of the result (4u); then the store in the parameters' type.
     */
    private void checkRunningStats(String what, DType pt, double[] rm, double[] rv, double[][] st, double[] meanBound,
            double u, int perChannel) {
        int k = rm.length;
        double[] mRef = new double[k];
        double[] vRef = new double[k];
        double[] mB = new double[k];
        double[] vB = new double[k];
        for (int c = 0; c < k; c++) {
            double var = 1 / (st[1][c] * st[1][c]) - EPS;
            mRef[c] = rm[c] * MOMENTUM + st[0][c] * (1 - MOMENTUM);
            vRef[c] = rv[c] * MOMENTUM + var * (1 - MOMENTUM);
            mB[c] = (1 - MOMENTUM) * meanBound[c] + 4 * u * (Math.abs(mRef[c]) + Math.abs(rm[c]));
            vB[c] = (1 - MOMENTUM) * 128 * u * (var + EPS) + 4 * u * (Math.abs(vRef[c]) + Math.abs(rv[c]));
        }
        DTypeCliSupport.assertClose(what + " running mean", DTypeCliSupport.read(dir.resolve("om.npy"), pt,
                new long[] {k}), mRef, DTypeCliSupport.stored(mB, mRef, pt));
        DTypeCliSupport.assertClose(what + " running var", DTypeCliSupport.read(dir.resolve("ov.npy"), pt,
                new long[] {k}), vRef, DTypeCliSupport.stored(vB, vRef, pt));
    }

    private void checkGrad(String what, String backend, Op op, DType xt, DType pt, double[] x, double[] w,
            Reference64Backward.Sliced sliced, long seed) {
        double[] dy = DTypeCliSupport.write(dir.resolve("dy.npy"), xt, SHAPE,
                DTypeCliSupport.gaussian(seed + 7, x.length, 0, 1));
        List<String> args = new ArrayList<>(List.of("grad", op.cli, "--backend", backend, "--input", f("x.npy"),
                "--scale", f("w.npy"), "--grad-output", f("dy.npy"), "--output-grad-input", f("dx.npy"),
                "--output-grad-scale", f("dw.npy")));
        args.addAll(List.of(DTypeCliSupport.typeFlag(xt)));
        args.addAll(List.of(op.extra));
        if (op.bias) {
            args.addAll(List.of("--output-grad-bias", f("db.npy")));
        }
        boolean saved = pt == DType.FLOAT32;
        if (saved) {
            args.addAll(List.of("--saved-inv-std", f("inv.npy")));
            if (op != Op.RMS) {
                args.addAll(List.of("--saved-mean", f("mean.npy")));
            }
        }
        CliTestSupport.run(args.toArray(new String[0])).assertOk();
        Reference64Backward.Grads ref = Reference64Backward.backward(sliced, x, dy, w);
        GradBounds.Bounds bounds = GradBounds.of(sliced, x, dy, w, Tolerances.computeU(xt));
        String g = what + (saved ? " (saved stats)" : "");
        DTypeCliSupport.assertClose(g + " dX", DTypeCliSupport.read(dir.resolve("dx.npy"), xt, SHAPE), ref.dx(),
                DTypeCliSupport.stored(bounds.dx(), ref.dx(), xt));
        long[] affine = op.affineShape(SHAPE);
        DTypeCliSupport.assertClose(g + " dScale", DTypeCliSupport.read(dir.resolve("dw.npy"), pt, affine),
                ref.dScale(), DTypeCliSupport.stored(bounds.dScale(), ref.dScale(), pt));
        if (op.bias) {
            DTypeCliSupport.assertClose(g + " dBias", DTypeCliSupport.read(dir.resolve("db.npy"), pt, affine),
                    ref.dBias(), DTypeCliSupport.stored(bounds.dBias(), ref.dBias(), pt));
        }
    }

    static Stream<Arguments> typesAndBackends() {
        List<Arguments> args = new ArrayList<>();
        for (String backend : new String[] {"java", "opencl"}) {
            for (DType t : DTypeCliSupport.DTYPES) {
                args.add(Arguments.of(backend, t));
            }
        }
        return args.stream();
    }

    /**
     * A NaN in X stays a NaN in Y (bfloat16 and float16 NaNs included) and spoils only its own
     * row; an empty batch gives an empty Y of X's type.
     */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("typesAndBackends")
    void nanAndEmptyBatchKeepTheType(String backend, DType t) {
        CliTestSupport.requireBackend(backend);
        if (t == DType.FLOAT64 && !DTypeCliSupport.supportsFloat64(backend)) {
            return; // the refusal is checked by applyAndGradMatchFloat64
        }
        double[] v = DTypeCliSupport.gaussian(11, 12, 0, 1);
        v[5] = Double.NaN;
        DTypeCliSupport.write(dir.resolve("x.npy"), t, new long[] {3, 4}, v);
        List<String> args = new ArrayList<>(List.of("apply", "layer-norm", "--backend", backend, "--input",
                f("x.npy"), "--output", f("y.npy")));
        args.addAll(List.of(DTypeCliSupport.typeFlag(t)));
        CliTestSupport.run(args.toArray(new String[0])).assertOk();
        double[] y = DTypeCliSupport.read(dir.resolve("y.npy"), t, new long[] {3, 4});
        for (int i = 0; i < y.length; i++) {
            if (i / 4 == 1) {
                assertTrue(Double.isNaN(y[i]), "the NaN row is NaN at " + i + ": " + y[i]);
            } else {
                assertTrue(Double.isFinite(y[i]), "rows without NaN stay finite at " + i + ": " + y[i]);
            }
        }
        DTypeCliSupport.write(dir.resolve("e.npy"), t, new long[] {0, 4}, new double[0]);
        args.set(args.indexOf(f("x.npy")), f("e.npy"));
        args.set(args.indexOf(f("y.npy")), f("ey.npy"));
        CliTestSupport.run(args.toArray(new String[0])).assertOk();
        assertEquals(0, DTypeCliSupport.read(dir.resolve("ey.npy"), t, new long[] {0, 4}).length);
    }
}
