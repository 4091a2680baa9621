package org.normcl.reliability;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import org.normcl.BackendKind;
import org.normcl.BatchNorm;
import org.normcl.ChannelMoments;
import org.normcl.DType;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.GradResult;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.Layout;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.SavedStats;
import org.normcl.Shape;
import org.normcl.Tensor;
import org.normcl.testing.Data;

/**
 * The OpenCL work {@code scripts/oclgrind-check} runs under
 * {@code oclgrind --data-races --uninitialized}: every kernel and every code path the engine has,
 * on small shapes (Oclgrind interprets every work-item), with every kernel family (serial: one
 * work-item per row; pipelined: one work-item per block of rows, the next row's statistics gathered
 * while this one is normalized; group: one work-group per row with local-memory reductions), host and device
 * tensors. Each result is compared with the Java backend, so a kernel that reads out of bounds and
 * gets lucky still fails if its answer changes.
 *
 * <p>Usage: {@code java -cp ... org.normcl.reliability.OclgrindWorkload [--only SUBSTRING]
 * [--family serial|pipelined|group] [--device NAME]}; {@code --crash} crashes the JVM instead (to test that
 * the script notices). Exit status: 0 all cases match; 1 a mismatch or an exception; 2 no (matching)
 * OpenCL device. Oclgrind's own reports go to stderr (or its --log file); the script scans them.
 */
public final class OclgrindWorkload {
    /**
     * Accepted |OpenCL - Java| relative to 1 + |Java|: both compute the same float32 quantities with
     * different reduction orders (rounding differences ~1e-6 on these small, unit-scale rows); a
     * wrong element (uninitialized or out-of-bounds data) is off by far more. The accuracy against a
     * float64 oracle is checked, with derived bounds, by the unit and property tests.
     */
    static final double TOLERANCE = 1e-4;

    private record Case(String name, Op op, boolean device, Extra extra, double tolerance) {
        Case(String name, Op op, boolean device) {
            this(name, op, device, null, TOLERANCE);
        }

        Case(String name, Op op, boolean device, Extra extra) {
            this(name, op, device, extra, TOLERANCE);
        }
    }

    /**
     * A case that is not one {@link Op}: a body that creates the engines it needs (a fresh one per
     * step where a step's outputs feed a later kernel, see below) and returns every output.
     */
    @FunctionalInterface
    private interface Extra {
        List<float[]> run(java.util.function.Supplier<NormEngine> engines);
    }

    private static final String CHAIN = "device-resident chain (upload, full, layer -> rms, download)";

    /** The --device selector (null: the best device). */
    private static String selector;

    private OclgrindWorkload() {
    }

    /** Crashes the JVM (a native read of address 0), for the self-test of the crash detection. */
    private static void crash() {
        try {
            java.lang.reflect.Field f = Class.forName("sun.misc.Unsafe").getDeclaredField("theUnsafe");
            f.setAccessible(true);
            Object unsafe = f.get(null);
            unsafe.getClass().getMethod("getInt", long.class).invoke(unsafe, 0L);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
        System.err.println("OclgrindWorkload: --crash did not crash");
        System.exit(3);
    }

    public static void main(String[] args) {
        String only = null;
        String device = null;
        List<String> families = new ArrayList<>(List.of("serial", "pipelined", "group"));
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--only":
                    only = args[++i];
                    break;
                case "--family":
                    families = List.of(args[++i]);
                    break;
                case "--device":
                    device = args[++i];
                    break;
                case "--crash":
                    crash();
                    break;
                default:
                    System.err.println("OclgrindWorkload: unknown argument " + args[i]);
                    System.exit(2);
            }
        }
        if (NormEngine.devices().isEmpty()) {
            System.err.println("OclgrindWorkload: no OpenCL device: "
                    + NormEngine.openClUnavailableReason().orElse("?"));
            System.exit(2);
        }
        System.out.println("OpenCL devices: " + NormEngine.devices().stream().map(d -> d.label()).toList());
        String wanted = device;
        if (device != null && NormEngine.devices().stream()
                .noneMatch(d -> d.label().toLowerCase(Locale.ROOT).contains(wanted.toLowerCase(Locale.ROOT)))) {
            System.err.println("OclgrindWorkload: no OpenCL device matches '" + device + "' (is the JVM running under"
                    + " oclgrind?)");
            System.exit(2);
        }
        selector = device;
        long t0 = System.nanoTime();
        int failures = 0;
        int ran = 0;
        try (NormEngine java = NormEngine.create(EngineOptions.java().withThreads(1))) {
            List<Case> cases = cases();
            for (String family : families) {
                System.out.println("== " + family + " kernels");
                for (Case c : cases) {
                    if (only != null && !c.name().contains(only)) {
                        continue;
                    }
                    ran++;
                    long c0 = System.nanoTime();
                    String error;
                    // A fresh engine (OpenCL context) per case: Oclgrind 21.10's --uninitialized keeps a
                    // released buffer's shadow size when a later, larger buffer reuses its address, and
                    // then reports kernel-written data beyond the old size as uninitialized when another
                    // kernel reads it (a false positive; see scripts/oclgrind-check). Contexts do not
                    // share shadow memory, so one case per context avoids it without hiding real reports.
                    if (c.extra() != null) {
                        error = compareExtra(c, family);
                    } else {
                        try (NormEngine cl = create(family)) {
                            if (cl.backendKind() != BackendKind.OPENCL) {
                                throw new IllegalStateException("not an OpenCL engine: " + cl.description());
                            }
                            error = c.name().equals(CHAIN) ? deviceChain(cl, java) : compare(c, cl, java);
                        }
                    }
                    System.out.printf(Locale.ROOT, "  %-4s %-60s %7.0f ms%s%n", error == null ? "ok" : "FAIL",
                            c.name(), (System.nanoTime() - c0) / 1e6, error == null ? "" : "  " + error);
                    if (error != null) {
                        failures++;
                    }
                }
            }
        } catch (RuntimeException e) {
            e.printStackTrace();
            System.out.println("OclgrindWorkload: FAILED with " + e);
            System.exit(1);
        }
        System.out.printf(Locale.ROOT, "OclgrindWorkload: %d runs (cases x kernel families), %d failed, %.1f s%n", ran,
                failures, (System.nanoTime() - t0) / 1e9);
        System.exit(failures == 0 ? 0 : 1);
    }

    private static NormEngine create(String family) {
        String previous = System.getProperty("normcl.kernels");
        System.setProperty("normcl.kernels", family);
        try {
            return NormEngine.create(EngineOptions.opencl(selector));
        } finally {
            if (previous == null) {
                System.clearProperty("normcl.kernels");
            } else {
                System.setProperty("normcl.kernels", previous);
            }
        }
    }

    /** @return null when the OpenCL outputs match the Java ones, else what differs */
    private static String compare(Case c, NormEngine cl, NormEngine java) {
        Op.Out expected;
        Op.Out actual;
        try {
            expected = c.op().run(java, false);
            actual = c.op().run(cl, c.device());
        } catch (RuntimeException e) {
            return "exception: " + e;
        }
        return diff(expected, actual, TOLERANCE);
    }

    /** Runs an extra case on fresh OpenCL engines of the family and on Java engines; compares. */
    private static String compareExtra(Case c, String family) {
        List<float[]> expected;
        List<float[]> actual;
        try {
            expected = c.extra().run(() -> NormEngine.create(EngineOptions.java().withThreads(1)));
            actual = c.extra().run(() -> {
                NormEngine e = create(family);
                if (e.backendKind() != BackendKind.OPENCL) {
                    e.close();
                    throw new IllegalStateException("not an OpenCL engine: " + e.description());
                }
                return e;
            });
        } catch (RuntimeException e) {
            return "exception: " + e;
        }
        if (expected.size() != actual.size()) {
            return expected.size() + " outputs on Java, " + actual.size() + " on OpenCL";
        }
        for (int k = 0; k < expected.size(); k++) {
            String d = diff(new Op.Out(expected.get(k), null, null, null, null),
                    new Op.Out(actual.get(k), null, null, null, null), c.tolerance());
            if (d != null) {
                return "output " + k + " " + d;
            }
        }
        return null;
    }

    static String diff(Op.Out expected, Op.Out actual) {
        return diff(expected, actual, TOLERANCE);
    }

    /** @param tolerance relative difference allowed (one unit in the last place of a 16-bit output type) */
    static String diff(Op.Out expected, Op.Out actual, double tolerance) {
        List<Op.Named> e = expected.named();
        List<Op.Named> a = actual.named();
        for (int k = 0; k < e.size(); k++) {
            float[] x = e.get(k).data();
            float[] y = a.get(k).data();
            String name = e.get(k).name();
            if (x == null || y == null) {
                if (x != y) {
                    return name + ": present on one backend only";
                }
                continue;
            }
            if (x.length != y.length) {
                return name + ": length " + y.length + " != " + x.length;
            }
            for (int i = 0; i < x.length; i++) {
                boolean ok;
                if (Float.isNaN(x[i]) || Float.isInfinite(x[i]) || Float.isNaN(y[i]) || Float.isInfinite(y[i])) {
                    ok = (Float.isNaN(x[i]) && Float.isNaN(y[i])) || x[i] == y[i];
                } else {
                    ok = Math.abs(x[i] - y[i]) <= tolerance * (1 + Math.abs(x[i]));
                }
                if (!ok) {
                    return name + "[" + i + "] = " + y[i] + ", Java backend " + x[i];
                }
            }
        }
        return null;
    }

    /**
     * Upload, fill, chain two operators on device tensors, download; compare with the Java backend.
     * The filled tensor is only downloaded, never fed to a kernel: Oclgrind 21.10's --uninitialized
     * does not mark clEnqueueFillBuffer's data as initialized (a false positive, see
     * scripts/oclgrind-check).
     */
    private static String deviceChain(NormEngine cl, NormEngine java) {
        float[] x = Data.gaussian("chain", 6 * 37, 3, 2);
        float[] w = Data.gaussian("chain w", 37, 1, 0.5);
        float[] b = Data.gaussian("chain b", 37, 0, 0.5);
        float[][] out = new float[2][];
        float[][] filled = new float[2][];
        NormEngine[] engines = {java, cl};
        try {
            for (int k = 0; k < 2; k++) {
                NormEngine e = engines[k];
                try (DeviceTensor dx = e.upload(x, 6, 37);
                        DeviceTensor bias = e.upload(b, 37);
                        DeviceTensor full = e.full(Shape.of(5, 3), 0.25f);
                        NormResult first = e.layerNorm(LayerNorm.defaults(), dx, HostTensor.of(w, 37), bias);
                        NormResult second = e.rmsNorm(RmsNorm.defaults(), first.y(), bias)) {
                    out[k] = second.y().toHost().data().clone();
                    filled[k] = full.toHost().data().clone();
                }
            }
        } catch (RuntimeException ex) {
            return "exception: " + ex;
        }
        for (float f : filled[1]) {
            if (f != 0.25f) {
                return "full(0.25) holds " + f;
            }
        }
        return diff(new Op.Out(out[0], null, null, null, null), new Op.Out(out[1], null, null, null, null));
    }

    // ------------------------------------------------------------------ moments and backward passes

    private static float[] host(Tensor t) {
        return t == null ? null : t.toHost().data().clone();
    }

    private static void addAll(List<float[]> out, Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null) {
                out.add(host(t));
            }
        }
    }

    /**
     * Batch / group norm from merged moments: the moments of two shards on one engine, merged on
     * the host, then a normalization from them on a fresh engine (its kernels read only what it
     * uploads, see the class comment of scripts/oclgrind-check). Batch norm's shards are two
     * batches and the first is normalized; group norm's are the two halves of every plane of one
     * X (a spatial split), and X whole is normalized, since a group's moments must cover it whole.
     */
    private static Extra moments(boolean group) {
        return engines -> {
            long[] d = {2, 4, 3, 7};
            float[] x1 = Data.gaussian("mom1 " + group, Data.size(d), 2, 1.5);
            float[] x2 = Data.gaussian("mom2 " + group, Data.size(d), 2.5, 1);
            float[] w = Data.gaussian("mom w", 4, 1, .5);
            float[] b = Data.gaussian("mom b", 4, 0, .5);
            GroupNorm gn = GroupNorm.of(2);
            ChannelMoments m1;
            ChannelMoments m2;
            try (NormEngine e = engines.get()) {
                m1 = group ? e.groupNormMoments(gn, HostTensor.of(x1, d)) : e.batchNormMoments(HostTensor.of(x1, d));
            }
            try (NormEngine e = engines.get()) {
                m2 = group ? e.groupNormMoments(gn, HostTensor.of(x2, d)) : e.batchNormMoments(HostTensor.of(x2, d));
            }
            ChannelMoments merged = ChannelMoments.merge(List.of(m1, m2));
            List<float[]> out = new ArrayList<>();
            out.add(toFloat(m1.mean()));
            out.add(toFloat(m1.m2()));
            try (NormEngine e = engines.get();
                    DeviceTensor dx = group ? e.upload(planesSideBySide(x1, x2, 21), 2, 4, 6, 7) : e.upload(x1, d);
                    DeviceTensor dw = e.upload(w, 4);
                    DeviceTensor db = e.upload(b, 4);
                    DeviceTensor rm = e.upload(new float[] {0, 1, 2, 3}, 4);
                    DeviceTensor rv = e.upload(new float[] {1, 2, 3, 4}, 4);
                    NormResult r = group ? e.groupNorm(gn, dx, dw, db, merged)
                            : e.batchNorm(BatchNorm.defaults().withTraining(true), dx, dw, db, rm, rv, merged)) {
                addAll(out, r.y(), r.mean(), r.invStdDev(), r.runningMean(), r.runningVar());
            }
            return out;
        };
    }

    /** Plane p of the result: plane p of {@code a}, then plane p of {@code b} ({@code plane} values each). */
    private static float[] planesSideBySide(float[] a, float[] b, int plane) {
        float[] out = new float[a.length + b.length];
        for (int p = 0; p < a.length / plane; p++) {
            System.arraycopy(a, p * plane, out, 2 * p * plane, plane);
            System.arraycopy(b, p * plane, out, (2 * p + 1) * plane, plane);
        }
        return out;
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    /**
     * A forward pass, then its backward pass on a fresh engine with every input (dY, X, scale, the
     * saved statistics) uploaded first; with saved statistics, or recomputing them.
     */
    private static Extra backward(String op, long[] d, boolean saved) {
        return engines -> {
            String seed = "bwd " + op + java.util.Arrays.toString(d);
            int n = Data.size(d);
            float[] x = Data.gaussian(seed, n, 1, 2);
            float[] dy = Data.gaussian(seed + " dy", n, 0, 1);
            int c = (int) d[1];
            boolean rowOp = op.equals("layer") || op.equals("rms");
            int affine = rowOp ? (int) d[d.length - 1] : op.equals("group-per-group") ? 2 : c;
            long[] ad = {affine};
            float[] w = Data.gaussian(seed + " w", affine, 1, .5);
            float[] b = Data.gaussian(seed + " b", affine, 0, .5);
            float[] rm = Data.gaussian(seed + " rm", c, 0, .5);
            float[] rv = Data.uniform(seed + " rv", c, .5, 2);
            GroupNorm gn = GroupNorm.of(op.equals("group-lanes") ? 16 : 2).withAffine(op.equals("group-per-group")
                    ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL);
            BatchNorm bn = BatchNorm.defaults().withTraining(op.equals("batch-training"));
            float[][] stats = new float[2][];
            long[][] statDims = new long[2][];
            if (saved) {
                try (NormEngine e = engines.get();
                        NormResult r = switch (op) {
                            case "layer" -> e.layerNorm(LayerNorm.defaults(), HostTensor.of(x, d), HostTensor.of(w, ad),
                                    HostTensor.of(b, ad));
                            case "rms" -> e.rmsNorm(RmsNorm.defaults(), HostTensor.of(x, d), HostTensor.of(w, ad));
                            case "instance" -> e.instanceNorm(InstanceNorm.defaults(), HostTensor.of(x, d),
                                    HostTensor.of(w, ad), HostTensor.of(b, ad));
                            case "batch-training", "batch-inference" -> e.batchNorm(bn, HostTensor.of(x, d),
                                    HostTensor.of(w, ad), HostTensor.of(b, ad), HostTensor.of(rm, c),
                                    HostTensor.of(rv, c));
                            default -> e.groupNorm(gn, HostTensor.of(x, d), HostTensor.of(w, ad), HostTensor.of(b, ad));
                        }) {
                    if (r.mean() != null) {
                        stats[0] = host(r.mean());
                        statDims[0] = r.mean().shape().dims();
                    }
                    stats[1] = host(r.invStdDev());
                    statDims[1] = r.invStdDev().shape().dims();
                }
            }
            List<float[]> out = new ArrayList<>();
            try (NormEngine e = engines.get();
                    DeviceTensor ddy = e.upload(dy, d);
                    DeviceTensor dx = e.upload(x, d);
                    DeviceTensor dw = e.upload(w, ad);
                    DeviceTensor drm = e.upload(rm, c);
                    DeviceTensor drv = e.upload(rv, c);
                    DeviceTensor sm = stats[0] == null ? null : e.upload(stats[0], statDims[0]);
                    DeviceTensor si = stats[1] == null ? null : e.upload(stats[1], statDims[1])) {
                SavedStats s = saved ? new SavedStats(sm, si) : null;
                try (GradResult g = switch (op) {
                    case "layer" -> e.layerNormBackward(LayerNorm.defaults(), ddy, dx, dw, s);
                    case "rms" -> e.rmsNormBackward(RmsNorm.defaults(), ddy, dx, dw, s);
                    case "instance" -> e.instanceNormBackward(InstanceNorm.defaults(), ddy, dx, dw, s);
                    case "batch-training", "batch-inference" -> e.batchNormBackward(bn, ddy, dx, dw, drm, drv, s);
                    default -> e.groupNormBackward(gn, ddy, dx, dw, s);
                }) {
                    addAll(out, g.dx(), g.dScale(), g.dBias());
                }
            }
            return out;
        };
    }

    // ------------------------------------------------------------------ the cases

    private static float[] g(String seed, long n, double offset, double sd) {
        return Data.gaussian(seed, Math.toIntExact(n), offset, sd);
    }

    private static float[] pos(String seed, long n) {
        return Data.uniform(seed, Math.toIntExact(n), 0.5, 2);
    }

    private static long size(long... dims) {
        return Data.size(dims);
    }

    static List<Case> cases() {
        List<Case> l = new ArrayList<>();
        double eps = 1e-5;
        // ---- layer norm: short rows, odd sizes, hidden 1, one row longer than a work-group and than
        // several 1024-value runs, every axis, with and without affine, NaN/Inf confined to a row.
        long[] d = {3, 7};
        l.add(new Case("layer 3x7 scale+bias", Op.layer(d, -1, eps, g("l1", 21, 1, 2), g("l1w", 7, 1, .5),
                g("l1b", 7, 0, .5)), false));
        d = new long[] {5, 1};
        l.add(new Case("layer hidden 1", Op.layer(d, -1, eps, g("l2", 5, 0, 1), g("l2w", 1, 1, .5), g("l2b", 1, 0,
                .5)), false));
        d = new long[] {1, 5000};
        l.add(new Case("layer 1x5000 (> work-group, > 4 runs) scale+bias", Op.layer(d, -1, eps, g("l3", 5000, 100, 3),
                g("l3w", 5000, 1, .5), g("l3b", 5000, 0, .5)), false));
        d = new long[] {3, 5, 7};
        l.add(new Case("layer 3x5x7 axis 1 scale only", Op.layer(d, 1, eps, g("l4", 105, 0, 1), g("l4w", 35, 1, .5),
                null), false));
        l.add(new Case("layer 3x5x7 axis 0 no affine", Op.layer(d, 0, eps, g("l5", 105, 0, 1), null, null), false));
        d = new long[] {2, 13};
        l.add(new Case("layer 2x13 bias only, device tensors", Op.layer(d, -1, eps, g("l6", 26, -4, 1), null,
                g("l6b", 13, 0, .5)), true));
        float[] special = g("l7", 4 * 1100, 0, 1);
        special[1100 + 17] = Float.NaN;
        special[2 * 1100 + 1050] = Float.POSITIVE_INFINITY;
        special[3 * 1100] = Float.NEGATIVE_INFINITY; // the shift element itself
        d = new long[] {4, 1100};
        l.add(new Case("layer NaN/Inf rows 4x1100", Op.layer(d, -1, eps, special, g("l7w", 1100, 1, .5), null),
                false));
        // rows of a full run and a tail: the pipelined family's fused step (pipe_run) with scale and bias
        d = new long[] {3, 1100};
        l.add(new Case("layer 3x1100 scale+bias", Op.layer(d, -1, eps, g("l8", 3300, 2, 1), g("l8w", 1100, 1, .5),
                g("l8b", 1100, 0, .5)), false));
        // ---- RMS norm
        l.add(new Case("rms 3x1100 scale", Op.rms(d, -1, eps, g("r5", 3300, 0, 1), g("r5w", 1100, 1, .5)), false));
        d = new long[] {4, 13};
        l.add(new Case("rms 4x13 scale", Op.rms(d, -1, eps, g("r1", 52, 0, 1), g("r1w", 13, 1, .5)), false));
        d = new long[] {1, 3000};
        l.add(new Case("rms 1x3000 (> work-group) scale, device tensors", Op.rms(d, -1, eps, g("r2", 3000, 1, 1),
                g("r2w", 3000, 1, .5)), true));
        d = new long[] {6, 1};
        l.add(new Case("rms hidden 1 no scale", Op.rms(d, -1, eps, g("r3", 6, 0, 1), null), false));
        d = new long[] {2, 3, 5};
        l.add(new Case("rms 2x3x5 axis -2", Op.rms(d, -2, eps, g("r4", 30, 0, 1), g("r4w", 15, 1, .5)), false));
        // ---- group norm: per-channel and per-group affine, G = 1, G = C, rank 2, long groups
        d = new long[] {2, 6, 3, 3};
        l.add(new Case("group 2x6x3x3 G3 per-channel", Op.group(d, 3, false, eps, g("g1", 108, 0, 1), g("g1w", 6, 1,
                .5), g("g1b", 6, 0, .5)), false));
        l.add(new Case("group 2x6x3x3 G3 per-group", Op.group(d, 3, true, eps, g("g2", 108, 0, 1), g("g2w", 3, 1, .5),
                g("g2b", 3, 0, .5)), false));
        l.add(new Case("group 2x6x3x3 G1 no affine", Op.group(d, 1, false, eps, g("g3", 108, 0, 1), null, null),
                false));
        l.add(new Case("group 2x6x3x3 G=C, device tensors", Op.group(d, 6, false, eps, g("g4", 108, 0, 1), g("g4w", 6,
                1, .5), g("g4b", 6, 0, .5)), true));
        d = new long[] {3, 4};
        l.add(new Case("group rank 2 3x4 G2", Op.group(d, 2, false, eps, g("g5", 12, 0, 1), g("g5w", 4, 1, .5),
                g("g5b", 4, 0, .5)), false));
        d = new long[] {1, 2, 700};
        l.add(new Case("group 1x2x700 G1 (group > work-group)", Op.group(d, 1, false, eps, g("g6", 1400, 5, 1),
                g("g6w", 2, 1, .5), g("g6b", 2, 0, .5)), false));
        // ---- instance norm
        d = new long[] {2, 3, 4, 5};
        l.add(new Case("instance 2x3x4x5 affine", Op.instance(d, eps, g("i1", 120, 0, 1), g("i1w", 3, 1, .5),
                g("i1b", 3, 0, .5)), false));
        d = new long[] {3, 2, 1};
        l.add(new Case("instance spatial 1", Op.instance(d, eps, g("i2", 6, 0, 1), null, null), false));
        // ---- batch norm, inference
        d = new long[] {2, 3, 4, 5};
        l.add(new Case("batch inference 2x3x4x5 affine", Op.batchInference(d, eps, g("b1", 120, 1, 2), g("b1w", 3, 1,
                .5), g("b1b", 3, 0, .5), g("b1m", 3, 1, .5), pos("b1v", 3)), false));
        d = new long[] {4, 3};
        l.add(new Case("batch inference rank 2 no affine, device tensors", Op.batchInference(d, eps, g("b2", 12, 0, 1),
                null, null, g("b2m", 3, 0, .5), pos("b2v", 3)), true));
        // ---- batch norm, training: both conventions, with and without running statistics, and a
        // channel of 50000 values (> 2 * 16384: several parts, merged by channel_finalize).
        d = new long[] {3, 2, 5, 5};
        l.add(new Case("batch training onnx 3x2x5x5 running", Op.batchTraining(d, eps, false, g("t1", size(d), 0, 1),
                g("t1w", 2, 1, .5), g("t1b", 2, 0, .5), g("t1m", 2, 0, .5), pos("t1v", 2)), false));
        l.add(new Case("batch training pytorch 3x2x5x5 running, device", Op.batchTraining(d, eps, true, g("t2",
                size(d), 0, 1), null, null, g("t2m", 2, 0, .5), pos("t2v", 2)), true));
        d = new long[] {5, 3};
        l.add(new Case("batch training rank 2 no running stats", Op.batchTraining(d, eps, false, g("t3", 15, 0, 1),
                g("t3w", 3, 1, .5), null, null, null), false));
        // The (N, C) column statistics (channel_partial_rows): vector lanes and a tail of channels,
        // row blocks whose runs end in single rows, and two tiles of 1024 channels.
        d = new long[] {70, 37};
        l.add(new Case("batch training rank 2 70x37 (column statistics)", Op.batchTraining(d, eps, false, g("t6",
                size(d), 2, 1), g("t6w", 37, 1, .5), g("t6b", 37, 0, .5), null, null), false));
        d = new long[] {6, 1030};
        l.add(new Case("batch training rank 2 6x1030 (two tiles)", Op.batchTraining(d, eps, false, g("t7", size(d),
                -1, 1), null, null, null, null), false));
        d = new long[] {2, 1, 25000};
        l.add(new Case("batch training 2x1x25000 (multi-part channel)", Op.batchTraining(d, eps, true, g("t4", size(d),
                7, 2), g("t4w", 1, 1, .5), g("t4b", 1, 0, .5), g("t4m", 1, 0, .5), pos("t4v", 1)), false));
        // ---- mean-variance normalization: per-channel path ([0, 2, 3]) and row path (trailing axes)
        d = new long[] {2, 3, 4, 5};
        l.add(new Case("mvn 2x3x4x5 axes [0,2,3]", Op.mvn(d, new int[] {0, 2, 3}, 1e-9, g("m1", 120, 2, 3)), false));
        l.add(new Case("mvn 2x3x4x5 axes [2,3]", Op.mvn(d, new int[] {2, 3}, 1e-9, g("m2", 120, 2, 3)), false));
        l.add(new Case("mvn 2x3x4x5 all axes, device", Op.mvn(d, new int[] {0, 1, 2, 3}, 1e-9, g("m3", 120, 2, 3)),
                true));
        d = new long[] {9, 4};
        l.add(new Case("mvn 9x4 axes [0]", Op.mvn(d, new int[] {0}, 1e-9, g("m4", 36, 0, 1)), false));
        // ---- empty tensors: no kernel may run on (or read) an empty buffer
        l.add(new Case("empty layer 0x5", Op.layer(new long[] {0, 5}, -1, eps, new float[0], g("e1w", 5, 1, .5),
                null), false));
        l.add(new Case("empty layer 3x0, device", Op.layer(new long[] {3, 0}, -1, eps, new float[0], null, null),
                true));
        l.add(new Case("empty group 0x4x2 G2", Op.group(new long[] {0, 4, 2}, 2, false, eps, new float[0], null,
                null), false));
        l.add(new Case("empty instance 2x3x0", Op.instance(new long[] {2, 3, 0}, eps, new float[0], null, null),
                false));
        l.add(new Case("empty batch training 0x3x2 running", Op.batchTraining(new long[] {0, 3, 2}, eps, false,
                new float[0], null, null, g("e5m", 3, 0, 1), pos("e5v", 3)), false));
        l.add(new Case("empty batch inference 0x3", Op.batchInference(new long[] {0, 3}, eps, new float[0], null,
                null, g("e6m", 3, 0, 1), pos("e6v", 3)), true));
        l.add(new Case("empty mvn 0x3x2x2", Op.mvn(new long[] {0, 3, 2, 2}, new int[] {0, 2, 3}, 1e-9,
                new float[0]), false));
        // ---- larger, still quick in the simulator: several channels of several parts each (the
        // group family's parts are work-groups of 256), many rows of a few runs
        d = new long[] {2, 3, 17000};
        l.add(new Case("batch training 2x3x17000 (3 channels x 2 parts) onnx", Op.batchTraining(d, eps, false,
                g("t5", size(d), -3, 2), g("t5w", 3, 1, .5), g("t5b", 3, 0, .5), g("t5m", 3, 0, .5), pos("t5v", 3)),
                false));
        l.add(new Case("mvn 2x3x17000 axes [0,2] (multi-part channels)", Op.mvn(d, new int[] {0, 2}, 1e-9,
                g("m5", size(d), 1, 1)), false));
        d = new long[] {33, 1031};
        l.add(new Case("layer 33x1031 scale+bias", Op.layer(d, -1, eps, g("l8", size(d), 1e4, 1), g("l8w", 1031, 1,
                .5), g("l8b", 1031, 0, .5)), false));
        d = new long[] {4, 8, 9, 9};
        l.add(new Case("group 4x8x9x9 G4 per-channel", Op.group(d, 4, false, eps, g("g7", size(d), 0, 1), g("g7w", 8, 1,
                .5), g("g7b", 8, 0, .5)), false));
        // group norm of (N, C) data: rows of 4, 8 and 16 values, the lengths whose row blocks run with the row
        // length as a constant, and (for the device's vector width) VW rows at a time in the lanes; 11 rows
        // leave a partial block
        d = new long[] {11, 64};
        for (int groups : new int[] {16, 8, 4}) {
            String n = "gw" + groups;
            l.add(new Case("group (N, C) 11x64 G" + groups + " (rows of " + 64 / groups + ")", Op.group(d, groups, false,
                    eps, g(n, size(d), 1, 2), g(n + "w", 64, 1, .5), g(n + "b", 64, 0, .5)), false));
        }
        l.add(new Case(CHAIN, null, true));
        // ---- mergeable statistics and backward passes (every kernel of backward.cl)
        l.add(new Case("batch norm from merged moments", null, true, moments(false)));
        l.add(new Case("group norm from merged moments", null, true, moments(true)));
        l.add(new Case("layer backward 3x700 (> work-group), saved stats", null, true,
                backward("layer", new long[] {3, 700}, true)));
        l.add(new Case("layer backward 5x13, recomputed stats", null, true, backward("layer", new long[] {5, 13},
                false)));
        l.add(new Case("rms backward 4x300, saved", null, true, backward("rms", new long[] {4, 300}, true)));
        l.add(new Case("group backward 2x4x5x5 per-channel, saved", null, true, backward("group",
                new long[] {2, 4, 5, 5}, true)));
        l.add(new Case("group backward (N, C) 5x32, saved (fused with the parameter gradients)", null, true,
                backward("group", new long[] {5, 32}, true)));
        // rows shorter than the vector width in 16 groups: VW groups of a sample at a time in the lanes,
        // a power of two long (4) and not (3)
        l.add(new Case("group backward (N, C) 5x64 G16, saved (lanes, fused)", null, true,
                backward("group-lanes", new long[] {5, 64}, true)));
        l.add(new Case("group backward (N, C) 5x48 G16, saved (lanes, fused)", null, true,
                backward("group-lanes", new long[] {5, 48}, true)));
        // rows of 8 values, Oclgrind's VW: VW groups of a sample at a time, transposed into the lanes
        l.add(new Case("group backward (N, C) 5x128 G16, saved (rows of VW, fused)", null, true,
                backward("group-lanes", new long[] {5, 128}, true)));
        l.add(new Case("group backward 2x4x5x5 per-group, recomputed", null, true, backward("group-per-group",
                new long[] {2, 4, 5, 5}, false)));
        l.add(new Case("instance backward 3x2x9, saved", null, true, backward("instance", new long[] {3, 2, 9},
                true)));
        l.add(new Case("batch backward training 4x3x5x5, saved", null, true, backward("batch-training",
                new long[] {4, 3, 5, 5}, true)));
        l.add(new Case("batch backward training 2x2x17000, recomputed (multi-part)", null, true,
                backward("batch-training", new long[] {2, 2, 17000}, false)));
        l.add(new Case("batch backward inference 4x3x5x5", null, true, backward("batch-inference",
                new long[] {4, 3, 5, 5}, false)));
        // ---- every element type (the float16/bfloat16 loads and stores, float64 programs) and the
        // channels-last addressing, forward and backward
        for (DType t : new DType[] {DType.FLOAT16, DType.BFLOAT16, DType.FLOAT64}) {
            for (boolean sameParams : new boolean[] {false, true}) {
                l.add(new Case(t + " layer/group/batch, params " + (sameParams ? t : DType.FLOAT32), null, true,
                        typed(t, sameParams, Layout.CHANNELS_FIRST), typeTolerance(t)));
            }
        }
        l.add(new Case("channels-last group/instance/batch FLOAT32", null, true, typed(DType.FLOAT32, false,
                Layout.CHANNELS_LAST)));
        l.add(new Case("channels-last group/instance/batch FLOAT16", null, true, typed(DType.FLOAT16, true,
                Layout.CHANNELS_LAST), typeTolerance(DType.FLOAT16)));
        return l;
    }

    /**
     * Outputs stored in a 16-bit type may round differently on the two backends when the exact
     * value is close to halfway: one unit in the last place (2^-10 relative for float16, 2^-7 for
     * bfloat16); the 32/64-bit types keep {@link #TOLERANCE}.
     */
    private static double typeTolerance(DType t) {
        return t == DType.FLOAT16 ? 0x1p-10 : t == DType.BFLOAT16 ? 0x1p-7 : TOLERANCE;
    }

    /**
     * Layer norm (rows longer than a work-group), group and instance norm and training batch norm,
     * forward and backward, on data of one type and layout; every output widened to float32.
     */
    private static Extra typed(DType t, boolean sameParams, Layout layout) {
        return engines -> {
            List<float[]> out = new ArrayList<>();
            DType pt = sameParams ? t : DType.FLOAT32;
            boolean last = layout == Layout.CHANNELS_LAST;
            long[] ln = {3, 700};
            long[] img = last ? new long[] {2, 3, 5, 4} : new long[] {2, 4, 3, 5};
            HostTensor x = HostTensor.convert(g("tx" + t, size(ln), 1, 2), t, ln);
            HostTensor dy = HostTensor.convert(g("tdy" + t, size(ln), 0, 1), t, ln);
            HostTensor w = HostTensor.convert(g("tw" + t, 700, 1, .5), pt, 700);
            HostTensor b = HostTensor.convert(g("tb" + t, 700, 0, .5), pt, 700);
            HostTensor xi = HostTensor.convert(g("txi" + t, size(img), -1, 2), t, img);
            HostTensor dyi = HostTensor.convert(g("tdyi" + t, size(img), 0, 1), t, img);
            HostTensor wi = HostTensor.convert(g("twi" + t, 4, 1, .5), pt, 4);
            HostTensor bi = HostTensor.convert(g("tbi" + t, 4, 0, .5), pt, 4);
            GroupNorm gn = GroupNorm.of(2).withLayout(layout);
            InstanceNorm in = InstanceNorm.defaults().withLayout(layout);
            BatchNorm bn = BatchNorm.defaults().withTraining(true).withLayout(layout);
            try (NormEngine e = engines.get()) {
                if (!last) {
                    try (NormResult r = e.layerNorm(LayerNorm.defaults(), x, w, b);
                            GradResult gr = e.layerNormBackward(LayerNorm.defaults(), dy, x, w, SavedStats.of(r))) {
                        out.add(r.y().toHost().toFloats());
                        out.add(gr.dx().toHost().toFloats());
                        out.add(gr.dScale().toHost().toFloats());
                    }
                }
                try (NormResult r = e.groupNorm(gn, xi, wi, bi);
                        GradResult gr = e.groupNormBackward(gn, dyi, xi, wi, SavedStats.of(r));
                        NormResult ri = e.instanceNorm(in, xi, wi, bi);
                        GradResult gi = e.instanceNormBackward(in, dyi, xi, wi, null);
                        NormResult rb = e.batchNorm(bn, xi, wi, bi, null, null);
                        GradResult gb = e.batchNormBackward(bn, dyi, xi, wi, null, null, SavedStats.of(rb))) {
                    for (Tensor o : new Tensor[] {r.y(), gr.dx(), gr.dScale(), ri.y(), gi.dx(), rb.y(), gb.dx(),
                        gb.dBias()}) {
                        out.add(o.toHost().toFloats());
                    }
                }
            }
            return out;
        };
    }
}
