package org.normcl;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;

import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.normcl.jvm.JavaBackend;
import org.normcl.opencl.ClRuntime;
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
    private final AtomicBoolean closed = new AtomicBoolean();

    private NormEngine(Backend backend, String selectionReason) {
        this.backend = backend;
        this.selectionReason = selectionReason;
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
        Objects.requireNonNull(options, "options");
        switch (options.backend()) {
            case JAVA:
                return new NormEngine(new JavaBackend(options.effectiveThreads()), "Java backend requested");
            case OPENCL:
                return new NormEngine(ClRuntime.open(options.device()), "OpenCL device requested");
            case AUTO:
            default:
                return createAuto(options);
        }
    }

    private static NormEngine createAuto(EngineOptions options) {
        String why;
        try {
            Backend cl = ClRuntime.open(options.device());
            why = options.device() != null ? "AUTO: OpenCL device matching '" + options.device() + "'"
                    : "AUTO: best OpenCL device (GPU before accelerator before CPU)";
            LOG.info("{} -> {}", why, cl.description());
            return new NormEngine(cl, why);
        } catch (IllegalArgumentException e) {
            // A device the caller named does not exist: that is their error, not a reason to fall back.
            throw e;
        } catch (RuntimeException e) {
            why = "AUTO: no usable OpenCL device (" + e.getMessage() + "); using the Java backend";
            LOG.warn(why);
            return new NormEngine(new JavaBackend(options.effectiveThreads()), why);
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

    // ---------------------------------------------------------------- tensors

    /**
     * Copies a host tensor to the engine's device.
     *
     * @param host the data
     * @return a device tensor owned by this engine; close it when done
     */
    public DeviceTensor upload(HostTensor host) {
        Objects.requireNonNull(host, "host");
        checkOpen();
        Buffer b = backend.allocate(DType.FLOAT32, host.shape().size());
        try {
            if (host.shape().size() > 0) {
                backend.write(b, host.data());
            }
            return new DeviceTensor(this, b, host.shape());
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    /**
     * @param data elements in row-major order
     * @param dims the shape
     * @return a device tensor owned by this engine
     */
    public DeviceTensor upload(float[] data, long... dims) {
        return upload(HostTensor.of(data, dims));
    }

    /**
     * Allocates a device tensor filled with a value.
     *
     * @param shape the shape
     * @param value the fill value
     * @return a device tensor owned by this engine
     */
    public DeviceTensor full(Shape shape, float value) {
        Objects.requireNonNull(shape, "shape");
        checkOpen();
        Buffer b = backend.allocate(DType.FLOAT32, shape.size());
        try {
            if (shape.size() > 0) {
                backend.fill(b, value);
            }
            return new DeviceTensor(this, b, shape);
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    HostTensor download(DeviceTensor t) {
        checkOpen();
        Buffer b = t.buffer();
        float[] out = new float[t.shape().intSize()];
        if (out.length > 0) {
            backend.read(b, out);
        }
        return HostTensor.of(out, t.shape());
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
     * @param x the input, rank &ge; 1
     * @param scale shape {@code X.shape[axis:]}, or null for none
     * @param bias shape {@code X.shape[axis:]}, or null for none
     * @return Y, Mean and InvStdDev (shape {@code X.shape[:axis] + [1]*(rank-axis)})
     */
    public NormResult layerNorm(LayerNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Objects.requireNonNull(spec, "spec");
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
        Objects.requireNonNull(spec, "spec");
        return runRows(trailingSetup(StatMode.RMS, spec.axis(), spec.epsilon(), x, scale, null), x, scale, null);
    }

    /**
     * GroupNormalization (see {@link GroupNorm}).
     *
     * @param spec groups, epsilon and affine layout
     * @param x the input (N, C, D1, ...), rank &ge; 2, C divisible by the groups
     * @param scale shape [C] (per channel) or [numGroups] (per group), or null
     * @param bias same shape as scale, or null
     * @return Y, and Mean and InvStdDev of shape (N, numGroups)
     */
    public NormResult groupNorm(GroupNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Objects.requireNonNull(spec, "spec");
        return runRows(groupSetup(spec, x, scale, bias), x, scale, bias);
    }

    /**
     * InstanceNormalization (see {@link InstanceNorm}).
     *
     * @param spec epsilon
     * @param x the input (N, C, D1, ...), rank &ge; 2
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @return Y, and Mean and InvStdDev of shape (N, C)
     */
    public NormResult instanceNorm(InstanceNorm spec, Tensor x, Tensor scale, Tensor bias) {
        Objects.requireNonNull(spec, "spec");
        return runRows(instanceSetup(spec, x, scale, bias), x, scale, bias);
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
        return new RowSetup(empty ? null : new RowNormPlan(rows, cols, mode, epsilon, 1, cols, 1, scale != null,
                bias != null), Shape.of(statDims), normalized,
                empty ? null : new AffineGradPlan(rows, cols, 1, 1, cols, rms), rms);
    }

    private RowSetup groupSetup(GroupNorm spec, Tensor x, Tensor scale, Tensor bias) {
        requireX(x, 2);
        Shape xs = x.shape();
        long n = xs.dim(0);
        long c = xs.dim(1);
        long g = spec.numGroups();
        if (c % g != 0) {
            throw new IllegalArgumentException("numGroups = " + g + " does not divide the channel count C = " + c
                    + " (X.shape[1] of X" + xs + "): expected a divisor of " + c);
        }
        long spatial = xs.product(2, xs.rank());
        boolean perGroup = spec.affine() == GroupNorm.Affine.PER_GROUP;
        Shape affine = Shape.of(perGroup ? g : c);
        String what = perGroup ? "[G] (per-group affine, ONNX opset 18)" : "[C] (per-channel affine)";
        requireAffine("scale", scale, affine, what);
        requireAffine("bias", bias, affine, what);
        long cpg = c / g;
        long cols = cpg * spatial;
        if (cols == 0) {
            return new RowSetup(null, Shape.of(n, g), affine, null, false);
        }
        float eps = spec.epsilon();
        boolean sc = scale != null;
        boolean bi = bias != null;
        return perGroup
                ? new RowSetup(new RowNormPlan(n * g, cols, StatMode.MEAN_VAR, eps, g, 1, cols, sc, bi), Shape.of(n, g),
                        affine, new AffineGradPlan(n, g, cols, g, 1, false), false)
                : new RowSetup(new RowNormPlan(n * g, cols, StatMode.MEAN_VAR, eps, g, cpg, spatial, sc, bi),
                        Shape.of(n, g), affine, new AffineGradPlan(n, c, spatial, g, cpg, false), false);
    }

    private RowSetup instanceSetup(InstanceNorm spec, Tensor x, Tensor scale, Tensor bias) {
        requireX(x, 2);
        Shape xs = x.shape();
        long n = xs.dim(0);
        long c = xs.dim(1);
        long spatial = xs.product(2, xs.rank());
        Shape affine = Shape.of(c);
        requireAffine("scale", scale, affine, "[C]");
        requireAffine("bias", bias, affine, "[C]");
        if (spatial == 0 || c == 0) {
            return new RowSetup(null, Shape.of(n, c), affine, null, false);
        }
        return new RowSetup(new RowNormPlan(n * c, spatial, StatMode.MEAN_VAR, spec.epsilon(), c, 1, spatial,
                scale != null, bias != null), Shape.of(n, c), affine, new AffineGradPlan(n, c, spatial, c, 1, false),
                false);
    }

    /**
     * BatchNormalization (see {@link BatchNorm} for both modes and the running-statistic update).
     *
     * @param spec mode, epsilon, momentum and convention
     * @param x the input (N, C, D1, ...), rank &ge; 2
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @param runningMean shape [C]; required in inference, optional in training
     * @param runningVar shape [C]; required in inference, optional in training (given together with the mean)
     * @return Y; the mean and inverse standard deviation used, shape [C]; in training with running
     *     statistics given, the updated running mean and variance
     */
    public NormResult batchNorm(BatchNorm spec, Tensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar) {
        Objects.requireNonNull(spec, "spec");
        requireX(x, 2);
        Shape xs = x.shape();
        long c = xs.dim(1);
        Shape cs = Shape.of(c);
        requireAffine("scale", scale, cs, "[C]");
        requireAffine("bias", bias, cs, "[C]");
        requireAffine("runningMean", runningMean, cs, "[C]");
        requireAffine("runningVar", runningVar, cs, "[C]");
        if ((runningMean == null) != (runningVar == null)) {
            throw new IllegalArgumentException((runningMean == null ? "runningMean" : "runningVar")
                    + " is null but the other running statistic is given: expected both or neither");
        }
        if (!spec.training() && runningMean == null) {
            throw new IllegalArgumentException(
                    "runningMean and runningVar are required in inference mode: expected tensors of shape " + cs);
        }
        long outer = xs.dim(0);
        long inner = xs.product(2, xs.rank());
        long count = outer * inner;
        if (spec.training() && count == 1) {
            throw new IllegalArgumentException("X: expected more than 1 value per channel when training, got input"
                    + " shape " + xs + " (N * D1 * ... = 1)");
        }
        checkOpen();
        ChannelPlan plan = c == 0 ? null : new ChannelPlan(outer, c, inner, StatMode.MEAN_VAR, spec.epsilon());
        try (Call call = new Call(x)) {
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer bb = call.in(bias, "bias");
            Buffer rmb = call.in(runningMean, "runningMean");
            Buffer rvb = call.in(runningVar, "runningVar");
            Buffer yb = call.out(xs.size());
            Buffer meanb = call.out(c);
            Buffer invb = call.out(c);
            Buffer rmOut = null;
            Buffer rvOut = null;
            if (spec.training()) {
                boolean update = runningMean != null;
                rmOut = update ? call.out(c) : null;
                rvOut = update ? call.out(c) : null;
                if (plan != null && count == 0) {
                    // An empty batch has no statistics: NaN saved stats, running stats unchanged.
                    backend.fill(meanb, Float.NaN);
                    backend.fill(invb, Float.NaN);
                    if (update) {
                        backend.copy(rmb, rmOut);
                        backend.copy(rvb, rvOut);
                    }
                } else if (plan != null) {
                    RunningUpdate upd = update ? spec.runningUpdate() : null;
                    Buffer meanLo = call.temp(c);
                    backend.channelStats(plan, xb, meanb, meanLo, invb, upd, rmb, rvb, rmOut, rvOut);
                    backend.channelApply(plan, xb, meanb, meanLo, invb, sb, bb, yb);
                }
            } else if (plan != null) {
                backend.copy(rmb, meanb);
                backend.channelInvStd(plan, rvb, invb);
                if (count > 0) {
                    backend.channelApply(plan, xb, meanb, null, invb, sb, bb, yb);
                }
            }
            return call.result(new Buffer[] {yb, meanb, invb, rmOut, rvOut},
                    new Shape[] {xs, cs, cs, cs, cs});
        }
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
        Objects.requireNonNull(spec, "spec");
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
        if (outer == 1) {
            RowNormPlan plan = inner == 0 || channels == 0 ? null
                    : new RowNormPlan(channels, inner, StatMode.MEAN_VAR_EPS_OUTSIDE, spec.epsilon(), 1, inner, 1,
                            false, false);
            return runRows(new RowSetup(plan, statShape, Shape.of(inner), null, false), x, null, null);
        }
        checkOpen();
        try (Call call = new Call(x)) {
            Buffer xb = call.in(x, "X");
            Buffer yb = call.out(xs.size());
            Buffer meanb = call.out(channels);
            Buffer invb = call.out(channels);
            if (channels > 0) {
                if (outer * inner == 0) {
                    backend.fill(meanb, Float.NaN);
                    backend.fill(invb, Float.NaN);
                } else {
                    ChannelPlan plan = new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR_EPS_OUTSIDE,
                            spec.epsilon());
                    Buffer meanLo = call.temp(channels);
                    backend.channelStats(plan, xb, meanb, meanLo, invb, null, null, null, null, null);
                    backend.channelApply(plan, xb, meanb, meanLo, invb, null, null, yb);
                }
            }
            return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {xs, statShape, statShape});
        }
    }

    /** Runs a row normalization; a null plan means the rows are empty (zero columns). */
    private NormResult runRows(RowSetup setup, Tensor x, Tensor scale, Tensor bias) {
        checkOpen();
        RowNormPlan plan = setup.plan();
        Shape statShape = setup.statShape();
        try (Call call = new Call(x)) {
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer bb = call.in(bias, "bias");
            Buffer yb = call.out(x.shape().size());
            Buffer meanb = setup.rms() ? null : call.out(statShape.size());
            Buffer invb = call.out(statShape.size());
            if (statShape.size() > 0) {
                if (plan == null) {
                    // Rows of zero elements have no statistics.
                    if (meanb != null) {
                        backend.fill(meanb, Float.NaN);
                    }
                    backend.fill(invb, Float.NaN);
                } else {
                    backend.rowNorm(plan, xb, sb, bb, yb, meanb, invb);
                }
            }
            return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {x.shape(), statShape, statShape});
        }
    }

    // ---------------------------------------------------------------- mergeable statistics

    /**
     * The per-channel moments of a batch (or of one shard of it), for merging across devices or
     * hosts with {@link ChannelMoments#merge(java.util.List)} and normalizing with
     * {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor, ChannelMoments)}.
     *
     * @param x the input (N, C, D1, ...), rank &ge; 2
     * @return count N * D1 * ..., and the mean and M2 of each of the C channels
     */
    public ChannelMoments batchNormMoments(Tensor x) {
        requireX(x, 2);
        Shape xs = x.shape();
        long inner = xs.product(2, xs.rank());
        return moments(x, xs.dim(0), xs.dim(1), inner);
    }

    /**
     * The per-(sample, group) moments of a group normalization, for merging partial reductions
     * of the same samples (for example an image split spatially across devices).
     *
     * @param spec the number of groups
     * @param x the input (N, C, D1, ...)
     * @return count (C / G) * D1 * ..., and the mean and M2 of each of the N * G groups
     */
    public ChannelMoments groupNormMoments(GroupNorm spec, Tensor x) {
        Objects.requireNonNull(spec, "spec");
        RowSetup setup = groupSetup(spec, x, null, null);
        long rows = setup.statShape().size();
        return moments(x, 1, rows, setup.plan() == null ? 0 : setup.plan().cols());
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
            try (Call call = new Call(null)) {
                Buffer xb = call.in(x, "X");
                Buffer mb = call.temp(channels);
                Buffer qb = call.temp(channels);
                backend.channelMoments(new ChannelPlan(outer, channels, inner, StatMode.MEAN_VAR, 1f), xb, mb, qb);
                float[] mf = new float[mean.length];
                float[] qf = new float[mean.length];
                backend.read(mb, mf);
                backend.read(qb, qf);
                for (int c = 0; c < mean.length; c++) {
                    mean[c] = mf[c];
                    m2[c] = qf[c];
                }
            }
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
     * @param x this shard, (n, C, D1, ...)
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @param runningMean shape [C], or null
     * @param runningVar shape [C], or null (given together with the mean)
     * @param moments the merged moments of the whole batch, C slices
     * @return as {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor)}
     */
    public NormResult batchNorm(BatchNorm spec, Tensor x, Tensor scale, Tensor bias, Tensor runningMean,
            Tensor runningVar, ChannelMoments moments) {
        Objects.requireNonNull(spec, "spec");
        if (moments == null) {
            return batchNorm(spec, x, scale, bias, runningMean, runningVar);
        }
        if (!spec.training()) {
            throw new IllegalArgumentException("moments apply to training mode: expected spec.withTraining(true)");
        }
        requireX(x, 2);
        Shape xs = x.shape();
        long c = xs.dim(1);
        Shape cs = Shape.of(c);
        requireAffine("scale", scale, cs, "[C]");
        requireAffine("bias", bias, cs, "[C]");
        requireAffine("runningMean", runningMean, cs, "[C]");
        requireAffine("runningVar", runningVar, cs, "[C]");
        if ((runningMean == null) != (runningVar == null)) {
            throw new IllegalArgumentException((runningMean == null ? "runningMean" : "runningVar")
                    + " is null but the other running statistic is given: expected both or neither");
        }
        if (moments.slices() != c) {
            throw new IllegalArgumentException("moments has " + moments.slices() + " channels: expected C = " + c);
        }
        if (moments.count() == 1) {
            throw new IllegalArgumentException("moments: expected more than 1 value per channel when training, got"
                    + " a count of 1");
        }
        checkOpen();
        ChannelPlan plan = c == 0 ? null
                : new ChannelPlan(xs.dim(0), c, xs.product(2, xs.rank()), StatMode.MEAN_VAR, spec.epsilon());
        try (Call call = new Call(x)) {
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer bb = call.in(bias, "bias");
            Buffer yb = call.out(xs.size());
            Buffer meanb = call.out(c);
            Buffer invb = call.out(c);
            boolean update = runningMean != null;
            Buffer rmOut = update ? call.out(c) : null;
            Buffer rvOut = update ? call.out(c) : null;
            if (c > 0) {
                float[] meanHi = moments.meanHi();
                float[] inv = moments.invStd(spec.epsilon());
                if (moments.count() == 0) {
                    java.util.Arrays.fill(meanHi, Float.NaN);
                    java.util.Arrays.fill(inv, Float.NaN);
                }
                backend.write(meanb, meanHi);
                backend.write(invb, inv);
                if (update) {
                    float[] rm = runningMean.toHost().data();
                    float[] rv = runningVar.toHost().data();
                    if (moments.count() > 0) {
                        RunningUpdate u = spec.runningUpdate();
                        double[] var = moments.variance(u.unbiased());
                        float w = u.batchWeight();
                        float[] newRm = new float[rm.length];
                        float[] newRv = new float[rv.length];
                        for (int i = 0; i < rm.length; i++) {
                            newRm[i] = rm[i] * (1f - w) + meanHi[i] * w;
                            newRv[i] = rv[i] * (1f - w) + (float) var[i] * w;
                        }
                        rm = newRm;
                        rv = newRv;
                    }
                    backend.write(rmOut, rm);
                    backend.write(rvOut, rv);
                }
                if (xs.size() > 0) {
                    Buffer lo = call.temp(c);
                    backend.write(lo, moments.meanLo());
                    backend.channelApply(plan, xb, meanb, lo, invb, sb, bb, yb);
                }
            }
            return call.result(new Buffer[] {yb, meanb, invb, rmOut, rvOut}, new Shape[] {xs, cs, cs, cs, cs});
        }
    }

    /**
     * Group normalization with statistics merged by the caller (see
     * {@link #groupNormMoments(GroupNorm, Tensor)}).
     *
     * @param spec groups, epsilon and affine layout
     * @param x the input (N, C, D1, ...)
     * @param scale per the affine layout, or null
     * @param bias per the affine layout, or null
     * @param moments N * G slices
     * @return Y, and the Mean and InvStdDev used, shape (N, G)
     */
    public NormResult groupNorm(GroupNorm spec, Tensor x, Tensor scale, Tensor bias, ChannelMoments moments) {
        Objects.requireNonNull(spec, "spec");
        if (moments == null) {
            return groupNorm(spec, x, scale, bias);
        }
        RowSetup setup = groupSetup(spec, x, scale, bias);
        Shape statShape = setup.statShape();
        if (moments.slices() != statShape.size()) {
            throw new IllegalArgumentException("moments has " + moments.slices() + " slices: expected N * G = "
                    + statShape.size());
        }
        checkOpen();
        try (Call call = new Call(x)) {
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer bb = call.in(bias, "bias");
            Buffer yb = call.out(x.shape().size());
            Buffer meanb = call.out(statShape.size());
            Buffer invb = call.out(statShape.size());
            if (statShape.size() > 0) {
                boolean empty = moments.count() == 0;
                float[] m = moments.meanHi();
                float[] inv = moments.invStd(spec.epsilon());
                if (empty) {
                    java.util.Arrays.fill(m, Float.NaN);
                    java.util.Arrays.fill(inv, Float.NaN);
                }
                backend.write(meanb, m);
                backend.write(invb, inv);
                if (setup.plan() != null) {
                    backend.rowApply(setup.plan(), xb, meanb, invb, sb, bb, yb);
                }
            }
            return call.result(new Buffer[] {yb, meanb, invb}, new Shape[] {x.shape(), statShape, statShape});
        }
    }

    // ---------------------------------------------------------------- backward

    /**
     * The backward pass of {@link #layerNorm(LayerNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's axis and epsilon
     * @param dy the gradient of the loss with respect to Y, shaped as X
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev ({@link SavedStats#of(NormResult)}), or null to
     *     recompute them from X
     * @return dX, dScale and dBias (shape {@code X.shape[axis:]}), where dY lives
     */
    public GradResult layerNormBackward(LayerNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Objects.requireNonNull(spec, "spec");
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
        Objects.requireNonNull(spec, "spec");
        return rowsBackward(trailingSetup(StatMode.RMS, spec.axis(), spec.epsilon(), x, scale, null), dy, x, scale,
                saved);
    }

    /**
     * The backward pass of {@link #groupNorm(GroupNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's groups, epsilon and affine layout
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev, shape (N, G), or null to recompute
     * @return dX, dScale and dBias (shape [C], or [G] per group)
     */
    public GradResult groupNormBackward(GroupNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Objects.requireNonNull(spec, "spec");
        return rowsBackward(groupSetup(spec, x, scale, null), dy, x, scale, saved);
    }

    /**
     * The backward pass of {@link #instanceNorm(InstanceNorm, Tensor, Tensor, Tensor)}.
     *
     * @param spec the forward's epsilon
     * @param dy the gradient with respect to Y
     * @param x the forward's input
     * @param scale the forward's scale, or null
     * @param saved the forward's Mean and InvStdDev, shape (N, C), or null to recompute
     * @return dX, dScale and dBias (shape [C])
     */
    public GradResult instanceNormBackward(InstanceNorm spec, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        Objects.requireNonNull(spec, "spec");
        return rowsBackward(instanceSetup(spec, x, scale, null), dy, x, scale, saved);
    }

    private GradResult rowsBackward(RowSetup setup, Tensor dy, Tensor x, Tensor scale, SavedStats saved) {
        requireGradOutput(dy, x);
        Shape statShape = setup.statShape();
        requireSaved(saved, statShape, setup.rms());
        checkOpen();
        RowNormPlan plan = setup.plan();
        try (Call call = new Call(dy)) {
            Buffer dyb = call.in(dy, "dY");
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer dxb = call.out(x.shape().size());
            Buffer dsb = call.out(setup.affineShape().size());
            Buffer dbb = setup.rms() ? null : call.out(setup.affineShape().size());
            if (plan == null || plan.rows() == 0) {
                zero(dsb);
                zero(dbb);
            } else {
                Buffer meanb;
                Buffer invb;
                if (saved != null) {
                    meanb = setup.rms() ? null : call.in(saved.mean(), "saved.mean");
                    invb = call.in(saved.invStdDev(), "saved.invStdDev");
                } else {
                    meanb = setup.rms() ? null : call.temp(statShape.size());
                    invb = call.temp(statShape.size());
                    backend.rowNorm(plan, xb, null, null, null, meanb, invb); // statistics only
                }
                backend.rowNormBackward(plan, dyb, xb, sb, meanb, invb, dxb);
                backend.affineGrad(setup.grad(), dyb, xb, meanb, invb, dsb, dbb);
            }
            return call.grad(new Buffer[] {dxb, dsb, dbb},
                    new Shape[] {x.shape(), setup.affineShape(), setup.affineShape()});
        }
    }

    /**
     * The backward pass of {@link #batchNorm(BatchNorm, Tensor, Tensor, Tensor, Tensor, Tensor)}.
     * In training mode the gradient flows through the batch mean and variance; in inference mode
     * the running statistics are constants ({@code dX = dY * scale / sqrt(runningVar + epsilon)}).
     *
     * @param spec the forward's mode and epsilon
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
        Objects.requireNonNull(spec, "spec");
        requireX(x, 2);
        requireGradOutput(dy, x);
        Shape xs = x.shape();
        long c = xs.dim(1);
        Shape cs = Shape.of(c);
        requireAffine("scale", scale, cs, "[C]");
        long outer = xs.dim(0);
        long inner = xs.product(2, xs.rank());
        long count = outer * inner;
        if (spec.training()) {
            requireSaved(saved, cs, false);
            if (count == 1) {
                throw new IllegalArgumentException("X: expected more than 1 value per channel when training, got"
                        + " input shape " + xs + " (N * D1 * ... = 1)");
            }
        } else {
            requireAffine("runningMean", runningMean, cs, "[C]");
            requireAffine("runningVar", runningVar, cs, "[C]");
            if (runningMean == null || runningVar == null) {
                throw new IllegalArgumentException("runningMean and runningVar are required for the inference-mode"
                        + " backward pass: expected tensors of shape " + cs);
            }
        }
        checkOpen();
        try (Call call = new Call(dy)) {
            Buffer dyb = call.in(dy, "dY");
            Buffer xb = call.in(x, "X");
            Buffer sb = call.in(scale, "scale");
            Buffer dxb = call.out(xs.size());
            Buffer dsb = call.out(c);
            Buffer dbb = call.out(c);
            if (c == 0 || count == 0) {
                zero(dsb);
                zero(dbb);
            } else {
                ChannelPlan plan = new ChannelPlan(outer, c, inner, StatMode.MEAN_VAR, spec.epsilon());
                Buffer meanb;
                Buffer invb;
                if (!spec.training()) {
                    meanb = call.in(runningMean, "runningMean");
                    invb = call.temp(c);
                    backend.channelInvStd(plan, call.in(runningVar, "runningVar"), invb);
                } else if (saved != null) {
                    meanb = call.in(saved.mean(), "saved.mean");
                    invb = call.in(saved.invStdDev(), "saved.invStdDev");
                } else {
                    meanb = call.temp(c);
                    invb = call.temp(c);
                    backend.channelStats(plan, xb, meanb, null, invb, null, null, null, null, null);
                }
                backend.affineGrad(new AffineGradPlan(outer, c, inner, 0, 1, false), dyb, xb, meanb, invb, dsb, dbb);
                backend.channelBackward(plan, dyb, xb, meanb, invb, sb, spec.training() ? dsb : null,
                        spec.training() ? dbb : null, dxb);
            }
            return call.grad(new Buffer[] {dxb, dsb, dbb}, new Shape[] {xs, cs, cs});
        }
    }

    private void zero(Buffer b) {
        if (b != null && b.elements() > 0) {
            backend.fill(b, 0f);
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
        requireSupported("X", x);
    }

    private static void requireGradOutput(Tensor dy, Tensor x) {
        if (dy == null) {
            throw new IllegalArgumentException("dY must not be null: expected the gradient of the loss with respect to"
                    + " Y, shaped as X");
        }
        requireSupported("dY", dy);
        if (x != null && !dy.shape().equals(x.shape())) {
            throw new IllegalArgumentException("dY has shape " + dy.shape() + ": expected X's shape " + x.shape());
        }
    }

    private static void requireSaved(SavedStats saved, Shape statShape, boolean rms) {
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
        }
        requireAffine("saved.invStdDev", saved.invStdDev(), statShape, "the forward's InvStdDev");
    }

    private static void requireSupported(String name, Tensor t) {
        if (t.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException(name + " has dtype " + t.dtype() + ": expected FLOAT32");
        }
    }

    private static void requireAffine(String name, Tensor t, Shape expected, String what) {
        if (t == null) {
            return;
        }
        requireSupported(name, t);
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
     * One operator call: stages inputs into buffers, allocates outputs, and on the way out either
     * hands outputs to the caller (as device tensors or host arrays) or releases everything.
     */
    private final class Call implements AutoCloseable {
        private final boolean deviceOutputs;
        private final List<Buffer> temps = new ArrayList<>();
        private final List<Buffer> outputs = new ArrayList<>();
        private boolean handedOut;

        /** @param placement outputs live where this tensor lives */
        Call(Tensor placement) {
            this.deviceOutputs = placement instanceof DeviceTensor;
        }

        /** A scratch buffer released when the call ends. */
        Buffer temp(long elements) {
            Buffer b = backend.scratch(DType.FLOAT32, elements);
            temps.add(b);
            return b;
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
                return d.buffer();
            }
            Buffer b = backend.importHost(((HostTensor) t).data());
            temps.add(b);
            return b;
        }

        Buffer out(long elements) {
            Buffer b = backend.allocate(DType.FLOAT32, elements);
            outputs.add(b);
            return b;
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
                if (buffers[i] == null) {
                    continue;
                }
                if (deviceOutputs) {
                    t[i] = new DeviceTensor(NormEngine.this, buffers[i], shapes[i]);
                } else {
                    float[] data = shapes[i].size() == 0 ? new float[0] : backend.exportHost(buffers[i]);
                    t[i] = HostTensor.of(data, shapes[i]);
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

    /** Releases the backend and every tensor this engine still owns; idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            backend.close();
        }
    }
}
