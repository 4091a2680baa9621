package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DType;
import org.normcl.npy.Npy;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.GradBounds;
import org.normcl.testing.Tolerances;

/**
 * {@code --channels-last}: batch-norm (training), group-norm and instance-norm on an NHWC file give,
 * forward and backward, what the same operator gives without the option on the NCHW transpose of
 * that file: both within the bounds of {@link DTypeCliSupport} of the float64 reference, hence
 * within the sum of the two bounds of each other, for every element type and backend. The saved
 * statistics of the channels-last run (shaped and ordered as the NCHW run's) feed its gradient.
 */
class ChannelsLastCliTest {
    @TempDir
    Path dir;

    /** (N, H, W, C). */
    static final long[] NHWC = {2, 3, 5, 4};
    static final float EPS = 1e-5f;

    static Stream<Arguments> cases() {
        List<Arguments> args = new ArrayList<>();
        for (String backend : new String[] {"java", "opencl"}) {
            for (String op : new String[] {"batch-norm", "group-norm", "instance-norm"}) {
                for (DType t : DTypeCliSupport.DTYPES) {
                    args.add(Arguments.of(backend, op, t));
                }
            }
        }
        return args.stream();
    }

    private String f(String name) {
        return dir.resolve(name).toString();
    }

    private static String[] extra(String op) {
        switch (op) {
            case "batch-norm":
                return new String[] {"--training"};
            case "group-norm":
                return new String[] {"--groups", "2"};
            default:
                return new String[0];
        }
    }

    private CliTestSupport.Result run(List<String> common, String... more) {
        List<String> a = new ArrayList<>(common);
        a.addAll(List.of(more));
        return CliTestSupport.run(a.toArray(new String[0]));
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void channelsLastEqualsChannelsFirstOnTheTranspose(String backend, String op, DType t) {
        CliTestSupport.requireBackend(backend);
        String what = backend + " " + op + " " + DTypeCliSupport.shortName(t) + " channels-last";
        Tolerances.onBackend(backend);
        long seed = what.hashCode();
        long[] nchw = DTypeCliSupport.channelsFirstShape(NHWC);
        int n = CliTestSupport.size(NHWC);
        int c = (int) NHWC[NHWC.length - 1];
        // Parameters in X's type for the 16-bit types (mixed precision is covered by DTypeCliTest).
        DType pt = t == DType.FLOAT64 ? DType.FLOAT32 : t;
        double[] xl = DTypeCliSupport.write(dir.resolve("xl.npy"), t, NHWC, DTypeCliSupport.xData(t, seed, n));
        double[] xf = DTypeCliSupport.toChannelsFirst(xl, NHWC);
        DTypeCliSupport.write(dir.resolve("xf.npy"), t, nchw, xf); // exact: the values are already of type t
        double[] dyl = DTypeCliSupport.write(dir.resolve("dyl.npy"), t, NHWC, DTypeCliSupport.gaussian(seed + 1, n, 0, 1));
        double[] dyf = DTypeCliSupport.toChannelsFirst(dyl, NHWC);
        DTypeCliSupport.write(dir.resolve("dyf.npy"), t, nchw, dyf);
        double[] w = DTypeCliSupport.write(dir.resolve("w.npy"), pt, new long[] {c},
                DTypeCliSupport.gaussian(seed + 2, c, 1, 0.4));
        double[] b = DTypeCliSupport.write(dir.resolve("b.npy"), pt, new long[] {c},
                DTypeCliSupport.gaussian(seed + 3, c, 0.2, 0.5));

        List<String> common = new ArrayList<>(List.of(op, "--backend", backend, "--scale", f("w.npy")));
        common.addAll(List.of(extra(op)));
        common.addAll(List.of(DTypeCliSupport.typeFlag(t)));
        List<String> apply = new ArrayList<>(List.of("apply"));
        apply.addAll(common);
        apply.addAll(List.of("--bias", f("b.npy")));
        List<String> grad = new ArrayList<>(List.of("grad"));
        grad.addAll(common);
        grad.addAll(List.of("--output-grad-scale", f("dw.npy"), "--output-grad-bias", f("db.npy")));
        if (t == DType.FLOAT64 && !DTypeCliSupport.supportsFloat64(backend)) {
            CliTestSupport.Result r = run(apply, "--channels-last", "--input", f("xl.npy"), "--output", f("yl.npy"));
            assertEquals(1, r.code(), r::toString);
            assertTrue(r.err().contains("cl_khr_fp64"), r::toString);
            return;
        }

        run(apply, "--channels-last", "--input", f("xl.npy"), "--output", f("yl.npy"), "--save-mean", f("ml.npy"),
                "--save-inv-std", f("il.npy")).assertOk();
        run(apply, "--input", f("xf.npy"), "--output", f("yf.npy"), "--save-mean", f("mf.npy"), "--save-inv-std",
                f("if.npy")).assertOk();
        CliTestSupport.Result gl = run(grad, "--input", f("xf.npy"), "--grad-output", f("dyf.npy"),
                "--output-grad-input", f("dxf.npy")).assertOk();
        // dScale/dBias of the NCHW run, kept before the channels-last run's are read.
        double[] dwf = DTypeCliSupport.read(dir.resolve("dw.npy"), pt, new long[] {c});
        double[] dbf = DTypeCliSupport.read(dir.resolve("db.npy"), pt, new long[] {c});
        run(grad, "--channels-last", "--input", f("xl.npy"), "--grad-output", f("dyl.npy"), "--output-grad-input",
                f("dxl.npy"), "--saved-mean", f("ml.npy"), "--saved-inv-std", f("il.npy")).assertOk();
        double[] dwl = DTypeCliSupport.read(dir.resolve("dw.npy"), pt, new long[] {c});
        double[] dbl = DTypeCliSupport.read(dir.resolve("db.npy"), pt, new long[] {c});

        Reference64Backward.Sliced sliced = op.equals("batch-norm") ? Reference64Backward.batch(nchw, EPS)
                : op.equals("group-norm") ? Reference64Backward.group(nchw, 2, false, EPS)
                        : Reference64Backward.instance(nchw, EPS);
        double u = Tolerances.computeU(t);
        double[][] st = Reference64Backward.stats(sliced, xf);
        double[] yRef = Reference64Backward.forward(sliced, xf, w, b);
        double[] yBound = new double[n];
        for (int i = 0; i < n; i++) {
            int s = sliced.slice()[i];
            int a = sliced.affine()[i];
            double xhat = (xf[i] - st[0][s]) * st[1][s];
            yBound[i] = Tolerances.element(u, xhat, Math.abs(st[0][s]) * st[1][s], w[a], b[a], yRef[i]);
        }
        yBound = DTypeCliSupport.stored(yBound, yRef, t);
        double[] yl = DTypeCliSupport.toChannelsFirst(DTypeCliSupport.read(dir.resolve("yl.npy"), t, NHWC), NHWC);
        double[] yf = DTypeCliSupport.read(dir.resolve("yf.npy"), t, nchw);
        assertAgree(what + " Y", yl, yf, yRef, yBound);

        DType statType = t == DType.FLOAT64 ? DType.FLOAT64 : DType.FLOAT32;
        for (String[] pair : new String[][] {{"ml.npy", "mf.npy"}, {"il.npy", "if.npy"}}) {
            assertArrayEquals(Npy.read(dir.resolve(pair[1])).shape(), Npy.read(dir.resolve(pair[0])).shape(),
                    "saved statistics have the channels-first shape");
        }
        int slices = sliced.slices();
        double[] mBound = new double[slices];
        double[] iBound = new double[slices];
        for (int s = 0; s < slices; s++) {
            mBound[s] = Tolerances.mean(u, st[0][s], 1 / st[1][s]);
            iBound[s] = Tolerances.invStd(u, st[1][s]);
        }
        assertAgree(what + " saved mean", DTypeCliSupport.read(dir.resolve("ml.npy"), statType, null),
                DTypeCliSupport.read(dir.resolve("mf.npy"), statType, null), st[0],
                DTypeCliSupport.stored(mBound, st[0], statType));
        assertAgree(what + " saved inv-std", DTypeCliSupport.read(dir.resolve("il.npy"), statType, null),
                DTypeCliSupport.read(dir.resolve("if.npy"), statType, null), st[1],
                DTypeCliSupport.stored(iBound, st[1], statType));

        Reference64Backward.Grads ref = Reference64Backward.backward(sliced, xf, dyf, w);
        GradBounds.Bounds gb = GradBounds.of(sliced, xf, dyf, w, u);
        double[] dxl = DTypeCliSupport.toChannelsFirst(DTypeCliSupport.read(dir.resolve("dxl.npy"), t, NHWC), NHWC);
        double[] dxf = DTypeCliSupport.read(dir.resolve("dxf.npy"), t, nchw);
        assertAgree(what + " dX", dxl, dxf, ref.dx(), DTypeCliSupport.stored(gb.dx(), ref.dx(), t));
        assertAgree(what + " dScale", dwl, dwf, ref.dScale(), DTypeCliSupport.stored(gb.dScale(), ref.dScale(), pt));
        assertAgree(what + " dBias", dbl, dbf, ref.dBias(), DTypeCliSupport.stored(gb.dBias(), ref.dBias(), pt));
        gl.assertNoStackTrace();
    }

    /**
     * Both results within the bound of the reference, hence within twice the bound of each other
     * (checked too, to report a layout difference as such).
     */
    private static void assertAgree(String what, double[] last, double[] first, double[] ref, double[] bound) {
        DTypeCliSupport.assertClose(what + " (channels-last)", last, ref, bound);
        DTypeCliSupport.assertClose(what + " (channels-first)", first, ref, bound);
        double[] twice = new double[bound.length];
        for (int i = 0; i < twice.length; i++) {
            twice[i] = 2 * bound[i];
        }
        DTypeCliSupport.assertClose(what + " (channels-last vs channels-first)", last, first, twice);
    }
}
