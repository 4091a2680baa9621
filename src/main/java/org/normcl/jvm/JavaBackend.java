package org.normcl.jvm;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HalfFloats;
import org.normcl.HostTensor;
import org.normcl.Shape;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;

/**
 * The pure-Java backend: the same primitives as the OpenCL kernels, multi-threaded over rows and
 * channels. float32 data runs on {@link FloatKernels} and {@link JavaBackward}; float16 and
 * bfloat16 are widened to float32 for the computation and rounded to nearest even on the way
 * back, as the kernels do; float64 runs on {@link DoubleKernels}.
 */
public final class JavaBackend implements Backend {
    /** The 16-bit conversions of the fastest kernels (stateless, shared by every thread). */
    private static final RowKernels CONVERSIONS = RowKernels.best();

    private final Parallel parallel;
    /** Whether 16-bit row normalizations go a block of rows at a time ({@link #rowNormInBlocks}). */
    private final boolean rowBlocks;
    /** Buffers handed out and not yet closed: closing the backend closes them, as the OpenCL backend does. */
    private final Set<JavaBuffer> live = ConcurrentHashMap.newKeySet();
    /** Arrays of closed buffers, for the next allocation of the same size. */
    private final ArrayPool pool = new ArrayPool(ArrayPool.capFor(Runtime.getRuntime().maxMemory()));
    /**
     * Temporaries of the backward passes and the channel statistics (accumulators, partial sums and
     * moments), taken and given back within a call: new ones would land on heap pages the JVM has not
     * touched since it grew the heap, a page fault per 4 KiB (layer norm backward 512x65536 with
     * -Xmn3g: 40-47 ms, 30 ms reusing them). Kept apart from {@link #pool}, so that they never push a
     * buffer's array out of it, and capped lower.
     */
    private final ArrayPool scratch = new ArrayPool(ArrayPool.capFor(Runtime.getRuntime().maxMemory()) / 4);
    /**
     * The widened copies of 16-bit buffers ({@link Views}), taken and given back within a call: new
     * ones per call landed on untouched heap pages whenever the heap had grown (bfloat16 layer norm
     * 512x65536: 1.25-1.53 s a call instead of 55 ms, after other shapes had run). Apart from the
     * other two pools for the same reason as {@link #scratch}. Room for three copies of a 128 MiB
     * float tensor at the default heap of a 24 GiB machine (the backward passes widen dY and X and
     * write dX, three at once): with room for two, bfloat16 layer norm backward 512x65536 took
     * 674-778 ms a call instead of 45-55 (a new dX array every call, on fresh pages).
     */
    private final ArrayPool views = new ArrayPool(ArrayPool.capFor(Runtime.getRuntime().maxMemory()));

    /**
     * @param threads worker threads (1 runs on the caller's thread)
     */
    public JavaBackend(int threads) {
        this(threads, true);
    }

    /** @param rowBlocks false converts 16-bit tensors whole (tests compare the two: the same bits) */
    JavaBackend(int threads, boolean rowBlocks) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads = " + threads + ": expected >= 1");
        }
        this.parallel = new Parallel(threads);
        this.rowBlocks = rowBlocks;
    }

    @Override
    public BackendKind kind() {
        return BackendKind.JAVA;
    }

    @Override
    public String description() {
        return "Java (" + parallel.threads() + " thread" + (parallel.threads() == 1 ? "" : "s") + ")";
    }

    @Override
    public Optional<DeviceInfo> device() {
        return Optional.empty();
    }

    @Override
    public boolean supports(DType dtype) {
        return true;
    }

    // ---------------------------------------------------------------- memory

    @Override
    public Buffer allocate(DType dtype, long elements) {
        if (elements > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the Java backend holds at most " + (Integer.MAX_VALUE - 8)
                    + " elements per tensor; asked for " + elements);
        }
        Object array = pool.take(dtype, (int) elements);
        if (array == null) {
            array = HostTensor.zeros(dtype, Shape.of(elements)).array();
        }
        return new JavaBuffer(array, dtype, live, pool);
    }

    @Override
    public Buffer scratch(DType dtype, long elements) {
        return allocate(dtype, elements);
    }

    @Override
    public void write(Buffer dst, HostTensor src) {
        JavaBuffer d = (JavaBuffer) dst;
        if (d.dtype() != src.dtype()) {
            throw new IllegalArgumentException("cannot write " + src.dtype() + " data into a " + d.dtype() + " buffer");
        }
        System.arraycopy(src.array(), 0, d.array(), 0, (int) d.elements());
    }

    @Override
    public HostTensor read(Buffer src, Shape shape) {
        JavaBuffer s = (JavaBuffer) src;
        HostTensor out = HostTensor.zeros(s.dtype(), shape);
        System.arraycopy(s.array(), 0, out.array(), 0, (int) s.elements());
        return out;
    }

    @Override
    public Buffer importHost(HostTensor data) {
        return new JavaBuffer(data.array(), data.dtype(), live, null);
    }

    @Override
    public HostTensor exportHost(Buffer buffer, Shape shape) {
        JavaBuffer b = (JavaBuffer) buffer;
        Object a = b.escape(); // the host tensor aliases it: never reused
        long[] dims = shape.dims();
        switch (b.dtype()) {
            case FLOAT32:
                return HostTensor.of((float[]) a, shape);
            case FLOAT64:
                return HostTensor.ofDoubles((double[]) a, dims);
            default:
                return HostTensor.ofBits((short[]) a, b.dtype(), dims);
        }
    }

    @Override
    public void copy(Buffer src, Buffer dst) {
        System.arraycopy(((JavaBuffer) src).array(), 0, ((JavaBuffer) dst).array(), 0, (int) src.elements());
    }

    @Override
    public void fill(Buffer dst, float value) {
        Object a = ((JavaBuffer) dst).array();
        switch (dst.dtype()) {
            case FLOAT32:
                Arrays.fill((float[]) a, value);
                break;
            case FLOAT64:
                Arrays.fill((double[]) a, value);
                break;
            case FLOAT16:
                Arrays.fill((short[]) a, HalfFloats.floatToHalf(value));
                break;
            default:
                Arrays.fill((short[]) a, HalfFloats.floatToBfloat16(value));
        }
    }

    // ---------------------------------------------------------------- type views

    private static boolean f64(Buffer b) {
        return b != null && b.dtype() == DType.FLOAT64;
    }

    /**
     * The arrays one primitive computes on: the buffers' own arrays where the type matches, or
     * converted copies (16-bit data widened to float32, float32 parameters widened to float64 for
     * float64 data), which are rounded back into their buffers when the primitive is done. The
     * 16-bit copies come from {@link #views} and go back to it; the conversions run on the
     * backend's threads, a vector at a time ({@link RowKernels#widen}, {@link RowKernels#round}).
     */
    private final class Views implements AutoCloseable {
        private final List<Runnable> writeBacks = new ArrayList<>();
        private final List<float[]> taken = new ArrayList<>();

        float[] floats(Buffer b) {
            return floats(b, false);
        }

        float[] floatsOut(Buffer b) {
            return floats(b, true);
        }

        private float[] floats(Buffer b, boolean output) {
            if (b == null) {
                return null;
            }
            JavaBuffer jb = (JavaBuffer) b;
            if (jb.dtype() == DType.FLOAT32) {
                return (float[]) jb.array();
            }
            short[] bits = (short[]) jb.array();
            boolean half = jb.dtype() == DType.FLOAT16;
            float[] f = takeView(bits.length);
            taken.add(f);
            if (!output) {
                parallel.forRange(f.length, 1,
                        (from, to) -> CONVERSIONS.widen(bits, (int) from, f, (int) from, (int) (to - from), half));
            } else {
                // Zeroed, as a new array was: the primitive's results start from nothing.
                parallel.forRange(f.length, 1, (from, to) -> Arrays.fill(f, (int) from, (int) to, 0f));
                writeBacks.add(() -> parallel.forRange(f.length, 1,
                        (from, to) -> CONVERSIONS.round(f, (int) from, bits, (int) from, (int) (to - from), half)));
            }
            return f;
        }

        double[] doubles(Buffer b) {
            return doubles(b, false);
        }

        double[] doublesOut(Buffer b) {
            return doubles(b, true);
        }

        private double[] doubles(Buffer b, boolean output) {
            if (b == null) {
                return null;
            }
            JavaBuffer jb = (JavaBuffer) b;
            if (jb.dtype() == DType.FLOAT64) {
                return (double[]) jb.array();
            }
            float[] f = floats(b, false);
            double[] d = new double[f.length];
            if (!output) {
                for (int i = 0; i < d.length; i++) {
                    d[i] = f[i];
                }
            } else {
                float[] target = jb.dtype() == DType.FLOAT32 ? (float[]) jb.array() : null;
                writeBacks.add(() -> {
                    if (target != null) {
                        for (int i = 0; i < d.length; i++) {
                            target[i] = (float) d[i];
                        }
                    } else {
                        short[] bits = (short[]) jb.array();
                        boolean half = jb.dtype() == DType.FLOAT16;
                        for (int i = 0; i < d.length; i++) {
                            float v = (float) d[i];
                            bits[i] = half ? HalfFloats.floatToHalf(v) : HalfFloats.floatToBfloat16(v);
                        }
                    }
                });
            }
            return d;
        }

        @Override
        public void close() {
            try {
                writeBacks.forEach(Runnable::run);
            } finally {
                taken.forEach(JavaBackend.this::giveView);
            }
        }
    }

    // ---------------------------------------------------------------- primitives

    @Override
    public void rowNorm(RowNormPlan p, Buffer x, Buffer scale, Buffer bias, Buffer y, Buffer mean, Buffer invStd) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.rowNorm(parallel, p, v.doubles(x), v.doubles(scale), v.doubles(bias), v.doublesOut(y),
                        v.doublesOut(mean), v.doublesOut(invStd));
            } else if (rowBlocks && sixteenBit(x) && y != null && y.dtype() == x.dtype() && p.isContiguous()) {
                rowNormInBlocks(p, (JavaBuffer) x, v.floats(scale), v.floats(bias), (JavaBuffer) y, v.floatsOut(mean),
                        v.floatsOut(invStd));
            } else {
                FastFloatKernels.rowNorm(parallel, p, v.floats(x), v.floats(scale), v.floats(bias), v.floatsOut(y),
                        v.floatsOut(mean), v.floatsOut(invStd));
            }
        }
    }

    private static boolean sixteenBit(Buffer b) {
        return b.dtype() == DType.FLOAT16 || b.dtype() == DType.BFLOAT16;
    }

    /** Values of X widened at a time by {@link #rowNormInBlocks}: X and Y of a block stay in L2. */
    static final int BLOCK_VALUES = 1 << 15;

    /** One thread: the blocks' own row normalizations run inside the backend's tasks. */
    private static final Parallel ONE_THREAD = new Parallel(1);

    /**
     * Row normalization of 16-bit X into 16-bit Y a block of rows at a time: each task widens a
     * block into float32 arrays that stay in cache, normalizes it on its own thread and rounds the
     * result into Y, so X and Y cross memory once, as in float32, instead of being converted whole
     * before and after (six times the bytes). Rows and their statistics are those of the whole
     * call, bit for bit (a row's result depends on the row alone); a block is a multiple of the
     * plan's groups, so the affine entries of its rows are those of the whole tensor's.
     */
    private void rowNormInBlocks(RowNormPlan p, JavaBuffer x, float[] scale, float[] bias, JavaBuffer y,
            float[] mean, float[] inv) {
        int cols = Math.toIntExact(p.cols());
        int rows = Math.toIntExact(p.rows());
        int groups = (int) p.groups();
        int fit = Math.max(1, BLOCK_VALUES / cols);
        int blockRows = Math.max(groups, fit - fit % groups);
        short[] xs = (short[]) x.array();
        short[] ys = (short[]) y.array();
        boolean half = x.dtype() == DType.FLOAT16;
        long blocks = (rows + (long) blockRows - 1) / blockRows;
        parallel.forRange(blocks, (long) blockRows * cols, (b0, b1) -> {
            int values = blockRows * cols;
            float[] xf = takeView(values);
            float[] yf = takeView(values);
            float[] meanB = mean == null ? null : new float[blockRows];
            float[] invB = inv == null ? null : new float[blockRows];
            try {
                for (long b = b0; b < b1; b++) {
                    int r0 = (int) (b * blockRows);
                    int n = Math.min(blockRows, rows - r0);
                    int off = r0 * cols;
                    CONVERSIONS.widen(xs, off, xf, 0, n * cols, half);
                    FastFloatKernels.rowNorm(ONE_THREAD, p.withRows(n), xf, scale, bias, yf, meanB, invB);
                    CONVERSIONS.round(yf, 0, ys, off, n * cols, half);
                    if (meanB != null) {
                        System.arraycopy(meanB, 0, mean, r0, n);
                    }
                    if (invB != null) {
                        System.arraycopy(invB, 0, inv, r0, n);
                    }
                }
            } finally {
                giveView(xf);
                giveView(yf);
            }
        });
    }

    /**
     * @return whether {@link #rowBackwardInBlocks} takes this backward: 16-bit dY, X and dX alike, in
     *     contiguous rows (layer and RMS norm, channels-first group and instance norm)
     */
    private boolean blocksBackward(RowNormPlan p, Buffer dy, Buffer x, Buffer dx) {
        return rowBlocks && sixteenBit(x) && dy.dtype() == x.dtype() && dx != null && dx.dtype() == x.dtype()
                && JavaBackward.RowLayout.of(p) != null;
    }

    /**
     * Rows of a channels-first block of {@link #rowBackwardInBlocks}, at least: each such block pays
     * for its own parameter-gradient sums (zeroed, flushed and merged per block).
     */
    private static final int MIN_BACKWARD_BLOCK_ROWS = 8;

    /** Row blocks' parameter-gradient sums are added in at most this many groups of consecutive blocks. */
    private static final int GRAD_GROUPS = 16;

    /**
     * Row backward of 16-bit dY and X into 16-bit dX (layer and RMS norm, group and instance norm), a
     * block of rows at a time, as {@link #rowNormInBlocks} does forward: each task widens a block's dY
     * and X (about {@link #BLOCK_VALUES} values, a multiple of the plan's groups so that the block's
     * rows use the affine entries they use in the whole tensor) into float32 arrays that stay in cache
     * where the rows are short enough, runs the float32 backward on them on its own thread and rounds
     * dX into place, so the tensors cross memory once instead of being converted whole (three float32
     * tensors of temporaries). dX is that of whole tensors bit for bit (a row's dx depends on the row
     * alone). The blocks fall into at most {@link #GRAD_GROUPS} groups of consecutive blocks, each
     * group's parameter-gradient sums (double) are added in order, then the groups in order: a
     * partition fixed by the shape, so the bits do not depend on the threads (they may differ from
     * whole tensors' in the last bits).
     *
     * <p>Rows with one affine entry per value (layer and RMS norm, group and instance norm of (N, C)
     * data) carry float32 accumulators across the blocks of a group
     * ({@link JavaBackward#columnRowsRange}), flushed into the group's sums every
     * {@link JavaBackward#SUB_ROWS} outer indices as the float32 backward flushes its own: sums per
     * block would cost a pass over every affine entry per block (layer norm 512x65536: 100-121 ms in
     * one-row blocks, 27-33 in eight-row blocks; group norm of 512x65536 data, a sample a block, 81 ms
     * against 15 in float32). Their blocks hold two rows at least for layer and RMS norm, which
     * {@link JavaBackward#columnRowsRange} takes in pairs. Channels-first rows take each block's sums
     * ({@link JavaBackward#rows}; a few entries per row) in blocks of
     * {@link #MIN_BACKWARD_BLOCK_ROWS} rows at least.
     */
    private void rowBackwardInBlocks(RowNormPlan p, JavaBuffer dy, JavaBuffer x, float[] scale, float[] mean,
            float[] inv, JavaBuffer dx, float[] dScale, float[] dBias) {
        JavaBackward.RowLayout l = JavaBackward.RowLayout.of(p);
        boolean carry = l.spatial() == 1;
        int cols = l.len();
        int rows = l.rows();
        int channels = l.channels(); // affine entries
        int groups = l.groups();
        int blockRows;
        if (carry) {
            int minOuter = groups == 1 && cols >= RowKernels.RUN ? 2 : 1;
            blockRows = Math.max(minOuter, BLOCK_VALUES / channels) * groups;
        } else {
            int fit = Math.max(MIN_BACKWARD_BLOCK_ROWS, BLOCK_VALUES / cols);
            blockRows = (fit + groups - 1) / groups * groups;
        }
        int blocks = (rows + blockRows - 1) / blockRows;
        int gradGroups = Math.max(1, Math.min(GRAD_GROUPS, blocks));
        float[] w = scale == null ? RowNorm.ones(channels) : scale;
        short[] dys = (short[]) dy.array();
        short[] xs = (short[]) x.array();
        short[] dxs = (short[]) dx.array();
        boolean half = x.dtype() == DType.FLOAT16;
        double[] partS = scratch.doubles(gradGroups * channels);
        double[] partB = scratch.doubles(gradGroups * channels);
        parallel.forRange(gradGroups, 3L * cols * rows / gradGroups, (g0, g1) -> {
            int values = blockRows * cols;
            float[] dyf = takeView(values);
            float[] xf = takeView(values);
            float[] dxf = takeView(values);
            float[] meanB = new float[blockRows];
            float[] invB = new float[blockRows];
            float[] fs = carry ? scratch.zeroedFloats(channels) : null;
            float[] fb = carry ? scratch.zeroedFloats(channels) : null;
            GradKernels k = GradKernels.best().fresh();
            try {
                for (int g = (int) g0; g < g1; g++) {
                    int base = g * channels;
                    if (!carry) {
                        Arrays.fill(partS, base, base + channels, 0.0);
                        Arrays.fill(partB, base, base + channels, 0.0);
                    }
                    int pending = 0; // outer indices in fs and fb since the last flush
                    boolean first = true;
                    for (long b = (long) blocks * g / gradGroups; b < (long) blocks * (g + 1) / gradGroups; b++) {
                        int r0 = (int) b * blockRows;
                        int n = Math.min(blockRows, rows - r0);
                        int off = r0 * cols;
                        CONVERSIONS.widen(dys, off, dyf, 0, n * cols, half);
                        CONVERSIONS.widen(xs, off, xf, 0, n * cols, half);
                        if (!l.rms()) {
                            System.arraycopy(mean, r0, meanB, 0, n);
                        }
                        System.arraycopy(inv, r0, invB, 0, n);
                        JavaBackward.RowLayout block = new JavaBackward.RowLayout(n, groups, l.cpg(), l.spatial(),
                                l.rms());
                        if (carry) {
                            for (int o = 0, outer = n / groups; o < outer;) {
                                int take = Math.min(outer - o, JavaBackward.SUB_ROWS - pending);
                                JavaBackward.columnRowsRange(k, block, dyf, xf, w, meanB, invB, dxf, o, o + take, fs,
                                        fb);
                                o += take;
                                pending += take;
                                if (pending == JavaBackward.SUB_ROWS) {
                                    k.flushTerms(fs, fb, partS, partB, base, channels, first);
                                    first = false;
                                    pending = 0;
                                }
                            }
                        } else {
                            JavaBackward.Grads sums = JavaBackward.rows(ONE_THREAD, scratch, block, dyf, xf, w, meanB,
                                    invB, dxf);
                            double[] s = sums.scale();
                            double[] bs = sums.bias();
                            for (int c = 0; c < channels; c++) {
                                partS[base + c] += s[c];
                                partB[base + c] += bs[c];
                            }
                            sums.release(scratch);
                        }
                        CONVERSIONS.round(dxf, 0, dxs, off, n * cols, half);
                    }
                    if (carry && (pending > 0 || first)) {
                        k.flushTerms(fs, fb, partS, partB, base, channels, first);
                    }
                }
            } finally {
                giveView(dyf);
                giveView(xf);
                giveView(dxf);
                if (carry) {
                    scratch.give(fs);
                    scratch.give(fb);
                }
            }
        });
        mergeGroups(partS, partB, gradGroups, channels, dScale, dBias);
    }

    /**
     * Adds the groups' parameter-gradient sums in order into dScale and dBias (each where not null) and
     * gives the sums' arrays back to {@link #scratch}.
     */
    private void mergeGroups(double[] partS, double[] partB, int gradGroups, int channels, float[] dScale,
            float[] dBias) {
        for (int c = 0; c < channels; c++) {
            double s = 0;
            double b = 0;
            for (int g = 0; g < gradGroups; g++) {
                s += partS[g * channels + c];
                b += partB[g * channels + c];
            }
            if (dScale != null) {
                dScale[c] = (float) s;
            }
            if (dBias != null) {
                dBias[c] = (float) b;
            }
        }
        scratch.give(partS);
        scratch.give(partB);
    }

    /** @return a float array of {@link #views} (contents unspecified), or a new one */
    private float[] takeView(int values) {
        Object a = views.take(DType.FLOAT32, values);
        return a != null ? (float[]) a : new float[values];
    }

    /** Gives an array of {@link #takeView} back for the next call. */
    private void giveView(float[] a) {
        views.give(DType.FLOAT32, a, a.length);
    }

    @Override
    public void channelStats(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.channelStats(parallel, p, v.doubles(x), v.doublesOut(mean), v.doublesOut(meanLo),
                        v.doublesOut(invStd), update, v.doubles(runMeanIn), v.doubles(runVarIn),
                        v.doublesOut(runMeanOut), v.doublesOut(runVarOut));
            } else {
                FastFloatKernels.channelStats(parallel, scratch, p, v.floats(x), v.floatsOut(mean), v.floatsOut(meanLo),
                        v.floatsOut(invStd), update, v.floats(runMeanIn), v.floats(runVarIn), v.floatsOut(runMeanOut),
                        v.floatsOut(runVarOut));
            }
        }
    }

    @Override
    public void channelNorm(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut, Buffer scale, Buffer bias,
            Buffer y) {
        if (f64(x) || !FastFloatKernels.channelNormFuses(parallel, p)) {
            Backend.super.channelNorm(p, x, mean, meanLo, invStd, update, runMeanIn, runVarIn, runMeanOut, runVarOut,
                    scale, bias, y);
            return;
        }
        if (rowBlocks && sixteenBit(x) && y.dtype() == x.dtype()) {
            try (Views v = new Views()) {
                channelNormInBlocks(p, (JavaBuffer) x, v.floatsOut(mean), v.floatsOut(meanLo), v.floatsOut(invStd),
                        update, v.floats(runMeanIn), v.floats(runVarIn), v.floatsOut(runMeanOut), v.floatsOut(runVarOut),
                        v.floats(scale), v.floats(bias), (JavaBuffer) y);
            }
            return;
        }
        try (Views v = new Views()) {
            FastFloatKernels.channelNorm(parallel, scratch, p, v.floats(x), v.floatsOut(mean), v.floatsOut(meanLo),
                    v.floatsOut(invStd), update, v.floats(runMeanIn), v.floats(runVarIn), v.floatsOut(runMeanOut),
                    v.floatsOut(runVarOut), v.floats(scale), v.floats(bias), v.floatsOut(y));
        }
    }

    /**
     * Batch normalization of 16-bit channels-first X into 16-bit Y a channel at a time
     * ({@link #inChannelBlocks}): a channel's X is normalized in place as a one-channel plan on the
     * task's own thread ({@link ChannelNorm#statsAndApply}: the same runs, parts and merges as the
     * whole tensor's, so the same bits). X and Y cross memory once instead of being converted whole
     * before and after. Requires {@link ChannelNorm#fuses}.
     */
    private void channelNormInBlocks(ChannelPlan p, JavaBuffer x, float[] mean, float[] meanLo, float[] inv,
            RunningUpdate update, float[] rmIn, float[] rvIn, float[] rmOut, float[] rvOut, float[] scale, float[] bias,
            JavaBuffer y) {
        ChannelPlan one = new ChannelPlan(p.outer(), 1, p.inner(), p.mode(), p.epsilon());
        inChannelBlocks(p, new JavaBuffer[] {x}, y, () -> {
            ChannelNorm norm = new ChannelNorm(RowKernels.best(), ONE_THREAD, scratch);
            // The channel's entries of the per-channel arrays, as the arrays of the one-channel plan.
            float[] mean1 = entry(mean);
            float[] meanLo1 = entry(meanLo);
            float[] inv1 = entry(inv);
            float[] rmIn1 = entry(rmIn);
            float[] rvIn1 = entry(rvIn);
            float[] rmOut1 = entry(rmOut);
            float[] rvOut1 = entry(rvOut);
            float[] scale1 = entry(scale);
            float[] bias1 = entry(bias);
            return (c, f) -> {
                load(rmIn1, rmIn, c);
                load(rvIn1, rvIn, c);
                load(scale1, scale, c);
                load(bias1, bias, c);
                norm.statsAndApply(one, f[0], mean1, meanLo1, inv1, update, rmIn1, rvIn1, rmOut1, rvOut1, scale1,
                        bias1, f[0]);
                store(mean1, mean, c);
                store(meanLo1, meanLo, c);
                store(inv1, inv, c);
                store(rmOut1, rmOut, c);
                store(rvOut1, rvOut, c);
            };
        });
    }

    /** One task's work on the channels of {@link #inChannelBlocks}. */
    @FunctionalInterface
    private interface ChannelTask {
        /**
         * Processes channel c, whose segments of each input are contiguous in {@code f} (one array
         * per input, a one-channel plan's layout), leaving the output in {@code f[0]}.
         */
        void channel(int c, float[][] f);
    }

    /**
     * 16-bit channels-first data a channel at a time: each task (from {@code perTask}, one per
     * range of channels) widens a channel's segments of every input into pooled float32 arrays that
     * stay in cache, processes them, and rounds {@code f[0]} into {@code out}'s segments; so the
     * tensors cross memory once, as the row blocks of {@link #rowNormInBlocks} do.
     */
    private void inChannelBlocks(ChannelPlan p, JavaBuffer[] inputs, JavaBuffer out, Supplier<ChannelTask> perTask) {
        int channels = Math.toIntExact(p.channels());
        int inner = Math.toIntExact(p.inner());
        long outer = p.outer();
        int perChannel = Math.toIntExact(p.perChannel());
        boolean half = out.dtype() == DType.FLOAT16;
        short[] outBits = (short[]) out.array();
        parallel.forRange(channels, 3L * perChannel, (c0, c1) -> {
            ChannelTask task = perTask.get();
            float[][] f = new float[inputs.length][];
            try {
                for (int i = 0; i < f.length; i++) {
                    f[i] = takeView(perChannel);
                }
                for (int c = (int) c0; c < c1; c++) {
                    for (long o = 0; o < outer; o++) {
                        int off = (int) ((o * channels + c) * inner);
                        for (int i = 0; i < f.length; i++) {
                            CONVERSIONS.widen((short[]) inputs[i].array(), off, f[i], (int) (o * inner), inner, half);
                        }
                    }
                    task.channel(c, f);
                    for (long o = 0; o < outer; o++) {
                        CONVERSIONS.round(f[0], (int) (o * inner), outBits, (int) ((o * channels + c) * inner), inner,
                                half);
                    }
                }
            } finally {
                for (float[] a : f) {
                    if (a != null) {
                        giveView(a);
                    }
                }
            }
        });
    }

    /** @return a one-entry array standing for one entry of {@code whole}, or null where it is */
    private static float[] entry(float[] whole) {
        return whole == null ? null : new float[1];
    }

    private static void load(float[] entry, float[] whole, int c) {
        if (entry != null) {
            entry[0] = whole[c];
        }
    }

    private static void store(float[] entry, float[] whole, int c) {
        if (entry != null) {
            whole[c] = entry[0];
        }
    }

    @Override
    public void channelRunningStats(ChannelPlan p, Buffer runMean, Buffer runVar, Buffer mean, Buffer invStd) {
        try (Views v = new Views()) {
            if (f64(mean)) {
                DoubleKernels.runningStats(p, v.doubles(runMean), v.doubles(runVar), v.doublesOut(mean),
                        v.doublesOut(invStd));
            } else {
                FloatKernels.runningStats(p, v.floats(runMean), v.floats(runVar), v.floatsOut(mean),
                        v.floatsOut(invStd));
            }
        }
    }

    @Override
    public void channelApply(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale,
            Buffer bias, Buffer y) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.channelApply(parallel, p, v.doubles(x), v.doubles(mean), v.doubles(meanLo),
                        v.doubles(invStd), v.doubles(scale), v.doubles(bias), v.doublesOut(y));
            } else {
                FastFloatKernels.channelApply(parallel, scratch, p, v.floats(x), v.floats(mean), v.floats(meanLo),
                        v.floats(invStd), v.floats(scale), v.floats(bias), v.floatsOut(y));
            }
        }
    }

    @Override
    public void channelMoments(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer m2) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.channelMoments(parallel, p, v.doubles(x), v.doublesOut(mean), v.doublesOut(m2),
                        v.doublesOut(meanLo));
            } else {
                FloatKernels.channelMoments(parallel, p, v.floats(x), v.floatsOut(mean), v.floatsOut(meanLo),
                        v.floatsOut(m2));
            }
        }
    }

    @Override
    public void rowApply(RowNormPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale, Buffer bias,
            Buffer y) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.rowApply(parallel, p, v.doubles(x), v.doubles(mean), v.doubles(meanLo), v.doubles(invStd),
                        v.doubles(scale), v.doubles(bias), v.doublesOut(y));
            } else {
                JavaBackward.rowApply(parallel, p, v.floats(x), v.floats(mean), v.floats(meanLo), v.floats(invStd),
                        v.floats(scale), v.floats(bias), v.floatsOut(y));
            }
        }
    }

    @Override
    public void rowNormBackward(RowNormPlan p, Buffer dy, Buffer x, Buffer scale, Buffer mean, Buffer invStd,
            Buffer dx) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.rowNormBackward(parallel, p, v.doubles(dy), v.doubles(x), v.doubles(scale),
                        v.doubles(mean), v.doubles(invStd), v.doublesOut(dx));
            } else if (blocksBackward(p, dy, x, dx)) {
                rowBackwardInBlocks(p, (JavaBuffer) dy, (JavaBuffer) x, v.floats(scale), v.floats(mean),
                        v.floats(invStd), (JavaBuffer) dx, null, null);
            } else {
                JavaBackward.Grads grads = JavaBackward.rowNormBackward(parallel, scratch, p, v.floats(dy),
                        v.floats(x), v.floats(scale), v.floats(mean), v.floats(invStd), v.floatsOut(dx));
                if (grads != null) {
                    grads.release(scratch);
                }
            }
        }
    }

    /**
     * One pass for float32 data: the row pass computes dX and, along with it, the parameter-gradient
     * sums, which {@link JavaBackward#affineGrad} then takes instead of reading dY and X again (the
     * same bits it computes alone: {@code BackwardFusionTest}). float64 layer and RMS norm: one pass
     * too ({@link DoubleKernels#rowGrads}, the same bits as the two calls). float16 and bfloat16 rows
     * (layer, RMS, channels-first group and instance norm): a block of rows at a time
     * ({@link #rowBackwardInBlocks}). Otherwise the two calls.
     */
    @Override
    public void rowNormBackwardWithGrad(RowNormPlan plan, AffineGradPlan grad, Buffer dy, Buffer x, Buffer scale,
            Buffer mean, Buffer invStd, Buffer dx, Buffer dScale, Buffer dBias) {
        if (f64(x) && dx != null && plan.isContiguous() && plan.groups() == 1 && plan.spatial() == 1
                && DoubleKernels.isRowGrad(grad) && grad.outer() == plan.rows() && grad.channels() == plan.cols()) {
            try (Views v = new Views()) {
                DoubleKernels.rowGrads(parallel, scratch, (int) plan.rows(), (int) plan.cols(),
                        plan.mode() == StatMode.RMS, v.doubles(dy), v.doubles(x), v.doubles(scale), v.doubles(mean),
                        v.doubles(invStd), v.doublesOut(dx), v.doublesOut(dScale), v.doublesOut(dBias), null);
            }
            return;
        }
        if (f64(x) && dx != null && DoubleKernels.fusesChannelGrads(plan, grad)) {
            try (Views v = new Views()) {
                DoubleKernels.rowBackwardWithChannelGrads(parallel, plan, v.doubles(dy), v.doubles(x),
                        v.doubles(scale), v.doubles(mean), v.doubles(invStd), v.doublesOut(dx), v.doublesOut(dScale),
                        v.doublesOut(dBias));
            }
            return;
        }
        if (blocksBackward(plan, dy, x, dx)
                && JavaBackward.RowLayout.of(plan).equals(JavaBackward.RowLayout.of(grad))) {
            try (Views v = new Views()) {
                rowBackwardInBlocks(plan, (JavaBuffer) dy, (JavaBuffer) x, v.floats(scale), v.floats(mean),
                        v.floats(invStd), (JavaBuffer) dx, v.floatsOut(dScale), v.floatsOut(dBias));
            }
            return;
        }
        if (x.dtype() != DType.FLOAT32) {
            Backend.super.rowNormBackwardWithGrad(plan, grad, dy, x, scale, mean, invStd, dx, dScale, dBias);
            return;
        }
        try (Views v = new Views()) {
            float[] dyA = v.floats(dy);
            float[] xA = v.floats(x);
            float[] meanA = v.floats(mean);
            float[] invA = v.floats(invStd);
            JavaBackward.Grads sums = JavaBackward.rowNormBackward(parallel, scratch, plan, dyA, xA, v.floats(scale),
                    meanA, invA, v.floatsOut(dx));
            JavaBackward.affineGrad(parallel, scratch, grad, dyA, xA, meanA, invA, v.floatsOut(dScale),
                    v.floatsOut(dBias), null, sums);
            if (sums != null) {
                sums.release(scratch);
            }
        }
    }

    /**
     * Channels-first float32 and 16-bit data with enough channels for the threads: each channel's
     * sums and dX in one read of dY and X ({@link JavaBackward#channelBackwardWithGrad}, pipelined
     * over channels; 16-bit data a channel at a time, {@link #channelBackwardInBlocks}), the same
     * bits as the two calls; otherwise the two calls.
     */
    @Override
    public void channelBackwardWithGrad(ChannelPlan p, boolean training, Buffer dy, Buffer x, Buffer mean,
            Buffer invStd, Buffer scale, Buffer dScale, Buffer dBias, Buffer dx) {
        if (f64(x) || !JavaBackward.fusesChannelBackward(p, parallel.threads())) {
            Backend.super.channelBackwardWithGrad(p, training, dy, x, mean, invStd, scale, dScale, dBias, dx);
            return;
        }
        if (rowBlocks && sixteenBit(x) && dy.dtype() == x.dtype() && dx.dtype() == x.dtype()) {
            try (Views v = new Views()) {
                channelBackwardInBlocks(p, training, (JavaBuffer) dy, (JavaBuffer) x, v.floats(mean),
                        v.floats(invStd), v.floats(scale), v.floatsOut(dScale), v.floatsOut(dBias), (JavaBuffer) dx);
            }
            return;
        }
        try (Views v = new Views()) {
            JavaBackward.channelBackwardWithGrad(parallel, p, training, v.floats(dy), v.floats(x), v.floats(mean),
                    v.floats(invStd), v.floats(scale), v.floatsOut(dScale), v.floatsOut(dBias), v.floatsOut(dx));
        }
    }

    /**
     * Batch-norm backward of 16-bit channels-first dY and X into 16-bit dX a channel at a time
     * ({@link #inChannelBlocks}), as {@link #channelNormInBlocks} does forward: a channel's widened
     * dY and X go through {@link JavaBackward#channelBackwardWithGrad} as a one-channel plan on the
     * task's own thread (the same sums, partition and dx as the whole tensor's, so the same bits),
     * dx written over the widened dY, which each value's dx reads first.
     */
    private void channelBackwardInBlocks(ChannelPlan p, boolean training, JavaBuffer dy, JavaBuffer x, float[] mean,
            float[] inv, float[] scale, float[] dScale, float[] dBias, JavaBuffer dx) {
        ChannelPlan one = new ChannelPlan(p.outer(), 1, p.inner(), p.mode(), p.epsilon());
        inChannelBlocks(p, new JavaBuffer[] {dy, x}, dx, () -> {
            float[] mean1 = entry(mean);
            float[] inv1 = entry(inv);
            float[] scale1 = entry(scale);
            float[] dScale1 = entry(dScale);
            float[] dBias1 = entry(dBias);
            return (c, f) -> {
                load(mean1, mean, c);
                load(inv1, inv, c);
                load(scale1, scale, c);
                JavaBackward.channelBackwardWithGrad(ONE_THREAD, one, training, f[0], f[1], mean1, inv1, scale1,
                        dScale1, dBias1, f[0]);
                store(dScale1, dScale, c);
                store(dBias1, dBias, c);
            };
        });
    }

    @Override
    public void affineGrad(AffineGradPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer dScale,
            Buffer dBias, Buffer sums) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.affineGrad(parallel, scratch, p, v.doubles(dy), v.doubles(x), v.doubles(mean), v.doubles(invStd),
                        v.doublesOut(dScale), v.doublesOut(dBias), v.doublesOut(sums));
            } else {
                JavaBackward.affineGrad(parallel, scratch, p, v.floats(dy), v.floats(x), v.floats(mean),
                        v.floats(invStd), v.floatsOut(dScale), v.floatsOut(dBias), v.floatsOut(sums), null);
            }
        }
    }

    @Override
    public void channelBackward(ChannelPlan p, long count, Buffer dy, Buffer x, Buffer mean, Buffer invStd,
            Buffer scale, Buffer sums, Buffer dx) {
        try (Views v = new Views()) {
            if (f64(x)) {
                DoubleKernels.channelBackward(parallel, p, count, v.doubles(dy), v.doubles(x), v.doubles(mean),
                        v.doubles(invStd), v.doubles(scale), v.doubles(sums), v.doublesOut(dx));
            } else {
                JavaBackward.channelBackward(parallel, p, count, v.floats(dy), v.floats(x), v.floats(mean), v.floats(invStd),
                        v.floats(scale), v.floats(sums), v.floatsOut(dx));
            }
        }
    }

    @Override
    public int liveBuffers() {
        return live.size();
    }

    @Override
    public void close() {
        for (JavaBuffer b : live.toArray(new JavaBuffer[0])) {
            b.close();
        }
        pool.clear();
        scratch.clear();
        views.clear();
        parallel.shutdown();
    }
}
