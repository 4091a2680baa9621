package org.normcl.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.normcl.BatchNorm;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.GradResult;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.SavedStats;
import org.normcl.Shape;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.jvm.JavaBackend;
import org.normcl.jvm.JavaKernelInfo;
import org.normcl.opencl.ClRuntime;
import org.normcl.opencl.Tuning;
import org.normcl.opencl.Tuner;

/**
 * The measurements behind {@code normcl bench}. Internal: it drives the backend SPI
 * ({@link Backend}) directly, because the numbers it reports are about the primitives:
 *
 * <ul>
 *   <li>{@code median_ms}: one operator call on device-resident inputs and outputs allocated once
 *       (as NormEngine issues it: {@code rowNorm} for layer, RMS, group and instance norm;
 *       {@code channelNorm}, statistics and apply, for training-mode batch norm), after warm-up.
 *       OpenCL ({@code timing} "opencl-events"): from the start of the call's first command to the
 *       end of its last, from profiling events ({@link Backend#startDeviceTimer}), so without
 *       launch overhead; its wall time, which adds that overhead, is {@code wall_median_ms}. Java
 *       ({@code timing} "wall"): wall time, the work running on the backend's threads.
 *   <li>{@code copy_*}: a copy of the same number of bytes (half read, half written) on the same
 *       device, timed alternately with the operator in the same loop: a {@code System.arraycopy}
 *       split over the Java backend's threads, or {@link Backend#copy} (CPU drivers: the
 *       {@code copy_words} kernel on every core; others: {@code clEnqueueCopyBuffer}), timed the
 *       same way as the operator ({@code copy_wall_median_ms}: its wall time).
 *   <li>{@code transfer_ms} (OpenCL): uploading X and downloading Y, which the above excludes: the
 *       medians of a few warm host-array transfers (the download allocates its array, as a
 *       host-array call does).
 *   <li>{@code engine_median_ms}: the same operator through the public {@link NormEngine} API on
 *       {@link DeviceTensor} inputs, which also allocates (Java: zeroes) and releases the outputs
 *       on every call.
 * </ul>
 */
final class BenchRunner {
    /** Operators {@code --ops} accepts. */
    static final List<String> OPS = List.of("layer-norm", "rms-norm", "batch-norm", "group-norm", "instance-norm");

    /** Shapes of the targets for the trailing-axis operators. */
    static final List<long[]> ROW_SHAPES = List.of(new long[] {8192, 1024}, new long[] {65536, 128},
            new long[] {1024, 8192}, new long[] {512, 65536});
    /** NCHW shapes for group and instance norm: ResNet / diffusion U-Net stages. */
    static final List<long[]> CHANNEL_SHAPES = List.of(new long[] {32, 64, 56, 56}, new long[] {8, 128, 64, 64},
            new long[] {4, 32, 256, 256});
    /** Batch norm: the NCHW shapes and a 1-D batch norm's (N, C). */
    static final List<long[]> BATCH_SHAPES = List.of(new long[] {32, 64, 56, 56}, new long[] {8, 128, 64, 64},
            new long[] {8192, 1024});

    private static final float EPS = 1e-5f;

    /** What to run. */
    record Config(List<String> ops, List<long[]> shapes, List<String> backends, String device, List<DType> dtypes,
            boolean backward, int warmup, long warmupMs, int iterations, int threads, int groups,
            boolean engineCalls) {
    }

    private final Config config;
    private final PrintWriter progress;

    BenchRunner(Config config, PrintWriter progress) {
        this.config = config;
        this.progress = progress;
    }

    /** @return the default shapes of an operator (when {@code --shapes} is not given) */
    static List<long[]> defaultShapes(String op) {
        return op.equals("layer-norm") || op.equals("rms-norm") ? ROW_SHAPES
                : op.equals("batch-norm") ? BATCH_SHAPES : CHANNEL_SHAPES;
    }

    /** @return the groups used for C channels: {@code groups} if it divides C, else its largest divisor below */
    static int groupsFor(long channels, int groups) {
        int g = (int) Math.min(groups, channels);
        while (channels % g != 0) {
            g--;
        }
        return g;
    }

    /**
     * The fewest bytes an operator's forward pass must move: every input read once and every output
     * written once. X and Y are of the data type; scale, bias and running statistics float32; saved
     * statistics float32 (float64 for float64 data). Layer norm: X, Y, scale, bias, Mean, InvStdDev;
     * RMS norm: X, Y, scale, InvStdDev; group and instance norm: X, Y, scale and bias [C], Mean and
     * InvStdDev [N, G] or [N, C]; batch norm (training, running statistics given): X, Y, scale, bias,
     * running mean and variance in and out, saved mean and inverse standard deviation ([C] each).
     */
    static long bytes(String op, long[] shape, int groups, DType dtype) {
        return bytes(op, "forward", shape, groups, dtype);
    }

    /**
     * The fewest bytes of a pass. Backward: dY and X read, dX written (data type); scale, and the
     * saved statistics read; dScale and dBias written (float32; RMS norm has no dBias).
     */
    static long bytes(String op, String pass, long[] shape, int groups, DType dtype) {
        long size = 1;
        for (long d : shape) {
            size *= d;
        }
        boolean backward = pass.equals("backward");
        long data = (backward ? 3 : 2) * size * dtype.byteSize(); // X, Y (forward); dY, X, dX (backward)
        long stat = dtype.statistics().byteSize();
        long f32 = DType.FLOAT32.byteSize();
        long cols = shape[shape.length - 1];
        long c = shape.length >= 2 ? shape[1] : 1;
        switch (op) {
            case "layer-norm":
                return data + (backward ? 3 : 2) * cols * f32 + 2 * (size / cols) * stat;
            case "rms-norm":
                return data + (backward ? 2 : 1) * cols * f32 + (size / cols) * stat;
            case "group-norm":
                return data + 2 * c * f32 + (backward ? c * f32 : 0) + 2 * shape[0] * groupsFor(c, groups) * stat;
            case "instance-norm":
                return data + 2 * c * f32 + (backward ? c * f32 : 0) + 2 * shape[0] * c * stat;
            case "batch-norm":
                return data + (backward ? 3 * c * f32 + 2 * c * stat : 6 * c * f32 + 2 * c * stat);
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
    }

    /** @return the records, in the order op, shape, backend, pass */
    List<Map<String, Object>> run() {
        List<Map<String, Object>> records = new ArrayList<>();
        int total = 0;
        for (String op : config.ops()) {
            total += shapesOf(op).size() * config.backends().size() * config.dtypes().size();
        }
        int done = 0;
        for (String backendName : config.backends()) {
            try (Side side = open(backendName)) {
                for (String op : config.ops()) {
                    for (long[] shape : shapesOf(op)) {
                        for (DType dtype : config.dtypes()) {
                            done++;
                            String label = String.format(Locale.ROOT, "[%d/%d] %s %s %s %s", done, total, op,
                                    shapeLabel(shape), backendName, dtype.name().toLowerCase(Locale.ROOT));
                            boolean supported = side.backend.supports(dtype);
                            String why = dtype + " is not supported by " + side.backend.description();
                            Map<String, Object> r = supported ? measure(side, op, shape, dtype)
                                    : unsupported(side, op, "forward", dtype, shape, why);
                            records.add(r);
                            progress.println("bench: " + label + ": " + summary(r));
                            progress.flush();
                            if (config.backward()) {
                                Map<String, Object> b;
                                if (!supported) {
                                    b = unsupported(side, op, "backward", dtype, shape, why);
                                } else if (side.engine == null) {
                                    b = unsupported(side, op, "backward", dtype, shape,
                                            "backward passes are timed through NormEngine: drop --no-engine");
                                } else {
                                    b = measureBackward(side, op, shape, dtype);
                                }
                                records.add(b);
                                progress.println("bench: " + label + " backward: " + summary(b));
                                progress.flush();
                            }
                        }
                    }
                }
            }
        }
        return records;
    }

    private List<long[]> shapesOf(String op) {
        return config.shapes() != null ? config.shapes() : defaultShapes(op);
    }

    static String shapeLabel(long[] shape) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < shape.length; i++) {
            sb.append(i == 0 ? "" : "x").append(shape[i]);
        }
        return sb.toString();
    }

    private static String summary(Map<String, Object> r) {
        if (!"ok".equals(r.get("status"))) {
            return r.get("status") + ": " + r.get("note");
        }
        return String.format(Locale.ROOT, "%.3f ms, %.1f GB/s (copy %.1f GB/s, ratio %.2f)", r.get("median_ms"),
                r.get("gbps"), r.get("copy_gbps"), r.get("ratio"));
    }

    // ------------------------------------------------------------------ backends

    /** One backend under test: the SPI instance, the engine for API-level timing, and its copy. */
    final class Side implements AutoCloseable {
        final String name;
        final Backend backend;
        final NormEngine engine;
        private ExecutorService copyPool;

        Side(String name, Backend backend, NormEngine engine) {
            this.name = name;
            this.backend = backend;
            this.engine = engine;
        }

        boolean isJava() {
            return name.equals("java");
        }

        /** @return a copy of {@code floats} elements (read) into as many (written), and its buffers' release */
        Copy copy(long floats) {
            if (isJava()) {
                int n = Math.toIntExact(floats);
                float[] src = new float[n];
                Arrays.fill(src, 1f);
                float[] dst = new float[n];
                int threads = config.threads();
                if (threads > 1 && copyPool == null) {
                    copyPool = Executors.newFixedThreadPool(threads, r -> {
                        Thread t = new Thread(r, "normcl-bench-copy");
                        t.setDaemon(true);
                        return t;
                    });
                }
                return new Copy(() -> javaCopy(src, dst, threads), () -> { });
            }
            Buffer src = backend.allocate(DType.FLOAT32, floats);
            Buffer dst = backend.allocate(DType.FLOAT32, floats);
            backend.fill(src, 1f);
            return new Copy(() -> backend.copy(src, dst), () -> {
                src.close();
                dst.close();
            });
        }

        /** {@code System.arraycopy} split into one contiguous part per thread. */
        private void javaCopy(float[] src, float[] dst, int threads) {
            int n = src.length;
            if (threads <= 1) {
                System.arraycopy(src, 0, dst, 0, n);
                return;
            }
            List<Future<?>> parts = new ArrayList<>(threads);
            for (int t = 0; t < threads; t++) {
                int from = (int) ((long) n * t / threads);
                int to = (int) ((long) n * (t + 1) / threads);
                parts.add(copyPool.submit(() -> System.arraycopy(src, from, dst, from, to - from)));
            }
            for (Future<?> f : parts) {
                try {
                    f.get();
                } catch (Exception e) {
                    throw new IllegalStateException("copy failed", e);
                }
            }
        }

        @Override
        public void close() {
            if (copyPool != null) {
                copyPool.shutdownNow();
            }
            if (engine != null) {
                engine.close();
            }
            backend.close();
        }
    }

    private record Copy(Runnable run, Runnable release) {
    }

    Side open(String name) {
        if (name.equals("java")) {
            return new Side(name, new JavaBackend(config.threads()),
                    config.engineCalls() ? NormEngine.create(EngineOptions.java().withThreads(config.threads()))
                            : null);
        }
        // The tuning file is read once, here, and the backend opened with what it gave: reading it
        // again for the hint repeated a malformed file's warning.
        DeviceInfo device = ClRuntime.device(config.device());
        Optional<Tuning> stored = Tuning.stored(device);
        if (stored.isEmpty()) {
            // The defaults were set on one machine; on another the tuner's file can decide the result
            // (PoCL on a Zen 5 host: 0.7 of the copy in 10 of 12 acceptance records tuned, 7 untuned).
            progress.println("bench: " + device.label() + " runs the default kernel parameters: 'normcl tune'"
                    + " measures this device's (docs/tuning.md)");
            progress.flush();
        }
        Backend cl = ClRuntime.open(config.device(), stored.orElse(Tuning.defaults()));
        try {
            NormEngine engine = config.engineCalls() ? NormEngine.create(EngineOptions.opencl(config.device())) : null;
            return new Side(name, cl, engine);
        } catch (RuntimeException e) {
            cl.close();
            throw e;
        }
    }

    // ------------------------------------------------------------------ one record

    private Map<String, Object> base(Side side, String op, String pass, DType dtype, long[] shape) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("op", op);
        r.put("pass", pass);
        r.put("dtype", dtype.name().toLowerCase(Locale.ROOT));
        List<Long> dims = new ArrayList<>();
        for (long d : shape) {
            dims.add(d);
        }
        r.put("shape", dims);
        r.put("backend", side.name);
        r.put("device", side.isJava() ? side.backend.description() + ", " + JavaKernelInfo.kernels() + " kernels"
                : side.backend.description());
        Map<String, String> params = side.backend.kernelParameters();
        if (!params.isEmpty()) {
            // Which tuning the numbers were measured with: normcl tune's file changes them (PoCL on
            // a Zen 5 host: 8-wide vectors took the acceptance records from 7 of 12 to 10 of 12 at 0.7).
            r.put("kernel_parameters", TuneCommand.numbers(params));
        }
        return r;
    }

    private Map<String, Object> unsupported(Side side, String op, String pass, DType dtype, long[] shape,
            String why) {
        Map<String, Object> r = base(side, op, pass, dtype, shape);
        r.put("status", "unsupported");
        r.put("note", why);
        for (String k : new String[] {"median_ms", "gbps", "copy_gbps", "ratio"}) {
            r.put(k, null);
        }
        return r;
    }

    private Map<String, Object> measure(Side side, String op, long[] shape, DType dtype) {
        Map<String, Object> r = base(side, op, "forward", dtype, shape);
        long bytes = bytes(op, shape, config.groups(), dtype);
        Prepared prep = null;
        Copy copy = null;
        try {
            prep = prepare(side, op, shape, dtype);
            copy = side.copy(bytes / 8);
            timeAgainstCopy(side, r, bytes, prep.call, copy, true);
            r.put("transfer_ms", side.isJava() ? null : round(prep.transferMs));
            if (prep.extra != null) {
                r.putAll(prep.extra);
            }
            copy.release().run();
            copy = null;
            if (side.engine != null) {
                double engineMedian = engineMedian(side, op, shape, prep.host, dtype);
                r.put("engine_median_ms", round(engineMedian));
                r.put("engine_gbps", round(bytes / (engineMedian * 1e6)));
            }
        } catch (UserInputException e) {
            throw e;
        } catch (RuntimeException | OutOfMemoryError e) {
            markFailed(r, e);
        } finally {
            if (copy != null) {
                copy.release().run();
            }
            if (prep != null) {
                prep.buffers.forEach(Buffer::close);
            }
        }
        return r;
    }

    /**
     * Runs {@code call} at least {@code warmup} times and for at least {@code warmupMs}: the JIT
     * compiles the Java kernels (the Vector API is slow until C2 has compiled it) and OpenCL
     * drivers finish lazy setup.
     */
    private void warmUp(Runnable call) {
        long deadline = System.nanoTime() + config.warmupMs() * 1_000_000L;
        for (int i = 0; i < config.warmup() || (config.warmup() > 0 && System.nanoTime() < deadline); i++) {
            call.run();
        }
    }

    /** Warm uploads and downloads timed for {@code transfer_ms}; the first of each touches new pages. */
    private static final int TRANSFER_REPEATS = 5;

    /**
     * @return the median upload of X plus the median download of Y (as a host-array call makes
     *     them: the download allocates its array), after one untimed round that touches the pages
     */
    private static double transferMs(Backend be, Buffer xb, HostTensor xHost, Buffer yb, long size) {
        be.read(yb, Shape.of(size));
        double[] up = new double[TRANSFER_REPEATS];
        double[] down = new double[TRANSFER_REPEATS];
        for (int i = 0; i < TRANSFER_REPEATS; i++) {
            long t0 = System.nanoTime();
            be.write(xb, xHost);
            long t1 = System.nanoTime();
            be.read(yb, Shape.of(size));
            long t2 = System.nanoTime();
            up[i] = (t1 - t0) / 1e6;
            down[i] = (t2 - t1) / 1e6;
        }
        return median(up) + median(down);
    }

    static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /** Rounds to 4 significant digits for the report (the arithmetic above uses the exact values). */
    private static double round(double v) {
        if (!Double.isFinite(v) || v == 0) {
            return v;
        }
        return new java.math.BigDecimal(v).round(new java.math.MathContext(4)).doubleValue();
    }

    // ------------------------------------------------------------------ operators on the SPI

    /** Host inputs of an operator: X (values; converted to the data type) and the float32 parameters. */
    record Host(float[] x, float[] scale, float[] bias, float[] runMean, float[] runVar, int groups) {
    }

    /** An operator ready to run on preallocated buffers; {@code buffers.get(0)} holds X. */
    static final class Prepared {
        Runnable call;
        final List<Buffer> buffers = new ArrayList<>();
        double transferMs;
        Map<String, Object> extra;
        Host host;
    }

    private static boolean trailing(String op) {
        return op.equals("layer-norm") || op.equals("rms-norm");
    }

    private Host host(String op, long[] shape) {
        long size = 1;
        for (long d : shape) {
            size *= d;
        }
        float[] x = random(Math.toIntExact(size), 0x5eed);
        long c = shape.length >= 2 ? shape[1] : 1;
        long affine = trailing(op) ? shape[shape.length - 1] : c;
        float[] scale = random((int) affine, 7);
        for (int i = 0; i < scale.length; i++) {
            scale[i] = 1f + 0.1f * scale[i];
        }
        float[] bias = op.equals("rms-norm") ? null : random((int) affine, 11);
        float[] runMean = new float[(int) c];
        float[] runVar = new float[(int) c];
        Arrays.fill(runVar, 1f);
        return new Host(x, scale, bias, runMean, runVar, groupsFor(c, config.groups()));
    }

    Prepared prepare(Side side, String op, long[] shape, DType dtype) {
        Prepared p = new Prepared();
        try {
            setUp(p, side, op, shape, dtype);
            return p;
        } catch (RuntimeException | OutOfMemoryError e) {
            // What was allocated before the failure, at once: later shapes may need the device memory.
            p.buffers.forEach(Buffer::close);
            throw e;
        }
    }

    private void setUp(Prepared p, Side side, String op, long[] shape, DType dtype) {
        Backend be = side.backend;
        long size = 1;
        for (long d : shape) {
            size *= d;
        }
        if (!trailing(op) && shape.length < 2) {
            throw new UserInputException(op + " needs a shape of rank >= 2 (N, C, ...): got " + shapeLabel(shape));
        }
        Host h = host(op, shape);
        p.host = h;
        long cols = shape[shape.length - 1];
        long rows = size / cols;
        long c = shape.length >= 2 ? shape[1] : 1;
        DType st = dtype.statistics();
        HostTensor xHost = HostTensor.convert(h.x(), dtype, size);
        Buffer xb = alloc(be, p, dtype, size);
        Buffer yb = alloc(be, p, dtype, size);
        // X on every backend (the Java backend's pooled arrays hold what an earlier shape left there),
        // then, OpenCL, the transfers timed.
        be.write(xb, xHost);
        p.transferMs = side.isJava() ? 0 : transferMs(be, xb, xHost, yb, size);
        Buffer sb = upload(be, p, h.scale());
        Buffer bb = h.bias() == null ? null : upload(be, p, h.bias());
        switch (op) {
            case "layer-norm":
            case "rms-norm": {
                boolean rms = op.equals("rms-norm");
                RowNormPlan plan = RowNormPlan.contiguous(rows, cols, rms ? StatMode.RMS : StatMode.MEAN_VAR, EPS, 1,
                        cols, 1, true, !rms);
                Buffer mean = rms ? null : alloc(be, p, st, rows);
                Buffer inv = alloc(be, p, st, rows);
                p.call = () -> be.rowNorm(plan, xb, sb, bb, yb, mean, inv);
                break;
            }
            case "group-norm":
            case "instance-norm": {
                long n = shape[0];
                long spatial = size / (n * c);
                boolean group = op.equals("group-norm");
                long g = group ? h.groups() : c;
                RowNormPlan plan = RowNormPlan.contiguous(n * g, (c / g) * spatial, StatMode.MEAN_VAR, EPS, g, c / g,
                        spatial, true, true);
                Buffer mean = alloc(be, p, st, n * g);
                Buffer inv = alloc(be, p, st, n * g);
                p.call = () -> be.rowNorm(plan, xb, sb, bb, yb, mean, inv);
                if (group) {
                    p.extra = Map.of("groups", h.groups());
                }
                break;
            }
            case "batch-norm": {
                long n = shape[0];
                long spatial = size / (n * c);
                ChannelPlan plan = new ChannelPlan(n, c, spatial, StatMode.MEAN_VAR, EPS);
                RunningUpdate update = new RunningUpdate(0.1f, false); // ONNX momentum 0.9
                Buffer rm = upload(be, p, h.runMean());
                Buffer rv = upload(be, p, h.runVar());
                Buffer rmOut = alloc(be, p, DType.FLOAT32, c);
                Buffer rvOut = alloc(be, p, DType.FLOAT32, c);
                Buffer mean = alloc(be, p, st, c);
                Buffer inv = alloc(be, p, st, c);
                Buffer meanLo = alloc(be, p, st, c);
                p.call = () -> be.channelNorm(plan, xb, mean, meanLo, inv, update, rm, rv, rmOut, rvOut, sb, bb, yb);
                p.extra = Map.of("mode", "training");
                break;
            }
            default:
                throw new UserInputException("unknown op " + op);
        }
    }

    private static Buffer alloc(Backend be, Prepared p, DType dtype, long elements) {
        Buffer b = be.allocate(dtype, elements);
        p.buffers.add(b);
        return b;
    }

    private static Buffer upload(Backend be, Prepared p, float[] data) {
        Buffer b = alloc(be, p, DType.FLOAT32, data.length);
        be.write(b, HostTensor.of(data, data.length));
        return b;
    }

    /** Seeded values in [-2, 2) (an xorshift: the inputs' distribution does not change the time). */
    static float[] random(int n, long seed) {
        float[] a = new float[n];
        long s = seed * 0x9E3779B97F4A7C15L + 1;
        for (int i = 0; i < n; i++) {
            s ^= s << 13;
            s ^= s >>> 7;
            s ^= s << 17;
            a[i] = ((s >>> 40) * 0x1.0p-24f) * 4f - 2f;
        }
        return a;
    }

    // ------------------------------------------------------------------ the public API

    /** Device tensors of one operator's inputs on an engine. */
    private static final class Inputs implements AutoCloseable {
        final DeviceTensor x;
        final DeviceTensor scale;
        final DeviceTensor bias;
        final DeviceTensor runMean;
        final DeviceTensor runVar;

        Inputs(NormEngine e, String op, long[] shape, Host h, DType dtype) {
            long c = shape.length >= 2 ? shape[1] : 1;
            try {
                x = e.upload(HostTensor.convert(h.x(), dtype, shape));
                scale = e.upload(h.scale(), affineDims(op, shape));
                bias = h.bias() == null ? null : e.upload(h.bias(), affineDims(op, shape));
                runMean = e.upload(h.runMean(), c);
                runVar = e.upload(h.runVar(), c);
            } catch (RuntimeException | OutOfMemoryError failed) {
                close(); // what was uploaded so far
                throw failed;
            }
        }

        @Override
        public void close() {
            for (DeviceTensor t : new DeviceTensor[] {x, scale, bias, runMean, runVar}) {
                if (t != null) {
                    t.close();
                }
            }
        }
    }

    private static NormResult forward(NormEngine e, String op, Inputs in, Host h) {
        switch (op) {
            case "layer-norm":
                return e.layerNorm(LayerNorm.defaults(), in.x, in.scale, in.bias);
            case "rms-norm":
                return e.rmsNorm(RmsNorm.defaults(), in.x, in.scale);
            case "group-norm":
                return e.groupNorm(GroupNorm.of(h.groups()), in.x, in.scale, in.bias);
            case "instance-norm":
                return e.instanceNorm(InstanceNorm.defaults(), in.x, in.scale, in.bias);
            case "batch-norm":
                return e.batchNorm(BatchNorm.defaults().withTraining(true), in.x, in.scale, in.bias, in.runMean,
                        in.runVar);
            default:
                throw new UserInputException("unknown op " + op);
        }
    }

    private double engineMedian(Side side, String op, long[] shape, Host h, DType dtype) {
        NormEngine e = side.engine;
        try (Inputs in = new Inputs(e, op, shape, h, dtype)) {
            Runnable call = () -> forward(e, op, in, h).close();
            return timeMedian(call);
        }
    }

    /**
     * What {@code normcl tune} times: one float32 forward call of {@code op} on device-resident
     * buffers of {@code backend}, allocated once, as {@code median_ms} times it (without the copy
     * and the engine call); the tuner interleaves such calls of several backends.
     */
    Tuner.Prepared prepareForward(Backend backend, String op, long[] shape) {
        Prepared prep = prepare(new Side("opencl", backend, null), op, shape, DType.FLOAT32);
        return new Tuner.Prepared(prep.call, () -> prep.buffers.forEach(Buffer::close));
    }

    private double timeMedian(Runnable call) {
        warmUp(call);
        double[] ms = new double[config.iterations()];
        for (int i = 0; i < ms.length; i++) {
            long t0 = System.nanoTime();
            call.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return median(ms);
    }

    /**
     * A backward pass, timed through {@link NormEngine} on device tensors with the forward's saved
     * statistics (the API allocates dX, dScale and dBias on every call; there is no SPI-level
     * equivalent to time), against a copy of the same bytes.
     */
    private Map<String, Object> measureBackward(Side side, String op, long[] shape, DType dtype) {
        Map<String, Object> r = base(side, op, "backward", dtype, shape);
        long bytes = bytes(op, "backward", shape, config.groups(), dtype);
        NormEngine e = side.engine;
        Host h = host(op, shape);
        Copy copy = null;
        try (Inputs in = new Inputs(e, op, shape, h, dtype);
                DeviceTensor dy = e.upload(HostTensor.convert(random(h.x().length, 0xd7), dtype, shape));
                NormResult fwd = forward(e, op, in, h)) {
            SavedStats saved = SavedStats.of(fwd);
            Runnable call;
            switch (op) {
                case "layer-norm":
                    call = () -> close(e.layerNormBackward(LayerNorm.defaults(), dy, in.x, in.scale, saved));
                    break;
                case "rms-norm":
                    call = () -> close(e.rmsNormBackward(RmsNorm.defaults(), dy, in.x, in.scale, saved));
                    break;
                case "group-norm":
                    call = () -> close(e.groupNormBackward(GroupNorm.of(h.groups()), dy, in.x, in.scale, saved));
                    break;
                case "instance-norm":
                    call = () -> close(e.instanceNormBackward(InstanceNorm.defaults(), dy, in.x, in.scale, saved));
                    break;
                case "batch-norm":
                    call = () -> close(e.batchNormBackward(BatchNorm.defaults().withTraining(true), dy, in.x, in.scale,
                            in.runMean, in.runVar, saved));
                    break;
                default:
                    throw new UserInputException("unknown op " + op);
            }
            copy = side.copy(bytes / 8);
            // Through NormEngine, whose backend is not side.backend: wall time for both.
            timeAgainstCopy(side, r, bytes, call, copy, false);
            r.put("timed", "engine");
            r.put("transfer_ms", null);
        } catch (UserInputException ex) {
            throw ex;
        } catch (RuntimeException | OutOfMemoryError ex) {
            markFailed(r, ex);
        } finally {
            if (copy != null) {
                copy.release().run();
            }
        }
        return r;
    }

    /**
     * Warms up, then times {@code call} and a copy of the same bytes alternately, and puts the
     * record's timing fields: status ok, how it timed, median and minimum ms, bytes, GB/s, the
     * copy's median and GB/s, their ratio, warm-up, iterations and (Java) threads.
     *
     * @param onSideBackend whether {@code call} runs on {@code side.backend}, whose device timer (OpenCL)
     *     then times it and the copy; otherwise (NormEngine calls) both are wall time
     */
    private void timeAgainstCopy(Side side, Map<String, Object> r, long bytes, Runnable call, Copy copy,
            boolean onSideBackend) {
        Runnable copyCall = copy.run();
        warmUp(() -> {
            call.run();
            copyCall.run();
        });
        int it = config.iterations();
        double[] opMs = new double[it];
        double[] copyMs = new double[it];
        double[] opWallMs = new double[it];
        double[] copyWallMs = new double[it];
        Backend timer = side.backend;
        boolean events = false;
        for (int i = 0; i < it; i++) {
            events = onSideBackend && timer.startDeviceTimer();
            long t0 = System.nanoTime();
            call.run();
            long t1 = System.nanoTime();
            long opDevice = events ? timer.stopDeviceTimer() : -1;
            if (events) {
                timer.startDeviceTimer();
            }
            long t2 = System.nanoTime();
            copyCall.run();
            long t3 = System.nanoTime();
            long copyDevice = events ? timer.stopDeviceTimer() : -1;
            opWallMs[i] = (t1 - t0) / 1e6;
            copyWallMs[i] = (t3 - t2) / 1e6;
            opMs[i] = events ? opDevice / 1e6 : opWallMs[i];
            copyMs[i] = events ? copyDevice / 1e6 : copyWallMs[i];
        }
        double median = median(opMs);
        double copyMedian = median(copyMs);
        // OpenCL: the span of the call's commands on the device (events), without launch overhead.
        r.put("timing", events ? "opencl-events" : "wall");
        if (events) {
            r.put("wall_median_ms", round(median(opWallMs)));
            r.put("copy_wall_median_ms", round(median(copyWallMs)));
        }
        double gbps = bytes / (median * 1e6);
        double copyGbps = (bytes / 8) * 8.0 / (copyMedian * 1e6); // the copy moves whole words
        r.put("status", "ok");
        r.put("median_ms", round(median));
        r.put("min_ms", round(Arrays.stream(opMs).min().orElse(Double.NaN)));
        r.put("bytes", bytes);
        r.put("gbps", round(gbps));
        r.put("copy_median_ms", round(copyMedian));
        r.put("copy_gbps", round(copyGbps));
        r.put("ratio", round(gbps / copyGbps));
        r.put("warmup", config.warmup());
        r.put("iterations", it);
        if (side.isJava()) {
            r.put("threads", config.threads());
        }
    }

    /** A measurement that failed: status "error", the reason, and the timing fields present as null. */
    private static void markFailed(Map<String, Object> r, Throwable e) {
        r.put("status", "error");
        r.put("note", ExitCodes.message(e));
        for (String k : new String[] {"median_ms", "gbps", "copy_gbps", "ratio"}) {
            r.putIfAbsent(k, null);
        }
    }

    private static void close(GradResult g) {
        g.close();
    }

    private static long[] affineDims(String op, long[] shape) {
        return op.equals("layer-norm") || op.equals("rms-norm") ? new long[] {shape[shape.length - 1]}
                : new long[] {shape[1]};
    }
}
