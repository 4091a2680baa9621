package org.normcl;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Function;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.jvm.JavaBackend;
import org.normcl.opencl.ClException;
import org.normcl.opencl.ClRuntime;
import org.normcl.opencl.DeviceLostException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The entry point: an engine owns one backend (an OpenCL context, queue, compiled kernels and
 * buffers, or the Java thread pool) and runs normalizations on it.
 *
 * <pre>{@code
 * try (NormEngine engine = NormEngine.create()) {                 // AUTO: best OpenCL device, else Java
 *     HostTensor x = HostTensor.of(data, 8, 1024);
 *     try (NormResult r = engine.layerNorm(LayerNorm.defaults(), x, gamma, beta)) {
 *         float[] y = r.y().toHost().data();
 *     }
 * }
 * }</pre>
 *
 * <p>Every operator takes its inputs as {@link Tensor}s and returns outputs where {@code X} lives:
 * a {@link HostTensor} in gives host outputs; a {@link DeviceTensor} in gives device outputs that
 * stay on the device for the next call. Arguments are checked before any device work, and bad ones
 * get an {@link IllegalArgumentException} naming the parameter and the expected value.
 *
 * <p>An engine is thread-safe. Close it when done: closing releases the device context and every
 * tensor the engine still owns.
 */
public final class NormEngine implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NormEngine.class);

    private final Backend backend;
    private final String selectionReason;
    /** AUTO engines run calls the device cannot (float64 without cl_khr_fp64) on a Java backend. */
    private final boolean mayFallBack;
    private final int javaThreads;
    private volatile Backend fallback;
    /** Set once an AUTO engine's device failed: every later call runs on the Java fallback. */
    private volatile boolean degraded;
    private final AtomicBoolean closed = new AtomicBoolean();
    /**
     * Calls that reach a backend hold the read lock; {@link #close()} takes the write lock, so it
     * waits for the calls in flight on other threads instead of releasing the device's context,
     * queue and buffers under them (PoCL aborted the JVM: "can_run_command: Assertion
     * pocl_refcount > 0 failed"), and a call that starts after it finds the engine closed.
     */
    private final ReentrantReadWriteLock life = new ReentrantReadWriteLock();
    private final Object asyncLock = new Object();
    /** The thread of {@link #submit}, started on first use. */
    private ExecutorService async;
    private volatile boolean closing;
    private volatile Thread asyncThread;
    private static final AtomicInteger ENGINE_IDS = new AtomicInteger();

    private NormEngine(Backend backend, String selectionReason, boolean mayFallBack, int javaThreads) {
        this.backend = backend;
        this.selectionReason = selectionReason;
        this.mayFallBack = mayFallBack;
        this.javaThreads = javaThreads;
    }

    /** @return an AUTO engine: the best OpenCL device, else the Java backend */
    public static NormEngine create() {
        return create(EngineOptions.auto());
    }

    /**
     * Creates an engine.
     *
     * <p>{@code AUTO} tries the selected (or best) OpenCL device and falls back to Java, logging
     * which it chose and why; {@code OPENCL} fails with a {@link NormException} that says what is
     * missing; {@code JAVA} always succeeds.
     *
     * @param options which backend and device
     * @return the engine
     * @throws NormException if an explicit OpenCL engine cannot be created
     * @throws IllegalArgumentException if the device selector matches no device
     */
    public static NormEngine create(EngineOptions options) {
        Validation.notNull(options, "options", "EngineOptions (EngineOptions.auto(), .java() or .opencl(device))");
        int threads = options.effectiveThreads();
        switch (options.backend()) {
            case JAVA:
                return new NormEngine(new JavaBackend(threads), "Java backend requested", false, threads);
            case OPENCL:
                return new NormEngine(ClRuntime.open(options.device()), "OpenCL device requested", false, threads);
            case AUTO:
            default:
                return createAuto(options, threads);
        }
    }

    private static NormEngine createAuto(EngineOptions options, int threads) {
        String why;
        try {
            Backend cl = ClRuntime.open(options.device());
            why = options.device() != null ? "AUTO: OpenCL device matching '" + options.device() + "'"
                    : "AUTO: best OpenCL device (GPU before accelerator before CPU)";
            LOG.info("{} -> {}", why, cl.description());
            return new NormEngine(cl, why, true, threads);
        } catch (IllegalArgumentException e) {
            // A device the caller named does not exist: that is their error, not a reason to fall back.
            throw e;
        } catch (RuntimeException e) {
            why = "AUTO: no usable OpenCL device (" + e.getMessage() + "); using the Java backend";
            LOG.warn(why);
            return new NormEngine(new JavaBackend(threads), why, false, threads);
        }
    }

    /**
     * Lists every OpenCL device of every platform, in the order {@code --device N} counts them.
     *
     * @return the devices; empty when OpenCL is missing (see {@link #openClUnavailableReason()})
     */
    public static List<DeviceInfo> devices() {
        return ClRuntime.devices();
    }

    /** @return why OpenCL cannot be used on this machine, or empty when it can */
    public static Optional<String> openClUnavailableReason() {
        return ClRuntime.unavailableReason();
    }

    /** @return the backend this engine runs on ({@link BackendKind#OPENCL} or {@link BackendKind#JAVA}) */
    public BackendKind backendKind() {
        return backend.kind();
    }

    /** @return the device, for OpenCL engines */
    public Optional<DeviceInfo> device() {
        return backend.device();
    }

    /** @return one line naming the backend and device */
    public String description() {
        return backend.description();
    }

    /** @return why this backend was chosen */
    public String selectionReason() {
        return selectionReason;
    }

    /**
     * @param dtype an element type
     * @return whether this engine's own backend computes it (an AUTO engine runs the others on
     *     its Java fallback; an explicit OpenCL engine refuses them)
     */
    public boolean supports(DType dtype) {
        return backend.supports(dtype);
    }

    /** The backend that runs a call on data of this type: the engine's own, or the Java fallback. */
    private Backend backendFor(DType dtype) {
        if (!degraded && backend.supports(dtype)) {
            return backend;
        }
        if (degraded) {
            return javaFallback(dtype);
        }
        if (!mayFallBack) {
            throw new NormException(dtype + " is not supported by " + backend.description()
                    + (dtype == DType.FLOAT64 ? " (the device lacks cl_khr_fp64)" : "")
                    + ": use an AUTO or Java engine for " + dtype + " data");
        }
        return javaFallback(dtype);
    }

    private Backend javaFallback(DType dtype) {
        Backend f = fallback;
        if (f == null) {
            synchronized (this) {
                f = fallback;
                if (f == null) {
                    if (!degraded) {
                        LOG.warn("{} cannot compute {}; AUTO runs such calls on the Java backend",
                                backend.description(), dtype);
                    }
                    f = new JavaBackend(javaThreads);
                    fallback = f;
                }
            }
        }
        return f;
    }

    /**
     * For leak checks: how many buffers this engine holds that have not been closed — device
     * tensors, and result tensors the caller has not closed yet (host results hold none). Zero
     * once everything is closed; steady growth over a workload means a leak.
     *
     * @return the number of live buffers
     */
    public int liveBuffers() {
        Backend f = fallback;
        return backend.liveBuffers() + (f == null ? 0 : f.liveBuffers());
    }

    /**
     * Runs an operation; if the device fails under an AUTO engine (a kernel build failure,
     * CL_OUT_OF_RESOURCES, an allocation failure, a lost device), logs once, switches the engine
     * to the Java backend for good and runs the operation again there. Explicit OpenCL engines
     * throw. Bad arguments are never retried.
     */
    private <T> T failover(java.util.function.Supplier<T> operation) {
        return whileOpen(() -> {
            try {
                return operation.get();
            } catch (ClException | DeviceLostException e) {
                if (!mayFallBack || degraded) {
                    throw e;
                }
                synchronized (this) {
                    if (!degraded) {
                        LOG.warn("AUTO: the OpenCL device failed ({}); continuing on the Java backend",
                                e.getMessage());
                        degraded = true;
                    }
                }
                return operation.get();
            }
        });
    }

    /**
     * Runs {@code operation} holding {@link #life}'s read lock, once the engine is known to be
     * open: {@link #close()} cannot release the backend while it runs.
     *
     * @throws IllegalStateException if the engine is closed
     */
    private <T> T whileOpen(java.util.function.Supplier<T> operation) {
        life.readLock().lock();
        try {
            checkOpen();
            return operation.get();
        } finally {
            life.readLock().unlock();
        }
    }

    /** @return whether an AUTO engine has switched to the Java backend after a device failure */
    public boolean isDegraded() {
        return degraded;
    }

    // ---------------------------------------------------------------- asynchronous calls

    /**
     * Runs work on this engine without blocking the caller: calls run one at a time, in
     * submission order, on a daemon thread the engine owns, so a caller can prepare the next batch
     * while the device works on this one. Use the engine's ordinary methods inside:
     *
     * <pre>{@code
     * CompletableFuture<NormResult> f = engine.submit(e -> e.layerNorm(spec, x, gamma, beta));
     * ... other work ...
     * try (NormResult r = f.join()) { ... }
     * }</pre>
     *
     * <p>The future completes with what {@code work} returns (the caller owns it, as with a
     * direct call) or exceptionally with what it throws. Work still queued when the engine is
     * closed is not run: its future fails with an {@link IllegalStateException}; {@link #close()}
     * waits for the call that is running.
     *
     * @param work what to run, given this engine
     * @param <T> the result type
     * @return a future of the result
     * @throws IllegalArgumentException if {@code work} is null
     * @throws IllegalStateException if the engine is closed
     */
    public <T> CompletableFuture<T> submit(Function<NormEngine, T> work) {
        Validation.notNull(work, "work", "a function of the engine, e.g. e -> e.layerNorm(spec, x, scale, bias)");
        checkOpen();
        CompletableFuture<T> future = new CompletableFuture<>();
        Runnable task = () -> {
            if (closing) {
                future.completeExceptionally(new IllegalStateException("engine is closed: the call was not run"));
                return;
            }
            try {
                future.complete(work.apply(this));
            } catch (Throwable t) {
                future.completeExceptionally(t);
            }
        };
        synchronized (asyncLock) {
            if (closing) {
                throw new IllegalStateException("engine is closed");
            }
            if (async == null) {
                async = Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "normcl-engine-" + ENGINE_IDS.incrementAndGet());
                    t.setDaemon(true);
                    asyncThread = t;
                    return t;
                });
            }
            async.execute(task);
        }
        return future;
    }

    /** Stops the asynchronous thread: queued calls fail, the running one is waited for. */
    private void stopAsync() {
        ExecutorService ex;
        synchronized (asyncLock) {
            closing = true;
            ex = async;
        }
        if (ex == null) {
            return;
        }
        ex.shutdown();
        if (Thread.currentThread() == asyncThread) {
            return; // close() called from inside a submitted call: that call is the one running
        }
        boolean interrupted = false;
        while (true) {
            try {
                if (ex.awaitTermination(1, TimeUnit.SECONDS)) {
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    // ---------------------------------------------------------------- tensors

    /**
     * Copies a host tensor to the engine's device.
     *
     * @param host the data (any {@link DType})
     * @return a device tensor owned by this engine; close it when done
     */
    public DeviceTensor upload(HostTensor host) {
        Validation.notNull(host, "host", "a HostTensor");
        checkOpen();
        return failover(() -> {
            Backend be = mayFallBack ? backendFor(host.dtype()) : backend;
            Buffer b = be.allocate(host.dtype(), host.shape().size());
            try {
                if (host.shape().size() > 0) {
                    be.write(b, host);
                }
                return new DeviceTensor(this, be, b, host.shape());
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
        });
    }

    /**
     * @param data float32 elements in row-major order
     * @param dims the shape
     * @return a device tensor owned by this engine
     */
    public DeviceTensor upload(float[] data, long... dims) {
        return upload(HostTensor.of(data, dims));
    }

    /**
     * Allocates a float32 device tensor filled with a value.
     *
     * @param shape the shape
     * @param value the fill value
     * @return a device tensor owned by this engine
     */
    public DeviceTensor full(Shape shape, float value) {
        Validation.notNull(shape, "shape", "a Shape");
        checkOpen();
        return failover(() -> {
            Backend be = backendFor(DType.FLOAT32);
            Buffer b = be.allocate(DType.FLOAT32, shape.size());
            try {
                if (shape.size() > 0) {
                    be.fill(b, value);
                }
                return new DeviceTensor(this, be, b, shape);
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
        });
    }

    HostTensor download(DeviceTensor t) {
        return whileOpen(() -> {
            Buffer b = t.buffer();
            if (t.shape().size() == 0) {
                return HostTensor.zeros(t.dtype(), t.shape());
            }
            return t.backend().read(b, t.shape());
        });
    }

    // ---------------------------------------------------------------- operators

    /**
     * LayerNormalization with default settings (axis -1, epsilon 1e-5).
     *
     * @see #layerNorm(LayerNorm, Tensor, Tensor, Tensor)
     */
    public NormResult layerNorm(Tensor x, Tensor scale, Tensor bias) {
        return layerNorm(LayerNorm.defaults(), x, scale, bias);
    }

    /**
     * LayerNormalization (see {@link LayerNorm} for the formula).
     *
     * @param spec axis and epsilon
     * @param x the input, rank &ge; 1, any {@link DType}
     * @param scale shape {@code X.shape[axis:]}, float32 or X's type, or null for none
     * @param bias shape {@code X.shape[axis:]}, the scale's type, or null for none
     * @return Y (X's type), Mean and InvStdDev (shape {@code X.shape[:axis] + [1]*(rank-axis)}, float32,
     *     or float64 for float64 data)
     */
    public NormResult layerNorm(LayerNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Validation.notNull(spec, "spec", "a LayerNorm (LayerNorm.defaults())");
        return runRows(trailingSetup(StatMode.MEAN_VAR, spec.axis(), spec.epsilon(), x, scale, bias), x, scale, bias);
    }

    /**
     * RMSNormalization (see {@link RmsNorm} for the formula).
     *
     * @param spec axis and epsilon
     * @param x the input, rank &ge; 1
     * @param scale shape {@code X.shape[axis:]}, or null for none
     * @return Y and the inverse RMS in {@link NormResult#invStdDev()}
     */
    public NormResult rmsNorm(RmsNorm spec, Tensor x, Tensor scale) {
        Validation.notNull(spec, "spec", "a RmsNorm (RmsNorm.defaults())");
        return runRows(trailingSetup(StatMode.RMS, spec.axis(), spec.epsilon(), x, scale, null), x, scale, null);
    }

    /**
     * GroupNormalization (see {@link GroupNorm}).
     *
     * @param spec groups, epsilon, affine layout and memory layout
     * @param x the input (N, C, D1, ...) or, channels-last, (N, D1, ..., C); C divisible by the groups
     * @param scale shape [C] (per channel) or [numGroups] (per group), or null
     * @param bias same shape as scale, or null
     * @return Y, and Mean and InvStdDev of shape (N, numGroups)
     */
    public NormResult groupNorm(GroupNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Validation.notNull(spec, "spec", "a GroupNorm (GroupNorm.of(numGroups))");
        return runRows(groupSetup(spec.numGroups(), spec.affine() == GroupNorm.Affine.PER_GROUP, spec.epsilon(),
                spec.layout(), x, scale, bias), x, scale, bias);
    }

    /**
     * InstanceNormalization (see {@link InstanceNorm}).
     *
     * @param spec epsilon and memory layout
     * @param x the input (N, C, D1, ...) or, channels-last, (N, D1, ..., C)
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @return Y, and Mean and InvStdDev of shape (N, C)
     */
    public NormResult instanceNorm(InstanceNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Validation.notNull(spec, "spec", "an InstanceNorm (InstanceNorm.defaults())");
        requireX(x, 2);
        long c = channels(x.shape(), spec.layout());
        return runRows(groupSetup(c, false, spec.epsilon(), spec.layout(), x, scale, bias, "[C]"), x, scale, bias);
    }

    /**
     * Everything a row normalization needs, derived once from the arguments for both passes.
     *
     * @param plan the forward plan, or null when rows are empty (zero columns)
     * @param statShape the shape of Mean and InvStdDev
     * @param affineShape the shape of scale, bias, dScale and dBias
     * @param grad the parameter-gradient plan, or null when rows are empty
     * @param rms whether this is RMS normalization (no mean, no bias)
     */
    private record RowSetup(RowNormPlan plan, Shape statShape, Shape affineShape, AffineGradPlan grad, boolean rms) {
    }

    private RowSetup trailingSetup(StatMode mode, int axisGiven, float epsilon, Tensor x, Tensor scale, Tensor bias) {
        requireX(x, 1);
        Shape xs = x.shape();
        int axis = xs.normalizeAxis(axisGiven, "axis");
        Shape normalized = xs.slice(axis, xs.rank());
        requireAffine("scale", scale, normalized, "X.shape[axis:] with axis=" + axisGiven);
        requireAffine("bias", bias, normalized, "X.shape[axis:] with axis=" + axisGiven);
        long[] statDims = xs.dims();
        for (int i = axis; i < statDims.length; i++) {
            statDims[i] = 1;
        }
        long rows = xs.product(0, axis);
        long cols = normalized.size();
        boolean empty = cols == 0;
        boolean rms = mode == StatMode.RMS;
        return new RowSetup(empty ? null : RowNormPlan.contiguous(rows, cols, mode, epsilon, 1, cols, 1,
                scale != null, bias != null), Shape.of(statDims), normalized,
                empty ? null : new AffineGradPlan(rows, cols, 1, 1, cols, rms), rms);
    }

    /** The channel count of an (N, C, ...) or (N, ..., C) tensor. */
    private static long channels(Shape xs, Layout layout) {
        return layout == Layout.CHANNELS_LAST ? xs.dim(xs.rank() - 1) : xs.dim(1);
    }

    private RowSetup groupSetup(long g, boolean perGroup, float eps, Layout layout, Tensor x, Tensor scale,
            Tensor bias) {
        return groupSetup(g, perGroup, eps, layout, x, scale, bias, null);
    }

    /**
     * Group norm (instance norm is G = C) in either layout: the rows are the (sample, group) slices.
     *
     * @param affineWhat how to name the expected scale shape, or null for group norm's wording
     */
    private RowSetup groupSetup(long g, boolean perGroup, float eps, Layout layout, Tensor x, Tensor scale,
            Tensor bias, String affineWhat) {
        requireX(x, 2);
        Shape xs = x.shape();
        boolean last = layout == Layout.CHANNELS_LAST;
        long n = xs.dim(0);
        long c = channels(xs, layout);
        if (g > 0 && c % g != 0) {
            throw new IllegalArgumentException("numGroups = " + g + " does not divide the channel count C = " + c
                    + " (X.shape[" + (last ? xs.rank() - 1 : 1) + "] of X" + xs + "): expected a divisor of " + c);
        }
        long spatial = last ? xs.product(1, xs.rank() - 1) : xs.product(2, xs.rank());
        Shape affine = Shape.of(perGroup ? g : c);
        String what = affineWhat != null ? affineWhat
                : perGroup ? "[G] (per-group affine, ONNX opset 18)" : "[C] (per-channel affine)";
        requireAffine("scale", scale, affine, what);
        requireAffine("bias", bias, affine, what);
        long cpg = g == 0 ? 0 : c / g;
        long cols = cpg * spatial;
        Shape statShape = Shape.of(n, g);
        if (cols == 0) {
            return new RowSetup(null, statShape, affine, null, false);
        }
        StatMode m = StatMode.MEAN_VAR;
        boolean sc = scale != null;
        boolean bi = bias != null;
        long rows = n * g;
        if (!last) {
            return perGroup
                    ? new RowSetup(RowNormPlan.contiguous(rows, cols, m, eps, g, 1, cols, sc, bi), statShape, affine,
                            new AffineGradPlan(n, g, cols, g, 1, false), false)
                    : new RowSetup(RowNormPlan.contiguous(rows, cols, m, eps, g, cpg, spatial, sc, bi), statShape,
                            affine, new AffineGradPlan(n, c, spatial, g, cpg, false), false);
        }
        // Channels-last: a slice is `spatial` segments of cpg channels, C apart; each sample spans S*C.
        RowNormPlan plan = new RowNormPlan(rows, cols, m, eps, g, perGroup ? 1 : cpg, perGroup ? cpg : 1, sc, bi,
                spatial, c, spatial * c, cpg);
        AffineGradPlan grad = perGroup ? new AffineGradPlan(n * spatial, g, cpg, g, 1, false, spatial)
                : new AffineGradPlan(n * spatial, c, 1, g, cpg, false, spatial);
        return new RowSetup(plan, statShape, affine, grad, false);
    }

    /**
     * BatchNormalization (see {@link BatchNorm} for both modes and the running-statistic update).
     *
     * @param spec mode, epsilon, momentum, convention and memory layout
     * @param x the input (N, C, D1, ...) or, channels-last, (N, D1, ..., C)
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @param runningMean shape [C]; required in inference, optional in training
     * @param runningVar shape [C]; required in inference, optional in training (given together with the mean)
     * @return Y; the mean and inverse standard deviation used, shape [C]; in training with running
     *     statistics given, the updated running mean and variance (in their own type)
     */
    public NormResult batchNorm(BatchNorm spec, Tensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar) {
        Validation.notNull(spec, "spec", "a BatchNorm (BatchNorm.defaults())");
        ChannelSetup cs = batchSetup(spec, x, scale, bias, runningMean, runningVar);
        if (!spec.training() && runningMean == null) {
            throw new IllegalArgumentException(
                    "runningMean and runningVar are required in inference mode: expected tensors of shape " + cs.cshape);
        }
        if (spec.training() && cs.count == 1) {
            throw new IllegalArgumentException("X: expected more than 1 value per channel when training, got input"
                    + " shape " + x.shape() + " (N * D1 * ... = 1)");
        }
        checkOpen();
        // Checked before the chunked path too, which computes the batch's moments on the device.
        DType pt = paramType(x, "scale", scale, "bias", bias, "runningMean", runningMean, "runningVar", runningVar);
        if (x instanceof HostTensor hx && x.shape().dim(0) > 0) {
            long samples = chunkUnits(hx, x.shape().size() / x.shape().dim(0));
            if (samples > 0) {
                return batchNormChunked(spec, hx, scale, bias, runningMean, runningVar, samples);
            }
        }
        long c = cs.cshape.size();
        DType st = x.dtype().statistics();
        return failover(() -> {
            try (Call call = new Call(x, x.dtype())) {
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer bb = call.in(bias, "bias");
                Buffer rmb = call.in(runningMean, "runningMean");
                Buffer rvb = call.in(runningVar, "runningVar");
                Buffer yb = call.out(x.dtype(), x.shape().size());
                Buffer meanb = call.out(st, c);
                Buffer invb = call.out(st, c);
                Buffer rmOut = null;
                Buffer rvOut = null;
                Backend be = call.backend();
                if (spec.training()) {
                    boolean update = runningMean != null;
                    rmOut = update ? call.out(pt, c) : null;
                    rvOut = update ? call.out(pt, c) : null;
                    if (cs.plan != null && cs.count == 0) {
                        // An empty batch has no statistics: NaN saved stats, running stats unchanged.
                        be.fill(meanb, Float.NaN);
                        be.fill(invb, Float.NaN);
                        if (update) {
                            be.copy(rmb, rmOut);
                            be.copy(rvb, rvOut);
                        }
                    } else if (cs.plan != null) {
                        RunningUpdate upd = update ? spec.runningUpdate() : null;
                        Buffer meanLo = call.temp(st, c);
                        be.channelNorm(cs.plan, xb, meanb, meanLo, invb, upd, rmb, rvb, rmOut, rvOut, sb, bb, yb);
                    }
                } else if (cs.plan != null) {
                    be.channelRunningStats(cs.plan, rmb, rvb, meanb, invb);
                    if (cs.count > 0) {
                        be.channelApply(cs.plan, xb, meanb, null, invb, sb, bb, yb);
                    }
                }
                Shape cshape = cs.cshape;
                return call.result(new Buffer[] {yb, meanb, invb, rmOut, rvOut},
                        new Shape[] {x.shape(), cshape, cshape, cshape, cshape});
            }
        });
    }

    /** The per-channel view of a batch norm, in either layout. */
    private static final class ChannelSetup {
        ChannelPlan plan; // null when C == 0
        Shape cshape;
        long count; // values per channel
    }

    private ChannelSetup batchSetup(BatchNorm spec, Tensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar) {
        requireX(x, 2);
        Shape xs = x.shape();
        boolean last = spec.layout() == Layout.CHANNELS_LAST;
        long c = channels(xs, spec.layout());
        Shape cshape = Shape.of(c);
        requireAffine("scale", scale, cshape, "[C]");
        requireAffine("bias", bias, cshape, "[C]");
        requireAffine("runningMean", runningMean, cshape, "[C]");
        requireAffine("runningVar", runningVar, cshape, "[C]");
        if ((runningMean == null) != (runningVar == null)) {
            throw new IllegalArgumentException((runningMean == null ? "runningMean" : "runningVar")
                    + " is null but the other running statistic is given: expected both or neither");
        }
        ChannelSetup s = new ChannelSetup();
        s.cshape = cshape;
        long outer = last ? xs.product(0, xs.rank() - 1) : xs.dim(0);
        long inner = last ? 1 : xs.product(2, xs.rank());
        s.count = outer * inner;
        s.plan = c == 0 ? null : new ChannelPlan(outer, c, inner, StatMode.MEAN_VAR, spec.epsilon());
        return s;
    }

    /**
     * MeanVarianceNormalization (see {@link MeanVarianceNorm}).
     *
     * @param spec axes and epsilon
     * @param x the input
     * @return Y; Mean and the inverse scale {@code 1/(sqrt(var)+epsilon)}, shaped as X with the
     *     reduced axes set to 1
     */
    public NormResult meanVarianceNorm(MeanVarianceNorm spec, Tensor x) {
        Validation.notNull(spec, "spec", "a MeanVarianceNorm (MeanVarianceNorm.defaults())");
        requireX(x, 1);
        Shape xs = x.shape();
        int rank = xs.rank();
        boolean[] reduced = new boolean[rank];
        for (int a : spec.axes()) {
            int ax = xs.normalizeAxis(a, "axes");
            if (reduced[ax]) {
                throw new IllegalArgumentException("axes names dimension " + ax + " twice: expected distinct axes");
            }
            reduced[ax] = true;
        }
        int keepFrom = 0;
        while (keepFrom < rank && reduced[keepFrom]) {
            keepFrom++;
        }
        int keepTo = keepFrom;
        while (keepTo < rank && !reduced[keepTo]) {
            keepTo++;
        }
        for (int i = keepTo; i < rank; i++) {
            if (!reduced[i]) {
                throw new IllegalArgumentException("axes = " + java.util.Arrays.toString(spec.axes())
                        + ": the kept dimensions of X" + xs + " must be consecutive (for example [0, 2, 3] on NCHW"
                        + " or trailing axes)");
            }
        }
        if (keepFrom == rank) { // every axis reduced
            keepFrom = 0;
            keepTo = 0;
        }
        long[] statDims = xs.dims();
        for (int i = 0; i < rank; i++) {
            if (reduced[i]) {
                statDims[i] = 1;
            }
        }
        Shape statShape = Shape.of(statDims);
        long outer = xs.product(0, keepFrom);
        long channels = xs.product(keepFrom, keepTo);
        long inner = xs.product(keepTo, rank);
        checkOpen();
        boolean allReduced = keepTo == 0;
        if (x instanceof HostTensor hx && xs.size() > 0 && (outer > 1 || allReduced)) {
            // The statistics reduce over samples (dim 0 is reduced): merged across chunks of samples.
            long n = xs.dim(0);
            long samples = chunkUnits(hx, xs.size() / n);
            if (samples > 0) {
                ChannelPlan whole = allReduced
                        ? new ChannelPlan(n, 1, xs.size() / n, StatMode.MEAN_VAR_EPS_OUTSIDE, spec.epsilon())
                        : new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR_EPS_OUTSIDE, spec.epsilon());
                return meanVarianceNormChunked(whole, hx, statShape, samples);
            }
        }
        if (outer == 1) {
            RowNormPlan plan = inner == 0 || channels == 0 ? null
                    : RowNormPlan.contiguous(channels, inner, StatMode.MEAN_VAR_EPS_OUTSIDE, spec.epsilon(), 1, inner,
                            1, false, false);
            return runRows(new RowSetup(plan, statShape, Shape.of(inner), null, false), x, null, null);
        }
        DType st = x.dtype().statistics();
        return failover(() -> {
            try (Call call = new Call(x, x.dtype())) {
                Backend be = call.backend();
                Buffer xb = call.in(x, "X");
                Buffer yb = call.out(x.dtype(), xs.size());
                Buffer meanb = call.out(st, channels);
                Buffer invb = call.out(st, channels);
                if (channels > 0) {
                    if (outer * inner == 0) {
                        be.fill(meanb, Float.NaN);
                        be.fill(invb, Float.NaN);
                    } else {
                        ChannelPlan plan = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR_EPS_OUTSIDE,
                                spec.epsilon());
                        Buffer meanLo = call.temp(st, channels);
                        be.channelNorm(plan, xb, meanb, meanLo, invb, null, null, null, null, null, null, null, yb);
                    }
                }
                return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {xs, statShape, statShape});
            }
        });
    }

    /**
     * Mean-variance normalization of a host X larger than one device buffer whose statistics reduce
     * over samples: the moments of each chunk of whole samples merged in double (as for batch
     * norm), then each chunk normalized with {@code (x - mean) / (sqrt(var) + epsilon)}.
     *
     * @param whole the channel view of all of X: N * (outer per sample) outer slices
     */
    private NormResult meanVarianceNormChunked(ChannelPlan whole, HostTensor x, Shape statShape, long samplesPerChunk) {
        long n = x.shape().dim(0);
        long perSample = x.shape().size() / n;
        List<ChannelMoments> parts = new ArrayList<>();
        for (long s0 = 0; s0 < n; s0 += samplesPerChunk) {
            long s1 = Math.min(n, s0 + samplesPerChunk);
            ChannelPlan plan = channelChunk(whole, s1 - s0, n);
            parts.add(moments(samples(x, s0, s1, perSample), plan.outer(), plan.channels(), plan.inner()));
        }
        ChannelMoments m = ChannelMoments.merge(parts);
        double[] var = m.variance(false);
        double[] inv = new double[var.length];
        for (int c = 0; c < inv.length; c++) {
            inv[c] = 1 / (Math.sqrt(var[c]) + whole.epsilon());
        }
        DType st = x.dtype().statistics();
        HostTensor mean = HostTensor.fromDoubles(m.mean(), st, statShape);
        HostTensor invStd = HostTensor.fromDoubles(inv, st, statShape);
        HostTensor y = channelApplyChunked(x, whole, mean, HostTensor.fromDoubles(m.meanLo(st), st, statShape), invStd,
                null, null, samplesPerChunk);
        return new NormResult(y, mean, invStd, null, null);
    }

    /** Runs a row normalization; a null plan means the rows are empty (zero columns). */
    private NormResult runRows(RowSetup setup, Tensor x, Tensor scale, Tensor bias) {
        checkOpen();
        paramType(x, "scale", scale, "bias", bias);
        RowNormPlan plan = setup.plan();
        if (plan != null && x instanceof HostTensor hx) {
            long units = chunkUnits(hx, plan.outerStride());
            if (units > 0) {
                return runRowsChunked(setup, hx, scale, bias, units);
            }
        }
        Shape statShape = setup.statShape();
        DType st = x.dtype().statistics();
        return failover(() -> {
            try (Call call = new Call(x, x.dtype())) {
                Backend be = call.backend();
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer bb = call.in(bias, "bias");
                Buffer yb = call.out(x.dtype(), x.shape().size());
                Buffer meanb = setup.rms() ? null : call.out(st, statShape.size());
                Buffer invb = call.out(st, statShape.size());
                if (statShape.size() > 0) {
                    if (plan == null) {
                        // Rows of zero elements have no statistics.
                        if (meanb != null) {
                            be.fill(meanb, Float.NaN);
                        }
                        be.fill(invb, Float.NaN);
                    } else {
                        be.rowNorm(plan, xb, sb, bb, yb, meanb, invb);
                    }
                }
                return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {x.shape(), statShape, statShape});
            }
        });
    }

    // ---------------------------------------------------------------- chunks

    /**
     * How many units of {@code unitElements} elements of a host X one device buffer holds, when X
     * is too large for one buffer of the backend that would run it; 0 when X fits whole.
     *
     * @throws IllegalArgumentException if a single unit (a row, a sample) does not fit either
     */
    private long chunkUnits(HostTensor x, long unitElements) {
        long limit = backendFor(x.dtype()).maxAllocationBytes();
        long bytes = x.shape().size() * x.dtype().byteSize();
        if (bytes <= limit || unitElements == 0) {
            return 0;
        }
        long unitBytes = unitElements * x.dtype().byteSize();
        if (unitBytes > limit) {
            throw new IllegalArgumentException("X has shape " + x.shape() + ": one slice of " + unitElements
                    + " elements (" + unitBytes + " bytes) exceeds the device's largest buffer (" + limit
                    + " bytes), so it cannot be processed in chunks: expected slices of at most "
                    + limit / x.dtype().byteSize() + " elements");
        }
        LOG.debug("X of {} bytes exceeds one device buffer ({} bytes): processing it in chunks", bytes, limit);
        return limit / unitBytes;
    }

    /**
     * A row normalization of a host X larger than one device buffer: chunks of whole units
     * (rows, or samples for group and instance norm), each normalized on its own, the outputs
     * copied into place. Rows are independent, so the result equals the unchunked one.
     */
    private NormResult runRowsChunked(RowSetup setup, HostTensor x, Tensor scale, Tensor bias, long unitsPerChunk) {
        RowNormPlan plan = setup.plan();
        long unit = plan.outerStride();
        long totalUnits = plan.rows() / plan.groups();
        DType st = x.dtype().statistics();
        HostTensor y = HostTensor.zeros(x.dtype(), x.shape());
        HostTensor mean = setup.rms() ? null : HostTensor.zeros(st, setup.statShape());
        HostTensor inv = HostTensor.zeros(st, setup.statShape());
        for (long u0 = 0; u0 < totalUnits; u0 += unitsPerChunk) {
            long u1 = Math.min(totalUnits, u0 + unitsPerChunk);
            long rows = (u1 - u0) * plan.groups();
            HostTensor xc = x.range(u0 * unit, u1 * unit, Shape.of((u1 - u0) * unit));
            RowSetup sub = new RowSetup(plan.withRows(rows), Shape.of(rows), setup.affineShape(), null, setup.rms());
            try (NormResult r = runRows(sub, xc, scale, bias)) {
                y.copyFrom(r.y().toHost(), u0 * unit);
                if (mean != null) {
                    mean.copyFrom(r.mean().toHost(), u0 * plan.groups());
                }
                inv.copyFrom(r.invStdDev().toHost(), u0 * plan.groups());
            }
        }
        return new NormResult(y, mean, inv, null, null);
    }

    /**
     * The backward pass of a row normalization of a host X larger than one device buffer: dX per
     * chunk; dScale and dBias summed over the chunks in order, in double.
     */
    private GradResult rowsBackwardChunked(RowSetup setup, HostTensor dy, HostTensor x, Tensor scale,
            SavedStats saved, long unitsPerChunk) {
        RowNormPlan plan = setup.plan();
        long unit = plan.outerStride();
        long totalUnits = plan.rows() / plan.groups();
        long outerPerUnit = setup.grad().outer() / totalUnits;
        DType pt = paramType(x, "scale", scale);
        HostTensor dx = HostTensor.zeros(x.dtype(), x.shape());
        double[] dScale = new double[Math.toIntExact(setup.affineShape().size())];
        double[] dBias = setup.rms() ? null : new double[dScale.length];
        HostTensor savedMean = saved == null || saved.mean() == null ? null : saved.mean().toHost();
        HostTensor savedInv = saved == null ? null : saved.invStdDev().toHost();
        for (long u0 = 0; u0 < totalUnits; u0 += unitsPerChunk) {
            long u1 = Math.min(totalUnits, u0 + unitsPerChunk);
            long rows = (u1 - u0) * plan.groups();
            Shape flat = Shape.of((u1 - u0) * unit);
            Shape statShape = Shape.of(rows);
            SavedStats chunkStats = savedInv == null ? null
                    : new SavedStats(savedMean == null ? null
                            : savedMean.range(u0 * plan.groups(), u1 * plan.groups(), statShape),
                            savedInv.range(u0 * plan.groups(), u1 * plan.groups(), statShape));
            RowSetup sub = new RowSetup(plan.withRows(rows), statShape, setup.affineShape(),
                    setup.grad().withOuter((u1 - u0) * outerPerUnit), setup.rms());
            try (GradResult g = rowsBackward(sub, dy.range(u0 * unit, u1 * unit, flat),
                    x.range(u0 * unit, u1 * unit, flat), scale, chunkStats)) {
                dx.copyFrom(g.dx().toHost(), u0 * unit);
                add(dScale, g.dScale());
                if (dBias != null) {
                    add(dBias, g.dBias());
                }
            }
        }
        return new GradResult(dx, HostTensor.fromDoubles(dScale, pt, setup.affineShape()),
                dBias == null ? null : HostTensor.fromDoubles(dBias, pt, setup.affineShape()));
    }

    private static void add(double[] sum, Tensor t) {
        double[] v = t.toHost().toDoubles();
        for (int i = 0; i < sum.length; i++) {
            sum[i] += v[i];
        }
    }

    /**
     * Batch normalization of a host X larger than one device buffer, in chunks of whole samples:
     * in training the chunks' moments are merged first (as across devices), then each chunk is
     * normalized with the global statistics; in inference each chunk on its own.
     */
    private NormResult batchNormChunked(BatchNorm spec, HostTensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar, long samplesPerChunk) {
        long n = x.shape().dim(0);
        long perSample = x.shape().size() / n;
        List<HostTensor> chunks = new ArrayList<>();
        for (long s0 = 0; s0 < n; s0 += samplesPerChunk) {
            long s1 = Math.min(n, s0 + samplesPerChunk);
            long[] dims = x.shape().dims();
            dims[0] = s1 - s0;
            chunks.add(x.range(s0 * perSample, s1 * perSample, Shape.of(dims)));
        }
        if (spec.training()) {
            List<ChannelMoments> parts = new ArrayList<>();
            for (HostTensor c : chunks) {
                parts.add(batchNormMoments(spec, c));
            }
            // Applies the merged moments chunk by chunk, updating the running statistics once.
            return batchNorm(spec, x, scale, bias, runningMean, runningVar, ChannelMoments.merge(parts));
        }
        HostTensor y = HostTensor.zeros(x.dtype(), x.shape());
        NormResult first = null;
        long offset = 0;
        for (HostTensor c : chunks) {
            NormResult r = batchNorm(spec, c, scale, bias, runningMean, runningVar);
            y.copyFrom(r.y().toHost(), offset);
            offset += c.shape().size();
            if (first == null) {
                first = r; // every chunk has the same running statistics
            }
        }
        return new NormResult(y, first.mean(), first.invStdDev(), null, null);
    }

    /**
     * The batch-norm backward pass of a host X larger than one device buffer, in chunks of whole
     * samples: first every chunk's dScale and dBias with the global statistics (summed in chunk
     * order), then every chunk's dX from those global sums.
     */
    private GradResult batchNormBackwardChunked(BatchNorm spec, ChannelSetup cs, HostTensor dy, HostTensor x,
            Tensor scale, Tensor runningMean, Tensor runningVar, SavedStats saved, DType pt, long samplesPerChunk) {
        DType st = x.dtype().statistics();
        Shape cshape = cs.cshape;
        long c = cshape.size();
        // The statistics the forward used.
        double[] mean;
        double[] inv;
        if (!spec.training()) {
            mean = runningMean.toHost().toDoubles();
            double[] var = runningVar.toHost().toDoubles();
            inv = new double[var.length];
            for (int i = 0; i < inv.length; i++) {
                inv[i] = 1 / Math.sqrt((float) var[i] + spec.epsilon());
            }
        } else if (saved != null) {
            mean = saved.mean().toHost().toDoubles();
            inv = saved.invStdDev().toHost().toDoubles();
        } else {
            ChannelMoments m = batchNormMoments(spec, x);
            mean = m.mean();
            inv = m.invStd(spec.epsilon());
        }
        HostTensor meanT = HostTensor.fromDoubles(mean, st, cshape);
        HostTensor invT = HostTensor.fromDoubles(inv, st, cshape);
        long n = x.shape().dim(0);
        long perSample = x.shape().size() / n;
        double[] sums = new double[(int) (2 * c)];
        // Pass 1: the parameter gradients, which training-mode dX needs whole.
        for (long s0 = 0; s0 < n; s0 += samplesPerChunk) {
            long s1 = Math.min(n, s0 + samplesPerChunk);
            HostTensor xc = samples(x, s0, s1, perSample);
            HostTensor dyc = samples(dy, s0, s1, perSample);
            ChannelPlan plan = channelChunk(cs.plan, s1 - s0, n);
            double[] part = failover(() -> {
                try (Call call = new Call(null, x.dtype())) {
                    Backend be = call.backend();
                    Buffer sumsb = call.temp(st, 2 * c);
                    be.affineGrad(new AffineGradPlan(plan.outer(), c, plan.inner(), 0, 1, false), call.in(dyc, "dY"),
                            call.in(xc, "X"), call.in(meanT, "mean"), call.in(invT, "invStd"), null, null, sumsb);
                    return be.read(sumsb, Shape.of(2 * c)).toDoubles();
                }
            });
            for (int i = 0; i < sums.length; i++) {
                sums[i] += part[i];
            }
        }
        double[] dScale = new double[(int) c];
        double[] dBias = new double[(int) c];
        for (int i = 0; i < c; i++) {
            dScale[i] = sums[2 * i];
            dBias[i] = sums[2 * i + 1];
        }
        // Pass 2: dX per chunk.
        HostTensor dx = HostTensor.zeros(x.dtype(), x.shape());
        HostTensor sumsT = HostTensor.fromDoubles(sums, st, Shape.of(2 * c));
        for (long s0 = 0; s0 < n; s0 += samplesPerChunk) {
            long s1 = Math.min(n, s0 + samplesPerChunk);
            HostTensor xc = samples(x, s0, s1, perSample);
            HostTensor dyc = samples(dy, s0, s1, perSample);
            ChannelPlan plan = channelChunk(cs.plan, s1 - s0, n);
            ChannelPlan whole = cs.plan;
            // The chunk's plan, but the whole batch's count M in the training formula.
            HostTensor part = chunkOutput(xc, (call, be, dxb) -> be.channelBackward(plan, whole.perChannel(),
                    call.in(dyc, "dY"), call.in(xc, "X"), call.in(meanT, "mean"), call.in(invT, "invStd"),
                    call.in(scale, "scale"), spec.training() ? call.in(sumsT, "sums") : null, dxb));
            dx.copyFrom(part, s0 * perSample);
        }
        return new GradResult(dx, HostTensor.fromDoubles(dScale, pt, cshape), HostTensor.fromDoubles(dBias, pt,
                cshape));
    }

    /** Writes one chunk's output (X's type and size) into {@code out} on {@code be}. */
    @FunctionalInterface
    private interface ChunkKernel {
        void run(Call call, Backend be, Buffer out);
    }

    /**
     * One chunk of a host tensor too large for one device buffer: {@code kernel} writes the
     * chunk's X-shaped output (Y or dX) on a call of its own, with {@link #failover} like any
     * call, and it comes back to the host for the caller to place.
     */
    private HostTensor chunkOutput(HostTensor xc, ChunkKernel kernel) {
        return failover(() -> {
            try (Call call = new Call(null, xc.dtype())) {
                Backend be = call.backend();
                Buffer out = call.temp(xc.dtype(), xc.shape().size());
                kernel.run(call, be, out);
                return be.read(out, xc.shape());
            }
        });
    }

    /** Samples {@code [s0, s1)} of X (N first), as a copy with the same trailing dimensions. */
    private static HostTensor samples(HostTensor x, long s0, long s1, long perSample) {
        long[] dims = x.shape().dims();
        dims[0] = s1 - s0;
        return x.range(s0 * perSample, s1 * perSample, Shape.of(dims));
    }

    /** A batch-norm channel plan restricted to {@code samples} of the {@code n} samples. */
    private static ChannelPlan channelChunk(ChannelPlan plan, long samples, long n) {
        return new ChannelPlan(plan.outer() / n * samples, plan.channels(), plan.inner(), plan.mode(),
                plan.epsilon());
    }

    /**
     * Y of a channel normalization of a host X larger than one device buffer, in chunks of
     * {@code samplesPerChunk} whole samples, with statistics known for the whole batch (one per
     * channel of {@code whole}); element-wise, so the bits of one pass.
     */
    private HostTensor channelApplyChunked(HostTensor x, ChannelPlan whole, HostTensor mean, HostTensor meanLo,
            HostTensor invStd, Tensor scale, Tensor bias, long samplesPerChunk) {
        long n = x.shape().dim(0);
        long perSample = x.shape().size() / n;
        HostTensor y = HostTensor.zeros(x.dtype(), x.shape());
        for (long s0 = 0; s0 < n; s0 += samplesPerChunk) {
            long s1 = Math.min(n, s0 + samplesPerChunk);
            HostTensor xc = samples(x, s0, s1, perSample);
            ChannelPlan plan = channelChunk(whole, s1 - s0, n);
            HostTensor part = chunkOutput(xc, (call, be, yb) -> be.channelApply(plan, call.in(xc, "X"),
                    call.in(mean, "mean"), call.in(meanLo, "meanLo"), call.in(invStd, "invStd"),
                    call.in(scale, "scale"), call.in(bias, "bias"), yb));
            y.copyFrom(part, s0 * perSample);
        }
        return y;
    }

    // ---------------------------------------------------------------- mergeable statistics

    /**
     * The per-channel moments of a batch (or of one shard of it), for merging across devices or
     * hosts with {@link ChannelMoments#merge(java.util.List)} and normalizing with
     * {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor, ChannelMoments)}.
     *
     * @param x the input (N, C, D1, ...), rank &ge; 2 (channels-first)
     * @return count N * D1 * ..., and the mean and M2 of each of the C channels
     */
    public ChannelMoments batchNormMoments(Tensor x) {
        return batchNormMoments(BatchNorm.defaults(), x);
    }

    /**
     * The per-channel moments of a batch in the spec's memory layout.
     *
     * @param spec the layout (the other settings are not used)
     * @param x the input
     * @return count and the mean and M2 of each channel
     */
    public ChannelMoments batchNormMoments(BatchNorm spec, Tensor x) {
        Validation.notNull(spec, "spec", "a BatchNorm (BatchNorm.defaults())");
        ChannelSetup cs = batchSetup(spec, x, null, null, null, null);
        checkOpen();
        if (x instanceof HostTensor hx && x.shape().dim(0) > 0) {
            long n = x.shape().dim(0);
            long perSample = x.shape().size() / n;
            long samples = chunkUnits(hx, perSample);
            if (samples > 0) {
                List<ChannelMoments> parts = new ArrayList<>();
                for (long s0 = 0; s0 < n; s0 += samples) {
                    long s1 = Math.min(n, s0 + samples);
                    long[] dims = x.shape().dims();
                    dims[0] = s1 - s0;
                    parts.add(batchNormMoments(spec, hx.range(s0 * perSample, s1 * perSample, Shape.of(dims))));
                }
                return ChannelMoments.merge(parts);
            }
        }
        return moments(x, cs.plan == null ? 0 : cs.plan.outer(), cs.cshape.size(),
                cs.plan == null ? 0 : cs.plan.inner());
    }

    /**
     * The per-(sample, group) moments of a group normalization, for merging partial reductions
     * of the same samples (for example an image split spatially across devices). Channels-first.
     *
     * @param spec the number of groups
     * @param x the input (N, C, D1, ...)
     * @return count (C / G) * D1 * ..., and the mean and M2 of each of the N * G groups
     */
    public ChannelMoments groupNormMoments(GroupNorm spec, Tensor x) {
        Validation.notNull(spec, "spec", "a GroupNorm (GroupNorm.of(numGroups))");
        if (spec.layout() != Layout.CHANNELS_FIRST) {
            throw new IllegalArgumentException("groupNormMoments: layout = " + spec.layout()
                    + ": expected CHANNELS_FIRST");
        }
        RowSetup setup = groupSetup(spec.numGroups(), false, spec.epsilon(), Layout.CHANNELS_FIRST, x, null, null);
        long rows = setup.statShape().size();
        RowNormPlan plan = setup.plan();
        checkOpen();
        if (plan != null && x instanceof HostTensor hx) {
            long units = chunkUnits(hx, plan.outerStride());
            if (units > 0) {
                // Per sample: each chunk's (sample, group) slices, in order.
                long unit = plan.outerStride();
                long n = rows / plan.groups();
                List<ChannelMoments> parts = new ArrayList<>();
                for (long u0 = 0; u0 < n; u0 += units) {
                    long u1 = Math.min(n, u0 + units);
                    parts.add(moments(hx.range(u0 * unit, u1 * unit, Shape.of((u1 - u0) * unit)), 1,
                            (u1 - u0) * plan.groups(), plan.cols()));
                }
                return concat(parts);
            }
        }
        return moments(x, 1, rows, plan == null ? 0 : plan.cols());
    }

    /** The slices of moments of disjoint parts (the same count per slice), one after another. */
    private static ChannelMoments concat(List<ChannelMoments> parts) {
        int slices = 0;
        for (ChannelMoments p : parts) {
            slices += p.slices();
        }
        double[] mean = new double[slices];
        double[] m2 = new double[slices];
        int at = 0;
        for (ChannelMoments p : parts) {
            System.arraycopy(p.mean(), 0, mean, at, p.slices());
            System.arraycopy(p.m2(), 0, m2, at, p.slices());
            at += p.slices();
        }
        return ChannelMoments.of(parts.get(0).count(), mean, m2);
    }

    private ChannelMoments moments(Tensor x, long outer, long channels, long inner) {
        checkOpen();
        double[] mean = new double[Math.toIntExact(channels)];
        double[] m2 = new double[mean.length];
        long count = outer * inner;
        if (channels > 0 && count == 0) {
            java.util.Arrays.fill(mean, Double.NaN);
            java.util.Arrays.fill(m2, Double.NaN);
        } else if (channels > 0) {
            DType st = x.dtype().statistics();
            return failover(() -> {
                try (Call call = new Call(null, x.dtype())) {
                    Backend be = call.backend();
                    Buffer xb = call.in(x, "X");
                    Buffer mb = call.temp(st, channels);
                    Buffer lob = call.temp(st, channels);
                    Buffer qb = call.temp(st, channels);
                    be.channelMoments(new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1f), xb, mb, lob,
                            qb);
                    // The mean to double precision: its float32 rounding would cost the merged
                    // statistics what a large offset leaves to the spread (1e4 on 1e-2: 5%).
                    double[] m = be.read(mb, Shape.of(channels)).toDoubles();
                    double[] lo = be.read(lob, Shape.of(channels)).toDoubles();
                    for (int c = 0; c < m.length; c++) {
                        if (Double.isFinite(m[c])) {
                            m[c] += lo[c];
                        }
                    }
                    return ChannelMoments.of(count, m, be.read(qb, Shape.of(channels)).toDoubles());
                }
            });
        }
        return ChannelMoments.of(count, mean, m2);
    }

    /**
     * Training-mode batch normalization of {@code x} (one shard of a batch) with statistics
     * merged by the caller from every shard: Y is normalized with the moments' mean and
     * population variance, the saved statistics are theirs, and the running statistics are
     * updated from them (so every shard computes the same update).
     *
     * @param spec must be in training mode
     * @param x this shard
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @param runningMean shape [C], or null
     * @param runningVar shape [C], or null (given together with the mean)
     * @param moments the merged moments of the whole batch, C slices
     * @return as {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor)}
     */
    public NormResult batchNorm(BatchNorm spec, Tensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar, ChannelMoments moments) {
        Validation.notNull(spec, "spec", "a BatchNorm (BatchNorm.defaults())");
        if (moments == null) {
            return batchNorm(spec, x, scale, bias, runningMean, runningVar);
        }
        if (!spec.training()) {
            throw new IllegalArgumentException("moments apply to training mode: expected spec.withTraining(true)");
        }
        ChannelSetup cs = batchSetup(spec, x, scale, bias, runningMean, runningVar);
        long c = cs.cshape.size();
        if (moments.slices() != c) {
            throw new IllegalArgumentException("moments has " + moments.slices() + " channels: expected C = " + c);
        }
        if (moments.count() == 1) {
            throw new IllegalArgumentException("moments: expected more than 1 value per channel when training, got"
                    + " a count of 1");
        }
        checkOpen();
        DType pt = paramType(x, "scale", scale, "bias", bias, "runningMean", runningMean, "runningVar", runningVar);
        DType st = x.dtype().statistics();
        Shape cshape = cs.cshape;
        if (x instanceof HostTensor hx && cs.plan != null && x.shape().dim(0) > 0) {
            long samples = chunkUnits(hx, x.shape().size() / x.shape().dim(0));
            if (samples > 0) {
                // The statistics and the running update once, then Y chunk by chunk.
                MomentStats ms = momentStats(spec, moments, runningMean, runningVar, st, pt, cshape);
                HostTensor y = channelApplyChunked(hx, cs.plan, ms.mean(), ms.meanLo(), ms.invStd(), scale, bias,
                        samples);
                return new NormResult(y, ms.mean(), ms.invStd(), ms.runningMean(), ms.runningVar());
            }
        }
        return failover(() -> {
            try (Call call = new Call(x, x.dtype())) {
                Backend be = call.backend();
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer bb = call.in(bias, "bias");
                Buffer yb = call.out(x.dtype(), x.shape().size());
                Buffer meanb = call.out(st, c);
                Buffer invb = call.out(st, c);
                boolean update = runningMean != null;
                Buffer rmOut = update ? call.out(pt, c) : null;
                Buffer rvOut = update ? call.out(pt, c) : null;
                if (c > 0) {
                    MomentStats ms = momentStats(spec, moments, runningMean, runningVar, st, pt, cshape);
                    be.write(meanb, ms.mean());
                    be.write(invb, ms.invStd());
                    if (update) {
                        be.write(rmOut, ms.runningMean());
                        be.write(rvOut, ms.runningVar());
                    }
                    if (x.shape().size() > 0) {
                        Buffer lob = call.temp(st, c);
                        be.write(lob, ms.meanLo());
                        be.channelApply(cs.plan, xb, meanb, lob, invb, sb, bb, yb);
                    }
                }
                return call.result(new Buffer[] {yb, meanb, invb, rmOut, rvOut},
                        new Shape[] {x.shape(), cshape, cshape, cshape, cshape});
            }
        });
    }

    /** What a batch norm with merged moments normalizes with, and its running update (null without). */
    private record MomentStats(HostTensor mean, HostTensor meanLo, HostTensor invStd, HostTensor runningMean,
            HostTensor runningVar) {
    }

    /**
     * The statistics of {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor, ChannelMoments)}
     * from the moments, in double, and the running statistics updated once from them.
     */
    private static MomentStats momentStats(BatchNorm spec, ChannelMoments moments, Tensor runningMean,
            Tensor runningVar, DType st, DType pt, Shape cshape) {
        boolean empty = moments.count() == 0;
        double[] mean = moments.mean();
        double[] inv = moments.invStd(spec.epsilon());
        double[] lo = moments.meanLo(st);
        if (empty) {
            java.util.Arrays.fill(mean, Double.NaN);
            java.util.Arrays.fill(inv, Double.NaN);
        }
        HostTensor rmOut = null;
        HostTensor rvOut = null;
        if (runningMean != null) {
            double[] rm = runningMean.toHost().toDoubles();
            double[] rv = runningVar.toHost().toDoubles();
            if (!empty) {
                RunningUpdate u = spec.runningUpdate();
                double[] var = moments.variance(u.unbiased());
                double w = u.batchWeight();
                for (int i = 0; i < rm.length; i++) {
                    rm[i] = rm[i] * (1 - w) + mean[i] * w;
                    rv[i] = rv[i] * (1 - w) + var[i] * w;
                }
            }
            rmOut = HostTensor.fromDoubles(rm, pt, cshape);
            rvOut = HostTensor.fromDoubles(rv, pt, cshape);
        }
        return new MomentStats(HostTensor.fromDoubles(mean, st, cshape), HostTensor.fromDoubles(lo, st, cshape),
                HostTensor.fromDoubles(inv, st, cshape), rmOut, rvOut);
    }

    /**
     * Group normalization with statistics merged by the caller (see
     * {@link #groupNormMoments(GroupNorm, Tensor)}, which computes them channels-first). X may be
     * in either layout ({@code spec.layout()}); the slices are the (sample, group) pairs in order.
     *
     * @param spec groups, epsilon, affine and memory layout
     * @param x the input (N, C, D1, ...), or (N, D1, ..., C) channels-last; when X is one part of
     *     a spatially split image, that part
     * @param scale per the affine layout, or null
     * @param bias per the affine layout, or null
     * @param moments N * G slices, each with a count of at least X's values per group (the whole
     *     image's when X is one part of it)
     * @return Y, and the Mean and InvStdDev used, shape (N, G)
     * @throws IllegalArgumentException if the moments have another number of slices or fewer
     *     values per slice than X has per group
     */
    public NormResult groupNorm(GroupNorm spec, Tensor x, Tensor scale, Tensor bias, ChannelMoments moments) {
        Validation.notNull(spec, "spec", "a GroupNorm (GroupNorm.of(numGroups))");
        if (moments == null) {
            return groupNorm(spec, x, scale, bias);
        }
        RowSetup setup = groupSetup(spec.numGroups(), spec.affine() == GroupNorm.Affine.PER_GROUP, spec.epsilon(),
                spec.layout(), x, scale, bias);
        Shape statShape = setup.statShape();
        if (moments.slices() != statShape.size()) {
            throw new IllegalArgumentException("moments has " + moments.slices() + " slices: expected N * G = "
                    + statShape.size());
        }
        // A slice covers at least the (sample, group) of X: all of it, or, when X is one part of a
        // spatially split image, all parts merged. Fewer values are the moments of part of X.
        long perGroup = statShape.size() == 0 ? 0 : x.shape().size() / statShape.size();
        if (statShape.size() > 0 && moments.count() < perGroup) {
            throw new IllegalArgumentException("moments has a count of " + moments.count() + " values per slice:"
                    + " expected at least (C / G) * D1 * ... = " + perGroup + " for X of shape " + x.shape()
                    + " (more when X is one part of a spatially split image)");
        }
        checkOpen();
        paramType(x, "scale", scale, "bias", bias);
        DType st = x.dtype().statistics();
        if (setup.plan() != null && x instanceof HostTensor hx) {
            long units = chunkUnits(hx, setup.plan().outerStride());
            if (units > 0) {
                return rowApplyChunked(setup.plan(), hx, groupStats(moments, spec.epsilon(), st, statShape), scale,
                        bias, units);
            }
        }
        return failover(() -> {
            try (Call call = new Call(x, x.dtype())) {
                Backend be = call.backend();
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer bb = call.in(bias, "bias");
                Buffer yb = call.out(x.dtype(), x.shape().size());
                Buffer meanb = call.out(st, statShape.size());
                Buffer invb = call.out(st, statShape.size());
                if (statShape.size() > 0) {
                    HostTensor[] stats = groupStats(moments, spec.epsilon(), st, statShape);
                    be.write(meanb, stats[0]);
                    be.write(invb, stats[1]);
                    if (setup.plan() != null) {
                        Buffer lob = call.temp(st, statShape.size());
                        be.write(lob, stats[2]);
                        be.rowApply(setup.plan(), xb, meanb, lob, invb, sb, bb, yb);
                    }
                }
                return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {x.shape(), statShape, statShape});
            }
        });
    }

    /**
     * The Mean and InvStdDev of a group norm with merged moments (NaN for empty slices), and what
     * rounding the means to the statistics type lost, for the apply (as batch norm's channelApply).
     */
    private static HostTensor[] groupStats(ChannelMoments moments, float epsilon, DType st, Shape statShape) {
        double[] m = moments.mean();
        double[] inv = moments.invStd(epsilon);
        if (moments.count() == 0) {
            java.util.Arrays.fill(m, Double.NaN);
            java.util.Arrays.fill(inv, Double.NaN);
        }
        return new HostTensor[] {HostTensor.fromDoubles(m, st, statShape), HostTensor.fromDoubles(inv, st, statShape),
                HostTensor.fromDoubles(moments.meanLo(st), st, statShape)};
    }

    /**
     * A row normalization of a host X larger than one device buffer with known statistics
     * ({@code stats}: Mean, InvStdDev): chunks of whole units as in {@link #runRowsChunked}, each
     * applied with its units' statistics. Element-wise, so the bits of one pass.
     */
    private NormResult rowApplyChunked(RowNormPlan plan, HostTensor x, HostTensor[] stats, Tensor scale, Tensor bias,
            long unitsPerChunk) {
        long unit = plan.outerStride();
        long totalUnits = plan.rows() / plan.groups();
        HostTensor y = HostTensor.zeros(x.dtype(), x.shape());
        for (long u0 = 0; u0 < totalUnits; u0 += unitsPerChunk) {
            long u1 = Math.min(totalUnits, u0 + unitsPerChunk);
            long rows = (u1 - u0) * plan.groups();
            HostTensor xc = x.range(u0 * unit, u1 * unit, Shape.of((u1 - u0) * unit));
            HostTensor mean = stats[0].range(u0 * plan.groups(), u1 * plan.groups(), Shape.of(rows));
            HostTensor meanLo = stats[2].range(u0 * plan.groups(), u1 * plan.groups(), Shape.of(rows));
            HostTensor inv = stats[1].range(u0 * plan.groups(), u1 * plan.groups(), Shape.of(rows));
            RowNormPlan sub = plan.withRows(rows);
            HostTensor part = chunkOutput(xc, (call, be, yb) -> be.rowApply(sub, call.in(xc, "X"),
                    call.in(mean, "mean"), call.in(meanLo, "meanLo"), call.in(inv, "invStd"), call.in(scale, "scale"),
                    call.in(bias, "bias"), yb));
            y.copyFrom(part, u0 * unit);
        }
        return new NormResult(y, stats[0], stats[1], null, null);
    }

    // ---------------------------------------------------------------- backward

    /**
     * The backward pass of {@link #layerNorm(LayerNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's axis and epsilon
     * @param dy the gradient of the loss with respect to Y, shaped and typed as X
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev ({@link SavedStats#of(NormResult)}), or null to
     *     recompute them from X
     * @return dX (X's type), dScale and dBias (shape {@code X.shape[axis:]}, the scale's type or
     *     float32), where dY lives
     */
    public GradResult layerNormBackward(LayerNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Validation.notNull(spec, "spec", "a LayerNorm (LayerNorm.defaults())");
        return rowsBackward(trailingSetup(StatMode.MEAN_VAR, spec.axis(), spec.epsilon(), x, scale, null), dy, x, scale,
                saved);
    }

    /**
     * The backward pass of {@link #rmsNorm(RmsNorm, Tensor, Tensor)}.
     *
     * @param spec the forward's axis and epsilon
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's inverse RMS (mean null), or null to recompute
     * @return dX and dScale; dBias is null
     */
    public GradResult rmsNormBackward(RmsNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Validation.notNull(spec, "spec", "a RmsNorm (RmsNorm.defaults())");
        return rowsBackward(trailingSetup(StatMode.RMS, spec.axis(), spec.epsilon(), x, scale, null), dy, x, scale,
                saved);
    }

    /**
     * The backward pass of {@link #groupNorm(GroupNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's groups, epsilon, affine and memory layout
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev, shape (N, G), or null to recompute
     * @return dX, dScale and dBias (shape [C], or [G] per group)
     */
    public GradResult groupNormBackward(GroupNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Validation.notNull(spec, "spec", "a GroupNorm (GroupNorm.of(numGroups))");
        return rowsBackward(groupSetup(spec.numGroups(), spec.affine() == GroupNorm.Affine.PER_GROUP, spec.epsilon(),
                spec.layout(), x, scale, null), dy, x, scale, saved);
    }

    /**
     * The backward pass of {@link #instanceNorm(InstanceNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's epsilon and memory layout
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev, shape (N, C), or null to recompute
     * @return dX, dScale and dBias (shape [C])
     */
    public GradResult instanceNormBackward(InstanceNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Validation.notNull(spec, "spec", "an InstanceNorm (InstanceNorm.defaults())");
        requireX(x, 2);
        long c = channels(x.shape(), spec.layout());
        return rowsBackward(groupSetup(c, false, spec.epsilon(), spec.layout(), x, scale, null, "[C]"), dy, x, scale,
                saved);
    }

    private GradResult rowsBackward(RowSetup setup, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        requireGradOutput(dy, x);
        Shape statShape = setup.statShape();
        DType st = x.dtype().statistics();
        requireSaved(saved, statShape, setup.rms(), st);
        checkOpen();
        if (setup.plan() != null && x instanceof HostTensor hx && dy instanceof HostTensor hdy) {
            long units = chunkUnits(hx, setup.plan().outerStride());
            if (units > 0) {
                return rowsBackwardChunked(setup, hdy, hx, scale, saved, units);
            }
        }
        DType pt = paramType(x, "scale", scale);
        RowNormPlan plan = setup.plan();
        return failover(() -> {
            try (Call call = new Call(dy, x.dtype())) {
                Backend be = call.backend();
                Buffer dyb = call.in(dy, "dY");
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer dxb = call.out(x.dtype(), x.shape().size());
                Buffer dsb = call.out(pt, setup.affineShape().size());
                Buffer dbb = setup.rms() ? null : call.out(pt, setup.affineShape().size());
                if (plan == null || plan.rows() == 0) {
                    zero(be, dsb);
                    zero(be, dbb);
                } else {
                    Buffer meanb;
                    Buffer invb;
                    if (saved != null) {
                        meanb = setup.rms() ? null : call.in(saved.mean(), "saved.mean");
                        invb = call.in(saved.invStdDev(), "saved.invStdDev");
                    } else {
                        meanb = setup.rms() ? null : call.temp(st, statShape.size());
                        invb = call.temp(st, statShape.size());
                        be.rowNorm(plan, xb, null, null, null, meanb, invb); // statistics only
                    }
                    be.rowNormBackwardWithGrad(plan, setup.grad(), dyb, xb, sb, meanb, invb, dxb, dsb, dbb);
                }
                return call.grad(new Buffer[] {dxb, dsb, dbb},
                        new Shape[] {x.shape(), setup.affineShape(), setup.affineShape()});
            }
        });
    }

    /**
     * The backward pass of {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor)}.
     * In training mode the gradient flows through the batch mean and variance; in inference mode
     * the running statistics are constants ({@code dX = dY * scale / sqrt(runningVar + epsilon)}).
     *
     * @param spec the forward's mode, epsilon and memory layout
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param runningMean inference mode: the running mean used (required); training: ignored
     * @param runningVar inference mode: the running variance used (required); training: ignored
     * @param saved training mode: the forward's batch Mean and InvStdDev (shape [C]), or null to
     *     recompute; inference: ignored
     * @return dX, dScale and dBias (shape [C])
     */
    public GradResult batchNormBackward(BatchNorm spec, Tensor dy, Tensor x, Tensor scale, Tensor runningMean,
            Tensor runningVar, SavedStats saved) {
        Validation.notNull(spec, "spec", "a BatchNorm (BatchNorm.defaults())");
        ChannelSetup cs = batchSetup(spec, x, scale, null, spec.training() ? null : runningMean,
                spec.training() ? null : runningVar);
        requireGradOutput(dy, x);
        Shape cshape = cs.cshape;
        DType st = x.dtype().statistics();
        if (spec.training()) {
            requireSaved(saved, cshape, false, st);
            if (cs.count == 1) {
                throw new IllegalArgumentException("X: expected more than 1 value per channel when training, got"
                        + " input shape " + x.shape() + " (N * D1 * ... = 1)");
            }
        } else if (runningMean == null || runningVar == null) {
            throw new IllegalArgumentException("runningMean and runningVar are required for the inference-mode"
                    + " backward pass: expected tensors of shape " + cshape);
        }
        checkOpen();
        DType pt = spec.training() ? paramType(x, "scale", scale)
                : paramType(x, "scale", scale, "runningMean", runningMean, "runningVar", runningVar);
        if (x instanceof HostTensor hx && dy instanceof HostTensor hdy && cs.plan != null && x.shape().dim(0) > 0) {
            long samples = chunkUnits(hx, x.shape().size() / x.shape().dim(0));
            if (samples > 0) {
                return batchNormBackwardChunked(spec, cs, hdy, hx, scale, runningMean, runningVar, saved, pt,
                        samples);
            }
        }
        long c = cshape.size();
        return failover(() -> {
            try (Call call = new Call(dy, x.dtype())) {
                Backend be = call.backend();
                Buffer dyb = call.in(dy, "dY");
                Buffer xb = call.in(x, "X");
                Buffer sb = call.in(scale, "scale");
                Buffer dxb = call.out(x.dtype(), x.shape().size());
                Buffer dsb = call.out(pt, c);
                Buffer dbb = call.out(pt, c);
                if (c == 0 || cs.count == 0) {
                    zero(be, dsb);
                    zero(be, dbb);
                } else {
                    ChannelPlan plan = cs.plan;
                    Buffer meanb;
                    Buffer invb;
                    if (!spec.training()) {
                        meanb = call.temp(st, c);
                        invb = call.temp(st, c);
                        be.channelRunningStats(plan, call.in(runningMean, "runningMean"), call.in(runningVar,
                                "runningVar"), meanb, invb);
                    } else if (saved != null) {
                        meanb = call.in(saved.mean(), "saved.mean");
                        invb = call.in(saved.invStdDev(), "saved.invStdDev");
                    } else {
                        meanb = call.temp(st, c);
                        invb = call.temp(st, c);
                        be.channelStats(plan, xb, meanb, null, invb, null, null, null, null, null);
                    }
                    be.channelBackwardWithGrad(plan, spec.training(), dyb, xb, meanb, invb, sb, dsb, dbb, dxb);
                }
                return call.grad(new Buffer[] {dxb, dsb, dbb}, new Shape[] {x.shape(), cshape, cshape});
            }
        });
    }

    private static void zero(Backend be, Buffer b) {
        if (b != null && b.elements() > 0) {
            be.fill(b, 0f);
        }
    }

    // ---------------------------------------------------------------- argument checks

    private void requireX(Tensor x, int minRank) {
        if (x == null) {
            throw new IllegalArgumentException("X must not be null");
        }
        if (x.shape().rank() < minRank) {
            throw new IllegalArgumentException("X has shape " + x.shape() + ": expected rank >= " + minRank
                    + (minRank == 2 ? " (N, C, D1, ...)" : ""));
        }
    }

    /**
     * The one place parameter types are decided: scale, bias and the running statistics share one
     * type, float32 or X's type.
     *
     * @return that type (float32 when no parameter is given)
     */
    private static DType paramType(Tensor x, Object... namesAndTensors) {
        DType found = null;
        String first = null;
        for (int i = 0; i < namesAndTensors.length; i += 2) {
            String name = (String) namesAndTensors[i];
            Tensor p = (Tensor) namesAndTensors[i + 1];
            if (p == null) {
                continue;
            }
            if (p.dtype() != DType.FLOAT32 && p.dtype() != x.dtype()) {
                throw new IllegalArgumentException(name + " has dtype " + p.dtype() + ": expected FLOAT32 or X's dtype "
                        + x.dtype());
            }
            if (found == null) {
                found = p.dtype();
                first = name;
            } else if (found != p.dtype()) {
                throw new IllegalArgumentException(name + " has dtype " + p.dtype() + " but " + first + " has " + found
                        + ": expected one parameter dtype (FLOAT32 or X's " + x.dtype() + ")");
            }
        }
        return found == null ? DType.FLOAT32 : found;
    }

    private static void requireGradOutput(Tensor dy, Tensor x) {
        if (dy == null) {
            throw new IllegalArgumentException("dY must not be null: expected the gradient of the loss with respect to"
                    + " Y, shaped as X");
        }
        if (x != null && !dy.shape().equals(x.shape())) {
            throw new IllegalArgumentException("dY has shape " + dy.shape() + ": expected X's shape " + x.shape());
        }
        if (x != null && dy.dtype() != x.dtype()) {
            throw new IllegalArgumentException("dY has dtype " + dy.dtype() + ": expected X's dtype " + x.dtype());
        }
    }

    private static void requireSaved(SavedStats saved, Shape statShape, boolean rms, DType statType) {
        if (saved == null) {
            return;
        }
        if (!rms && saved.mean() == null) {
            throw new IllegalArgumentException("saved.mean is null: expected the forward's Mean of shape " + statShape
                    + " (or pass saved = null to recompute the statistics)");
        }
        if (saved.invStdDev() == null) {
            throw new IllegalArgumentException("saved.invStdDev is null: expected the forward's InvStdDev of shape "
                    + statShape + " (or pass saved = null to recompute the statistics)");
        }
        if (!rms) {
            requireAffine("saved.mean", saved.mean(), statShape, "the forward's Mean");
            requireType("saved.mean", saved.mean(), statType);
        }
        requireAffine("saved.invStdDev", saved.invStdDev(), statShape, "the forward's InvStdDev");
        requireType("saved.invStdDev", saved.invStdDev(), statType);
    }

    private static void requireType(String name, Tensor t, DType expected) {
        if (t.dtype() != expected) {
            throw new IllegalArgumentException(name + " has dtype " + t.dtype() + ": expected " + expected
                    + " (the statistics type of the forward)");
        }
    }

    private static void requireAffine(String name, Tensor t, Shape expected, String what) {
        if (t == null) {
            return;
        }
        if (!sameIgnoringLeadingOnes(t.shape(), expected)) {
            throw new IllegalArgumentException(name + " has shape " + t.shape() + ": expected " + expected + " = "
                    + what);
        }
    }

    /** Accepts {@code [1, 1, 4]} where {@code [4]} is expected (a broadcastable prefix of ones). */
    private static boolean sameIgnoringLeadingOnes(Shape given, Shape expected) {
        if (given.equals(expected)) {
            return true;
        }
        int extra = given.rank() - expected.rank();
        if (extra < 0) {
            return false;
        }
        for (int i = 0; i < extra; i++) {
            if (given.dim(i) != 1) {
                return false;
            }
        }
        for (int i = 0; i < expected.rank(); i++) {
            if (given.dim(extra + i) != expected.dim(i)) {
                return false;
            }
        }
        return true;
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("this NormEngine is closed");
        }
    }

    /**
     * One operator call: picks the backend for the data type, stages inputs into its buffers,
     * allocates outputs, and on the way out either hands outputs to the caller (as device tensors
     * of this engine or host arrays) or releases everything.
     */
    private final class Call implements AutoCloseable {
        private final boolean deviceOutputs;
        private final Backend exec;
        private final List<Buffer> temps = new ArrayList<>();
        private final List<Buffer> outputs = new ArrayList<>();
        private boolean handedOut;

        /**
         * @param placement outputs live where this tensor lives
         * @param dtype the data type, which picks the backend
         */
        Call(Tensor placement, DType dtype) {
            this.deviceOutputs = placement instanceof DeviceTensor;
            this.exec = backendFor(dtype);
        }

        Backend backend() {
            return exec;
        }

        Buffer in(Tensor t, String name) {
            if (t == null) {
                return null;
            }
            if (t instanceof DeviceTensor d) {
                if (d.engine() != NormEngine.this) {
                    throw new IllegalArgumentException(name + " is a DeviceTensor of another engine: expected a"
                            + " tensor of this engine or a HostTensor (upload it to this engine first)");
                }
                if (d.isClosed()) {
                    throw new IllegalStateException(name + " is a closed DeviceTensor" + d.shape());
                }
                if (d.backend() == exec) {
                    return d.buffer();
                }
                // Another backend of this engine computes (AUTO's Java fallback): bring the data over.
                return temp(exec.importHost(d.backend().read(d.buffer(), d.shape())));
            }
            return temp(exec.importHost((HostTensor) t));
        }

        private Buffer temp(Buffer b) {
            temps.add(b);
            return b;
        }

        Buffer out(DType dtype, long elements) {
            Buffer b = exec.allocate(dtype, elements);
            outputs.add(b);
            return b;
        }

        /** A scratch buffer released when the call ends. */
        Buffer temp(DType dtype, long elements) {
            return temp(exec.scratch(dtype, elements));
        }

        NormResult result(Buffer[] buffers, Shape[] shapes) {
            Tensor[] t = tensors(buffers, shapes);
            return new NormResult(t[0], t[1], t[2], t.length > 3 ? t[3] : null, t.length > 4 ? t[4] : null);
        }

        GradResult grad(Buffer[] buffers, Shape[] shapes) {
            Tensor[] t = tensors(buffers, shapes);
            return new GradResult(t[0], t[1], t[2]);
        }

        private Tensor[] tensors(Buffer[] buffers, Shape[] shapes) {
            Tensor[] t = new Tensor[buffers.length];
            for (int i = 0; i < buffers.length; i++) {
                Buffer b = buffers[i];
                if (b == null) {
                    continue;
                }
                if (deviceOutputs) {
                    t[i] = new DeviceTensor(NormEngine.this, exec, b, shapes[i]);
                } else {
                    t[i] = shapes[i].size() == 0 ? HostTensor.zeros(b.dtype(), shapes[i])
                            : exec.exportHost(b, shapes[i]);
                }
            }
            handedOut = deviceOutputs;
            return t;
        }

        @Override
        public void close() {
            temps.forEach(Buffer::close);
            if (!handedOut) {
                outputs.forEach(Buffer::close);
            }
        }
    }

    /**
     * Releases the backend and every tensor this engine still owns; idempotent. Calls running on
     * other threads finish first; calls made after it throw {@link IllegalStateException}.
     */
    @Override
    public void close() {
        stopAsync();
        life.writeLock().lock();
        try {
            if (closed.compareAndSet(false, true)) {
                backend.close();
                Backend f = fallback;
                if (f != null) {
                    f.close();
                }
            }
        } finally {
            life.writeLock().unlock();
        }
    }
}
