package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.reference.Reference64Backward;
import org.normcl.testing.Data;
import org.normcl.testing.GradBounds;
import org.normcl.testing.TensorBits;
import org.normcl.testing.Tolerances;

/**
 * Short contiguous rows on the one-work-item family: blocks of rows per work-item (row_norm_rows,
 * row_backward_rows), VW rows at a time in vector lanes when rows are shorter than VW, against the
 * one-work-item-per-row kernels (row_norm_serial, row_backward_serial: the {@code rowwise} family)
 * bit for bit, and against the float64 reference within {@link Tolerances} and
 * {@link GradBounds}. Shapes are group and instance norm of (N, C, S) data, rows of (C / G) * S
 * values: 1 to 33 values, row counts that are not multiples of VW nor of a work-item's block,
 * with and without affine, mean-variance, RMS and epsilon-outside statistics, and rows holding
 * NaN and infinities.
 */
class ShortRowKernelTest {
    private static final float EPS = 1e-5f;
    private DeviceInfo device;
    private ClBackend blocked;
    private ClBackend rowwise;

    @BeforeEach
    void open() {
        device = ClTestDevices.firstNonSimulator();
        blocked = ClTestDevices.openWithKernels(device, "serial");
        rowwise = ClTestDevices.openWithKernels(device, "rowwise");
    }

    @AfterEach
    void close() {
        if (blocked != null) {
            blocked.close();
        }
        if (rowwise != null) {
            rowwise.close();
        }
    }

    /**
     * The short-row kernels under a simulator: {@code oclgrind java -cp ... org.normcl.opencl.ShortRowKernelTest
     * oclgrind} runs small cases of every kind (lanes with constant and other row lengths, affine
     * entries that run on and that wrap, a scalar tail, RMS, NaN and infinities, float16 and
     * float64 where the device has them) on the device the selector names and checks the bits
     * against the rowwise kernels; Oclgrind reports any out-of-bounds or uninitialized access.
     */
    public static void main(String[] args) {
        String selector = args.length > 0 ? args[0] : "oclgrind";
        String[] cases = {"FLOAT32, 20, 3, 3, 1, MEAN_VAR, true, true", "FLOAT32, 21, 8, 2, 1, MEAN_VAR, true, true",
            "FLOAT32, 13, 12, 4, 1, MEAN_VAR, true, true", "FLOAT32, 19, 10, 2, 1, MEAN_VAR, false, true",
            "FLOAT32, 17, 14, 2, 1, RMS, true, false", "FLOAT32, 11, 6, 2, 2, MEAN_VAR, true, true",
            "FLOAT32, 9, 24, 4, 1, MEAN_VAR_EPS_OUTSIDE, true, true", "FLOAT32, 6, 40, 2, 1, MEAN_VAR, true, true",
            "FLOAT16, 12, 8, 4, 1, MEAN_VAR, true, true", "FLOAT64, 12, 9, 3, 1, MEAN_VAR, true, true",
            // groups that run on over a block of lanes (G >= VW)
            "FLOAT32, 5, 16, 16, 1, MEAN_VAR, true, true", "FLOAT32, 3, 48, 16, 1, MEAN_VAR, true, true",
            "FLOAT32, 3, 80, 16, 1, RMS, true, false", "FLOAT32, 3, 40, 20, 1, MEAN_VAR, true, true",
            "FLOAT32, 2, 48, 16, 1, MEAN_VAR, false, false"};
        int failed = 0;
        try (ClBackend b = open(selector, "serial"); ClBackend w = open(selector, "rowwise")) {
            for (String c : cases) {
                String[] f = c.split(", ");
                Case k = new Case(DType.valueOf(f[0]), Integer.parseInt(f[1]), Integer.parseInt(f[2]),
                        Integer.parseInt(f[3]), Integer.parseInt(f[4]), StatMode.valueOf(f[5]),
                        Boolean.parseBoolean(f[6]), Boolean.parseBoolean(f[7]));
                if (!b.supports(k.type())) {
                    System.out.println("  skip " + k.name());
                    continue;
                }
                float[][] in = inputs(k, k.name());
                in[0][k.size() / 2] = Float.NaN;
                in[0][k.size() / 3] = Float.POSITIVE_INFINITY;
                try {
                    assertSameAsRowwise(w, k, in, run(b, k, in));
                    System.out.println("  ok   " + k.name());
                } catch (AssertionError e) {
                    failed++;
                    System.out.println("  FAIL " + k.name() + ": " + e.getMessage());
                }
            }
        }
        System.out.println("ShortRowKernelTest: " + cases.length + " cases, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static ClBackend open(String selector, String family) {
        System.setProperty(WorkSizing.STRATEGY_PROPERTY, family);
        try {
            return ClRuntime.open(selector, java.util.Optional.empty());
        } finally {
            System.clearProperty(WorkSizing.STRATEGY_PROPERTY);
        }
    }

    /** x, dY, scale and bias of a case. */
    private static float[][] inputs(Case k, String seed) {
        return new float[][] {Data.gaussian(seed, k.size(), 3, 2), Data.gaussian(seed + " dy", k.size(), 0, 1),
            Data.uniform(seed + " w", k.c(), 0.5, 1.5), Data.uniform(seed + " b", k.c(), -1, 1)};
    }

    /** One case: (N, C, S) data, G groups, its plans and float64 reference layout. */
    private record Case(DType type, int n, int c, int g, int s, StatMode mode, boolean scale, boolean bias) {
        int cols() {
            return c / g * s;
        }

        int rows() {
            return n * g;
        }

        int size() {
            return n * c * s;
        }

        RowNormPlan plan() {
            return RowNormPlan.contiguous(rows(), cols(), mode, EPS, g, c / g, s, scale, bias && mode != StatMode.RMS);
        }

        AffineGradPlan grad() {
            return new AffineGradPlan(n, c, s, g, c / g, mode == StatMode.RMS);
        }

        Reference64Backward.Sliced reference() {
            Reference64Backward.Sliced op = Reference64Backward.group(new long[] {n, c, s}, g, false, EPS);
            return mode == StatMode.RMS ? new Reference64Backward.Sliced(op.slice(), op.affine(), op.slices(),
                    op.affines(), true, op.eps()) : op;
        }

        String name() {
            return type + " N=" + n + " C=" + c + " G=" + g + " S=" + s + " (rows of " + cols() + ") " + mode
                    + (scale ? " scale" : "") + (bias ? " bias" : "");
        }
    }

    /**
     * The outputs of one backend: y, mean, inv, dX, dScale, dBias, and dX of the backward without
     * the parameter gradients (row_backward_rows where the other is fused).
     */
    private record Out(HostTensor y, HostTensor mean, HostTensor inv, HostTensor dx, HostTensor dScale,
            HostTensor dBias, HostTensor dxAlone) {
    }

    private static Out run(ClBackend be, Case k, float[][] in) {
        float[] x = in[0];
        float[] dy = in[1];
        float[] w = in[2];
        float[] b = in[3];
        int size = k.size();
        int rows = k.rows();
        boolean rms = k.mode() == StatMode.RMS;
        DType st = k.type().statistics();
        try (Buffer xb = be.importHost(HostTensor.convert(x, k.type(), size));
                Buffer dyb = be.importHost(HostTensor.convert(dy, k.type(), size));
                Buffer wb = k.scale() ? be.importHost(HostTensor.of(w, k.c())) : null;
                Buffer bb = k.plan().hasBias() ? be.importHost(HostTensor.of(b, k.c())) : null;
                Buffer y = be.allocate(k.type(), size);
                Buffer mean = be.allocate(st, rows);
                Buffer inv = be.allocate(st, rows);
                Buffer dx = be.allocate(k.type(), size);
                Buffer dxAlone = be.allocate(k.type(), size);
                Buffer ds = be.allocate(DType.FLOAT32, k.c());
                Buffer db = be.allocate(DType.FLOAT32, k.c())) {
            be.rowNorm(k.plan(), xb, wb, bb, y, rms ? null : mean, inv);
            be.rowNormBackwardWithGrad(k.plan(), k.grad(), dyb, xb, wb, mean, inv, dx, ds, rms ? null : db);
            be.rowNormBackward(k.plan(), dyb, xb, wb, mean, inv, dxAlone);
            return new Out(be.read(y, Shape.of(size)), rms ? null : be.read(mean, Shape.of(rows)),
                    be.read(inv, Shape.of(rows)), be.read(dx, Shape.of(size)), be.read(ds, Shape.of(k.c())),
                    rms ? null : be.read(db, Shape.of(k.c())), be.read(dxAlone, Shape.of(size)));
        }
    }

    private static void assertSameBits(HostTensor expected, HostTensor actual, String what) {
        if (expected == null) {
            return;
        }
        assertArrayEquals(TensorBits.of(expected), TensorBits.of(actual), what);
    }

    private static void assertSameAsRowwise(ClBackend rowwise, Case k, float[][] in, Out got) {
        Out want = run(rowwise, k, in);
        String what = k.name();
        assertSameBits(want.y(), got.y(), what + " y");
        assertSameBits(want.mean(), got.mean(), what + " mean");
        assertSameBits(want.inv(), got.inv(), what + " inv");
        assertSameBits(want.dx(), got.dx(), what + " dX");
        assertSameBits(want.dxAlone(), got.dxAlone(), what + " dX without the parameter gradients");
        assertSameBits(want.dScale(), got.dScale(), what + " dScale");
        assertSameBits(want.dBias(), got.dBias(), what + " dBias");
    }

    @ParameterizedTest(name = "{0} N={1} C={2} G={3} S={4} {5} scale {6} bias {7}")
    @CsvSource({
        // instance norm of (N, C): rows of one value
        "FLOAT32, 37, 6, 6, 1, MEAN_VAR, true, true", "FLOAT32, 1000, 128, 128, 1, MEAN_VAR, true, true",
        // group norm of (N, C): rows of 2, 3, 4, 5, 7, 15, 16, 17, 33 values
        "FLOAT32, 1001, 128, 64, 1, MEAN_VAR, true, true", "FLOAT32, 333, 12, 4, 1, MEAN_VAR, true, true",
        "FLOAT32, 1000, 128, 32, 1, MEAN_VAR, true, true", "FLOAT32, 403, 20, 4, 1, MEAN_VAR, false, false",
        "FLOAT32, 211, 14, 2, 1, MEAN_VAR, true, false", "FLOAT32, 97, 30, 2, 1, MEAN_VAR, false, true",
        "FLOAT32, 129, 64, 4, 1, MEAN_VAR, true, true", "FLOAT32, 55, 34, 2, 1, MEAN_VAR, true, true",
        "FLOAT32, 41, 66, 2, 1, MEAN_VAR, true, true",
        // rows of 8, 16, 32 and 64 values: a multiple of the vector width the kernels take as a constant
        "FLOAT32, 203, 64, 2, 1, MEAN_VAR, true, true", "FLOAT32, 101, 128, 2, 1, MEAN_VAR, false, true",
        "FLOAT32, 150, 96, 3, 1, RMS, true, false", "FLOAT32, 77, 8, 2, 8, MEAN_VAR, true, true",
        "FLOAT32, 90, 40, 5, 1, MEAN_VAR, true, true", "FLOAT64, 99, 32, 2, 1, MEAN_VAR, true, true",
        "FLOAT16, 120, 64, 2, 1, MEAN_VAR, true, true",
        // rows of 16 values, VW at a time in the lanes where VW is 16: RMS, bias only, no affine (one
        // group: the lanes' groups are not consecutive), bfloat16
        "FLOAT32, 150, 48, 3, 1, RMS, true, false", "FLOAT32, 90, 32, 2, 1, MEAN_VAR, false, true",
        "FLOAT32, 70, 16, 1, 1, MEAN_VAR, false, false", "BFLOAT16, 64, 32, 2, 1, MEAN_VAR, true, true",
        // rows of 16 values in 16 groups or more: VW groups of a sample at a time where VW is 16 (the
        // backward too), the groups past the last whole block one at a time
        "FLOAT32, 80, 256, 16, 1, MEAN_VAR, true, true", "FLOAT32, 50, 544, 34, 1, MEAN_VAR, true, false",
        "FLOAT32, 61, 256, 16, 1, RMS, true, false", "FLOAT64, 30, 512, 32, 1, MEAN_VAR, true, true",
        "FLOAT16, 40, 256, 16, 1, MEAN_VAR, false, true",
        // RMS and epsilon outside the square root (MVN's statistics), with and without groups
        "FLOAT32, 1003, 16, 4, 1, RMS, true, false", "FLOAT32, 77, 7, 1, 1, RMS, false, false",
        "FLOAT32, 1003, 9, 3, 1, MEAN_VAR_EPS_OUTSIDE, true, true",
        // channels-first with a few spatial values: per-channel affine over runs of S
        "FLOAT32, 129, 8, 4, 3, MEAN_VAR, true, true", "FLOAT32, 63, 5, 5, 7, MEAN_VAR, true, true",
        // other element types
        "FLOAT16, 301, 32, 8, 1, MEAN_VAR, true, true", "FLOAT64, 301, 24, 8, 1, MEAN_VAR, true, true",
        "BFLOAT16, 150, 12, 12, 1, MEAN_VAR, true, true", "FLOAT64, 99, 5, 5, 1, RMS, true, false"})
    void blockedRowsGiveTheRowwiseBitsAndTheReference(DType type, int n, int c, int g, int s, StatMode mode,
            boolean scale, boolean bias) {
        assumeTrue(blocked.supports(type), type + " is not supported by " + device.name());
        Case k = new Case(type, n, c, g, s, mode, scale, bias);
        float[][] in = inputs(k, k.name());
        Out got = run(blocked, k, in);
        assertSameAsRowwise(rowwise, k, in, got);
        if (type == DType.FLOAT32 && mode != StatMode.MEAN_VAR_EPS_OUTSIDE) {
            assertNearReference(k, in[0], in[1], scale ? in[2] : null, k.plan().hasBias() ? in[3] : null, got);
        }
    }

    /** y within Tolerances.element, dX, dScale and dBias within GradBounds of the float64 reference. */
    private static void assertNearReference(Case k, float[] x, float[] dy, float[] w, float[] b, Out got) {
        Reference64Backward.Sliced op = k.reference();
        double[] xd = Reference64Backward.widen(x);
        double[] wd = Reference64Backward.widen(w);
        double[][] st = Reference64Backward.stats(op, xd);
        double[] xhat = Reference64Backward.xhat(op, xd);
        double[] yRef = Reference64Backward.forward(op, xd, wd, Reference64Backward.widen(b));
        double[] bound = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int sl = op.slice()[i];
            int a = op.affine()[i];
            double meanOverSigma = Math.abs(st[0][sl]) * st[1][sl];
            bound[i] = Tolerances.element(xhat[i], meanOverSigma, w == null ? 1 : w[a], b == null ? 0 : b[a], yRef[i]);
        }
        Tolerances.assertWithin(k.name() + " y", (float[]) got.y().array(), yRef, bound);
        Reference64Backward.Grads ref = Reference64Backward.backward(op, xd, Reference64Backward.widen(dy), wd);
        GradBounds.Bounds gb = GradBounds.of(op, x, dy, w);
        Tolerances.assertWithin(k.name() + " dX", (float[]) got.dx().array(), ref.dx(), gb.dx());
        Tolerances.assertWithin(k.name() + " dScale", (float[]) got.dScale().array(), ref.dScale(), gb.dScale());
        if (ref.dBias() != null) {
            Tolerances.assertWithin(k.name() + " dBias", (float[]) got.dBias().array(), ref.dBias(), gb.dBias());
        }
    }

    /**
     * NaN and infinities in some rows of a block: those rows' outputs are NaN (their variance is
     * undefined), the saved mean of a row of one infinite value is that infinity, and every other
     * row of the block is untouched by them; all bit for bit as row_norm_serial.
     */
    @ParameterizedTest(name = "rows of {0}")
    @CsvSource({"1", "3", "4", "8", "16", "17"})
    void nonFiniteValuesStayInTheirRows(int cpg) {
        int n = 45;
        int g = 16;
        int c = g * cpg;
        Case k = new Case(DType.FLOAT32, n, c, g, 1, StatMode.MEAN_VAR, true, true);
        float[][] in = inputs(k, k.name());
        float[] x = in[0];
        int[] bad = {0, 5, 17, 40, 41, 200, 719};
        float[] values = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY};
        for (int i = 0; i < bad.length; i++) {
            x[bad[i] * cpg + (i % cpg)] = values[i]; // row bad[i]
        }
        float[] b = in[3];
        Out got = run(blocked, k, in);
        assertSameAsRowwise(rowwise, k, in, got);
        float[] y = (float[]) got.y().array();
        float[] mean = (float[]) got.mean().array();
        java.util.Set<Integer> badRows = new java.util.HashSet<>();
        for (int r : bad) {
            badRows.add(r);
        }
        for (int r = 0; r < k.rows(); r++) {
            for (int t = 0; t < cpg; t++) {
                float v = y[r * cpg + t];
                assertEquals(badRows.contains(r), Float.isNaN(v), "row " + r + " value " + t + ": " + v);
            }
        }
        for (int r = 0; r < k.rows(); r++) {
            assertEquals(badRows.contains(r), !Float.isFinite(mean[r]), "mean of row " + r + ": " + mean[r]);
            if (cpg == 1) {
                // A row of one value: its mean is the value (infinities included), y is the bias.
                assertEquals(x[r], mean[r], 0, "mean of row " + r);
                if (!badRows.contains(r)) {
                    assertEquals(b[r % c], y[r], 0, "y of row " + r);
                }
            }
        }
    }

    /** Statistics only (no y), as NormEngine asks for them before a multi-device merge. */
    @Test
    void statisticsOnlyMatchTheRowwiseKernel() {
        Case k = new Case(DType.FLOAT32, 517, 24, 8, 1, StatMode.MEAN_VAR, false, false);
        float[] x = Data.gaussian(k.name(), k.size(), 1e4, 1);
        HostTensor[][] got = new HostTensor[2][];
        ClBackend[] bes = {blocked, rowwise};
        for (int i = 0; i < 2; i++) {
            ClBackend be = bes[i];
            try (Buffer xb = be.importHost(HostTensor.of(x, k.size()));
                    Buffer mean = be.allocate(DType.FLOAT32, k.rows());
                    Buffer inv = be.allocate(DType.FLOAT32, k.rows())) {
                be.rowNorm(k.plan(), xb, null, null, null, mean, inv);
                got[i] = new HostTensor[] {be.read(mean, Shape.of(k.rows())), be.read(inv, Shape.of(k.rows()))};
            }
        }
        assertSameBits(got[1][0], got[0][0], "mean");
        assertSameBits(got[1][1], got[0][1], "inv");
    }
}
