package org.normcl.opencl;

import static org.jocl.CL.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_device_id;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;
import org.jocl.cl_program;
import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.backend.AffineGradPlan;
import org.normcl.backend.Backend;
import org.normcl.backend.Buffer;
import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;
import org.normcl.backend.StatMode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The OpenCL backend: one context, one in-order queue and one program (built once, at creation)
 * on one device. Kernel arguments are set and kernels enqueued under a lock, since cl_kernel
 * objects are not thread-safe; each primitive waits for its kernels, so errors surface in the call
 * that caused them.
 */
final class ClBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(ClBackend.class);

    private static final String[] KERNELS = {"row_norm_serial", "row_norm_group", "row_apply",
        "channel_partial_serial", "channel_partial_group", "channel_finalize", "channel_moments", "channel_inv_std",
        "channel_apply", "row_backward_serial", "row_backward_group", "affine_grad_cols", "affine_grad_serial",
        "affine_grad_group", "affine_grad_finalize", "channel_backward"};
    /** The work-group kernels, whose group size is fixed per device at creation. */
    private static final String[] GROUP_KERNELS = {"row_norm_group", "channel_partial_group", "row_backward_group",
        "affine_grad_group"};

    private static final int HAS_SCALE = 1;
    private static final int HAS_BIAS = 2;
    private static final int WRITE_MEAN = 4;
    private static final int WRITE_INVSTD = 8;
    private static final int SKIP_APPLY = 16;
    private static final int HAS_MEAN_LO = 32;

    private final DeviceInfo info;
    private final cl_device_id device;
    private final cl_context context;
    private final cl_command_queue queue;
    private final cl_program program;
    private final Map<String, cl_kernel> kernels = new HashMap<>();
    private final Map<String, Integer> groupSizes = new HashMap<>();
    private final WorkSizing sizing;
    private final Set<ClBuffer> live = ConcurrentHashMap.newKeySet();
    private final ClBuffer dummy;
    private final Object lock = new Object();
    private final BufferCache cache = new BufferCache();
    private volatile boolean closed;

    ClBackend(ClRuntime.Found found) {
        this.info = found.info();
        this.device = found.device();
        long t0 = System.nanoTime();
        int[] err = new int[1];
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL_CONTEXT_PLATFORM, found.platform());
        cl_context ctx = clCreateContext(props, 1, new cl_device_id[] {device}, null, null, err);
        ClErrors.check(err[0], "clCreateContext(" + info.name() + ")");
        this.context = ctx;
        cl_command_queue q = null;
        cl_program prog = null;
        try {
            q = clCreateCommandQueue(ctx, device, CL_QUEUE_PROFILING_ENABLE, err);
            ClErrors.check(err[0], "clCreateCommandQueue");
            prog = build(ctx);
            for (String k : KERNELS) {
                cl_kernel kernel = clCreateKernel(prog, k, err);
                ClErrors.check(err[0], "clCreateKernel(" + k + ")");
                kernels.put(k, kernel);
            }
        } catch (RuntimeException e) {
            kernels.values().forEach(CL::clReleaseKernel);
            if (prog != null) {
                clReleaseProgram(prog);
            }
            if (q != null) {
                clReleaseCommandQueue(q);
            }
            clReleaseContext(ctx);
            throw e;
        }
        this.queue = q;
        this.program = prog;
        long[] maxItems = new long[3];
        clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, 3L * Sizeof.size_t, Pointer.to(maxItems), null);
        this.sizing = new WorkSizing(info, maxItems[0]);
        for (String k : GROUP_KERNELS) {
            groupSizes.put(k, sizing.groupSize(kernelWorkGroupSize(kernels.get(k))));
        }
        this.dummy = (ClBuffer) allocate(DType.FLOAT32, 1);
        LOG.debug("OpenCL backend on {} ready in {} ms ({} kernels)", info.label(), (System.nanoTime() - t0) / 1_000_000,
                sizing.serial() ? "serial" : "work-group");
    }

    private cl_program build(cl_context ctx) {
        String source = KernelSource.program();
        int[] err = new int[1];
        cl_program prog = clCreateProgramWithSource(ctx, 1, new String[] {source}, null, err);
        ClErrors.check(err[0], "clCreateProgramWithSource");
        String options = buildOptions();
        int status = clBuildProgram(prog, 1, new cl_device_id[] {device}, options, null, null);
        if (status != CL_SUCCESS) {
            String log = buildLog(prog);
            clReleaseProgram(prog);
            throw new ClException("clBuildProgram(" + String.join(", ", KernelSource.FILES) + " for " + info.name()
                    + ", options '" + options + "')", status, "build log:\n" + log);
        }
        return prog;
    }

    /** OpenCL C 1.2 where the compiler takes it; never fast-math (NaN and Inf must propagate). */
    private String buildOptions() {
        String v = info.openclCVersion();
        boolean atLeast12 = v.matches(".*OpenCL C ([2-9]|1\\.[2-9]).*");
        return atLeast12 ? "-cl-std=CL1.2" : "";
    }

    private String buildLog(cl_program prog) {
        long[] size = new long[1];
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, 0, null, size);
        if (size[0] <= 1) {
            return "(empty)";
        }
        byte[] b = new byte[(int) size[0]];
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, b.length, Pointer.to(b), null);
        return new String(b, 0, b.length - 1, StandardCharsets.UTF_8);
    }

    private long kernelWorkGroupSize(cl_kernel k) {
        byte[] b = new byte[8];
        ClErrors.check(clGetKernelWorkGroupInfo(k, device, CL_KERNEL_WORK_GROUP_SIZE, Sizeof.size_t, Pointer.to(b),
                null), "clGetKernelWorkGroupInfo");
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.nativeOrder());
        return Sizeof.size_t == 4 ? bb.getInt(0) : bb.getLong(0);
    }

    // ---------------------------------------------------------------- Backend: identity

    @Override
    public BackendKind kind() {
        return BackendKind.OPENCL;
    }

    @Override
    public String description() {
        return "OpenCL " + info.label() + ", " + info.type();
    }

    @Override
    public Optional<DeviceInfo> device() {
        return Optional.of(info);
    }

    // ---------------------------------------------------------------- Backend: memory

    @Override
    public Buffer allocate(DType dtype, long elements) {
        checkOpen();
        if (dtype != DType.FLOAT32) {
            throw new IllegalArgumentException("dtype = " + dtype + ": expected FLOAT32");
        }
        long bytes = elements * dtype.byteSize();
        if (bytes > info.maxAllocBytes()) {
            throw new IllegalArgumentException("a tensor of " + elements + " elements (" + bytes + " bytes) exceeds"
                    + " CL_DEVICE_MAX_MEM_ALLOC_SIZE = " + info.maxAllocBytes() + " bytes of " + info.name());
        }
        cl_mem mem = null;
        if (elements > 0) {
            mem = cache.take(bytes);
            if (mem == null) {
                int[] err = new int[1];
                mem = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes, null, err);
                ClErrors.check(err[0], "clCreateBuffer(" + bytes + " bytes)");
            }
        }
        ClBuffer b = new ClBuffer(this, mem, elements, dtype);
        live.add(b);
        return b;
    }

    /** Called once by {@link ClBuffer#close()}: keeps its memory for reuse, or releases it. */
    void released(ClBuffer b, cl_mem mem) {
        live.remove(b);
        if (mem == null) {
            return;
        }
        if (closed) {
            clReleaseMemObject(mem);
        } else {
            cache.give(mem, b.bytes());
        }
    }

    /** @return buffers allocated and not yet closed, apart from the internal dummy (for leak checks) */
    int liveBuffers() {
        return live.size() - (dummy.isClosed() ? 0 : 1);
    }

    /** @return bytes held by the buffer cache (released by the caller, kept for reuse) */
    long cachedBytes() {
        return cache.bytes();
    }

    @Override
    public Buffer scratch(DType dtype, long elements) {
        return allocate(dtype, elements);
    }

    /**
     * Released buffers kept for reuse by the next allocation of the same size, as GPU frameworks'
     * caching allocators do: creating a buffer costs a driver round trip, and on Oclgrind a
     * released buffer whose memory is taken by a new one of the same size is then misreported as
     * uninitialized between two kernels. At most {@link #MAX_CACHED_BYTES} stay cached (the
     * oldest are released first); closing the backend releases them all.
     */
    private static final class BufferCache {
        static final long MAX_CACHED_BYTES = 64L << 20;
        private final java.util.Map<Long, java.util.ArrayDeque<cl_mem>> free = new java.util.HashMap<>();
        private final java.util.ArrayDeque<long[]> order = new java.util.ArrayDeque<>(); // sizes, oldest first
        private long bytes;

        synchronized cl_mem take(long size) {
            java.util.ArrayDeque<cl_mem> q = free.get(size);
            cl_mem m = q == null ? null : q.pollFirst();
            if (m != null) {
                bytes -= size;
                removeOne(size);
            }
            return m;
        }

        /** Keeps {@code m}, releasing the oldest cached buffers if the cap is exceeded. */
        synchronized void give(cl_mem m, long size) {
            if (size > MAX_CACHED_BYTES) {
                clReleaseMemObject(m);
                return;
            }
            free.computeIfAbsent(size, k -> new java.util.ArrayDeque<>()).addFirst(m);
            order.addLast(new long[] {size});
            bytes += size;
            while (bytes > MAX_CACHED_BYTES) {
                long oldest = order.pollFirst()[0];
                cl_mem victim = free.get(oldest).pollLast();
                bytes -= oldest;
                clReleaseMemObject(victim);
            }
        }

        private void removeOne(long size) {
            for (java.util.Iterator<long[]> it = order.iterator(); it.hasNext();) {
                if (it.next()[0] == size) {
                    it.remove();
                    return;
                }
            }
        }

        synchronized long bytes() {
            return bytes;
        }

        synchronized void releaseAll() {
            for (java.util.ArrayDeque<cl_mem> q : free.values()) {
                for (cl_mem m : q) {
                    clReleaseMemObject(m);
                }
            }
            free.clear();
            order.clear();
            bytes = 0;
        }
    }

    @Override
    public void write(Buffer dst, float[] src) {
        ClBuffer d = cl(dst);
        if (src.length == 0) {
            return;
        }
        synchronized (lock) {
            ClErrors.check(clEnqueueWriteBuffer(queue, d.mem(), CL_TRUE, 0, (long) src.length * Sizeof.cl_float,
                    Pointer.to(src), 0, null, null), "clEnqueueWriteBuffer");
        }
    }

    @Override
    public void read(Buffer src, float[] dst) {
        ClBuffer s = cl(src);
        if (dst.length == 0) {
            return;
        }
        synchronized (lock) {
            ClErrors.check(clEnqueueReadBuffer(queue, s.mem(), CL_TRUE, 0, (long) dst.length * Sizeof.cl_float,
                    Pointer.to(dst), 0, null, null), "clEnqueueReadBuffer");
        }
    }

    @Override
    public Buffer importHost(float[] data) {
        Buffer b = allocate(DType.FLOAT32, data.length);
        try {
            write(b, data);
            return b;
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    @Override
    public float[] exportHost(Buffer buffer) {
        float[] out = new float[Math.toIntExact(buffer.elements())];
        read(buffer, out);
        return out;
    }

    @Override
    public void copy(Buffer src, Buffer dst) {
        ClBuffer s = cl(src);
        ClBuffer d = cl(dst);
        if (s.elements() == 0) {
            return;
        }
        synchronized (lock) {
            ClErrors.check(clEnqueueCopyBuffer(queue, s.mem(), d.mem(), 0, 0, s.bytes(), 0, null, null),
                    "clEnqueueCopyBuffer");
            finish();
        }
    }

    @Override
    public void fill(Buffer dst, float value) {
        ClBuffer d = cl(dst);
        if (d.elements() == 0) {
            return;
        }
        synchronized (lock) {
            ClErrors.check(clEnqueueFillBuffer(queue, d.mem(), Pointer.to(new float[] {value}), Sizeof.cl_float, 0,
                    d.bytes(), 0, null, null), "clEnqueueFillBuffer");
            finish();
        }
    }

    // ---------------------------------------------------------------- Backend: primitives

    @Override
    public void rowNorm(RowNormPlan p, Buffer x, Buffer scale, Buffer bias, Buffer y, Buffer mean, Buffer invStd) {
        int flags = (p.hasScale() ? HAS_SCALE : 0) | (p.hasBias() ? HAS_BIAS : 0)
                | (mean != null && p.mode() != StatMode.RMS ? WRITE_MEAN : 0) | (invStd != null ? WRITE_INVSTD : 0)
                | (y == null ? SKIP_APPLY : 0);
        String name = sizing.serial() ? "row_norm_serial" : "row_norm_group";
        synchronized (lock) {
            Args a = args(name).mem(x).mem(p.hasScale() ? scale : null).mem(p.hasBias() ? bias : null).mem(y)
                    .mem(mean).mem(invStd).ulong(p.rows()).ulong(p.cols()).ulong(p.groups())
                    .ulong(p.channelsPerGroup()).ulong(p.spatial()).f32(p.epsilon()).i32(modeCode(p.mode()))
                    .i32(flags);
            if (sizing.serial()) {
                launchSerial(a, p.rows());
            } else {
                int wg = groupSizes.get(name);
                a.local(wg).local(wg).local(wg).launch(new long[] {p.rows() * wg}, new long[] {wg});
            }
            finish();
        }
    }

    @Override
    public void channelStats(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut) {
        long parts = channelParts(p);
        try (Buffer partials = scratch(DType.FLOAT32, p.channels() * parts * 3)) {
            synchronized (lock) {
                enqueueChannelPartials(p, x, partials, parts);
                boolean up = update != null;
                args("channel_finalize").mem(x).mem(partials).mem(mean).mem(meanLo).mem(invStd).mem(up ? runMeanIn : null)
                        .mem(up ? runVarIn : null).mem(up ? runMeanOut : null).mem(up ? runVarOut : null)
                        .ulong(p.channels()).ulong(p.inner()).ulong(parts).ulong(p.perChannel()).f32(p.epsilon())
                        .i32(modeCode(p.mode())).i32(up ? 1 : 0).f32(up ? update.batchWeight() : 0f)
                        .i32(up && update.unbiased() ? 1 : 0).i32(meanLo != null ? 1 : 0)
                        .launch(new long[] {p.channels()}, null);
                finish();
            }
        }
    }

    @Override
    public void channelMoments(ChannelPlan p, Buffer x, Buffer mean, Buffer m2) {
        long parts = channelParts(p);
        try (Buffer partials = scratch(DType.FLOAT32, p.channels() * parts * 3)) {
            synchronized (lock) {
                enqueueChannelPartials(p, x, partials, parts);
                args("channel_moments").mem(x).mem(partials).mem(mean).mem(m2).ulong(p.channels()).ulong(p.inner())
                        .ulong(parts).launch(new long[] {p.channels()}, null);
                finish();
            }
        }
    }

    private long channelParts(ChannelPlan p) {
        int wg = sizing.serial() ? 1 : groupSizes.get("channel_partial_group");
        return sizing.partsPerChannel(p.channels(), p.perChannel(), wg);
    }

    /** Stage 1 of the channel statistics: (count, shifted mean, M2) per channel part. Holds {@link #lock}. */
    private void enqueueChannelPartials(ChannelPlan p, Buffer x, Buffer partials, long parts) {
        String name = sizing.serial() ? "channel_partial_serial" : "channel_partial_group";
        Args a = args(name).mem(x).mem(partials).ulong(p.outer()).ulong(p.channels()).ulong(p.inner()).ulong(parts);
        if (sizing.serial()) {
            launchSerial(a, p.channels() * parts);
        } else {
            int wg = groupSizes.get(name);
            a.local(wg).local(wg).local(wg).launch(new long[] {p.channels() * parts * wg}, new long[] {wg});
        }
    }

    @Override
    public void channelInvStd(ChannelPlan p, Buffer var, Buffer invStd) {
        synchronized (lock) {
            args("channel_inv_std").mem(var).mem(invStd).ulong(p.channels()).f32(p.epsilon()).i32(modeCode(p.mode()))
                    .launch(new long[] {p.channels()}, null);
            finish();
        }
    }

    @Override
    public void channelApply(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale,
            Buffer bias, Buffer y) {
        int flags = (scale != null ? HAS_SCALE : 0) | (bias != null ? HAS_BIAS : 0) | (meanLo != null ? HAS_MEAN_LO : 0);
        synchronized (lock) {
            args("channel_apply").mem(x).mem(mean).mem(meanLo).mem(invStd).mem(scale).mem(bias).mem(y).ulong(p.channels())
                    .ulong(p.inner()).i32(flags).launch(new long[] {p.inner(), p.outer() * p.channels()}, null);
            finish();
        }
    }

    @Override
    public void rowApply(RowNormPlan p, Buffer x, Buffer mean, Buffer invStd, Buffer scale, Buffer bias, Buffer y) {
        int flags = (p.hasScale() && scale != null ? HAS_SCALE : 0) | (p.hasBias() && bias != null ? HAS_BIAS : 0);
        synchronized (lock) {
            args("row_apply").mem(x).mem(p.mode() == StatMode.RMS ? null : mean).mem(invStd).mem(scale).mem(bias)
                    .mem(y).ulong(p.cols()).ulong(p.groups()).ulong(p.channelsPerGroup()).ulong(p.spatial())
                    .i32(p.mode() == StatMode.RMS ? 1 : 0).i32(flags).launch(new long[] {p.cols(), p.rows()}, null);
            finish();
        }
    }

    // ---------------------------------------------------------------- Backend: backward

    @Override
    public void rowNormBackward(RowNormPlan p, Buffer dy, Buffer x, Buffer scale, Buffer mean, Buffer invStd,
            Buffer dx) {
        boolean rms = p.mode() == StatMode.RMS;
        String name = sizing.serial() ? "row_backward_serial" : "row_backward_group";
        synchronized (lock) {
            Args a = args(name).mem(dy).mem(x).mem(scale).mem(rms ? null : mean).mem(invStd).mem(dx).ulong(p.rows())
                    .ulong(p.cols()).ulong(p.groups()).ulong(p.channelsPerGroup()).ulong(p.spatial())
                    .i32(rms ? 1 : 0).i32(scale != null ? 1 : 0);
            if (sizing.serial()) {
                launchSerial(a, p.rows());
            } else {
                int wg = groupSizes.get(name);
                a.local(wg).local(wg).launch(new long[] {p.rows() * wg}, new long[] {wg});
            }
            finish();
        }
    }

    @Override
    public void affineGrad(AffineGradPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer dScale,
            Buffer dBias) {
        boolean cols = p.inner() == 1;
        String name = cols ? "affine_grad_cols" : sizing.serial() ? "affine_grad_serial" : "affine_grad_group";
        int wg = name.equals("affine_grad_group") ? groupSizes.get(name) : 1;
        long parts = cols ? sizing.rowBlocks(p.outer(), p.channels())
                : sizing.partsPerChannel(p.channels(), p.outer() * p.inner(), wg);
        Buffer m = p.rms() ? null : mean;
        try (Buffer partials = scratch(DType.FLOAT32, p.channels() * parts * 2)) {
            synchronized (lock) {
                if (cols) {
                    args(name).mem(dy).mem(x).mem(m).mem(invStd).mem(partials).ulong(p.outer()).ulong(p.channels())
                            .ulong(parts).ulong(p.statsPerOuter()).ulong(p.channelsPerStat()).i32(p.rms() ? 1 : 0)
                            .launch(new long[] {p.channels(), parts}, null);
                } else {
                    Args a = args(name).mem(dy).mem(x).mem(m).mem(invStd).mem(partials).ulong(p.outer())
                            .ulong(p.channels()).ulong(p.inner()).ulong(parts).ulong(p.statsPerOuter())
                            .ulong(p.channelsPerStat()).i32(p.rms() ? 1 : 0);
                    if (sizing.serial()) {
                        launchSerial(a, p.channels() * parts);
                    } else {
                        a.local(wg).local(wg).launch(new long[] {p.channels() * parts * wg}, new long[] {wg});
                    }
                }
                args("affine_grad_finalize").mem(partials).mem(dScale).mem(dBias).ulong(p.channels()).ulong(parts)
                        .i32(dScale != null ? 1 : 0).i32(dBias != null ? 1 : 0)
                        .launch(new long[] {p.channels()}, null);
                finish();
            }
        }
    }

    @Override
    public void channelBackward(ChannelPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer scale,
            Buffer sumDyXhat, Buffer sumDy, Buffer dx) {
        boolean training = sumDy != null;
        synchronized (lock) {
            args("channel_backward").mem(dy).mem(x).mem(mean).mem(invStd).mem(scale).mem(sumDyXhat).mem(sumDy).mem(dx)
                    .ulong(p.channels()).ulong(p.inner()).f32((float) p.perChannel()).i32(training ? 1 : 0)
                    .i32(scale != null ? 1 : 0).launch(new long[] {p.inner(), p.outer() * p.channels()}, null);
            finish();
        }
    }

    /** Launches a one-work-item-per-task kernel (which checks its bounds) over {@code items} work-items. */
    private void launchSerial(Args a, long items) {
        long g = sizing.serialGroupSize(items);
        a.launch(new long[] {WorkSizing.roundUp(items, g)}, new long[] {g});
    }

    /** Must match the MODE_* constants of common.cl. */
    private static int modeCode(StatMode mode) {
        switch (mode) {
            case MEAN_VAR:
                return 0;
            case RMS:
                return 1;
            case MEAN_VAR_EPS_OUTSIDE:
                return 2;
            default:
                throw new IllegalStateException("unknown mode " + mode);
        }
    }

    private void finish() {
        ClErrors.check(clFinish(queue), "clFinish");
    }

    private ClBuffer cl(Buffer b) {
        checkOpen();
        if (!(b instanceof ClBuffer c) || c.owner() != this) {
            throw new IllegalArgumentException("buffer belongs to another backend");
        }
        return c;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the OpenCL backend on " + info.name() + " is closed");
        }
    }

    private Args args(String kernel) {
        checkOpen();
        return new Args(kernel, kernels.get(kernel));
    }

    /** Sets a kernel's arguments in order, then launches it. Callers hold {@link #lock}. */
    private final class Args {
        private final String name;
        private final cl_kernel kernel;
        private int index;

        Args(String name, cl_kernel kernel) {
            this.name = name;
            this.kernel = kernel;
        }

        /** A buffer argument; null binds a one-element dummy the kernel never reads (a flag says so). */
        Args mem(Buffer b) {
            ClBuffer c = b == null || b.elements() == 0 ? dummy : cl(b);
            return set(Sizeof.cl_mem, Pointer.to(c.mem()));
        }

        Args ulong(long v) {
            return set(Sizeof.cl_ulong, Pointer.to(new long[] {v}));
        }

        Args f32(float v) {
            return set(Sizeof.cl_float, Pointer.to(new float[] {v}));
        }

        Args i32(int v) {
            return set(Sizeof.cl_int, Pointer.to(new int[] {v}));
        }

        /** A __local float array of {@code items} elements. */
        Args local(int items) {
            return set((long) items * Sizeof.cl_float, null);
        }

        private Args set(long size, Pointer value) {
            ClErrors.check(clSetKernelArg(kernel, index, size, value), "clSetKernelArg(" + name + ", " + index + ")");
            index++;
            return this;
        }

        void launch(long[] global, long[] local) {
            for (long g : global) {
                if (g == 0) {
                    return;
                }
            }
            ClErrors.check(clEnqueueNDRangeKernel(queue, kernel, global.length, null, global, local, 0, null, null),
                    "clEnqueueNDRangeKernel(" + name + ")");
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            clFinish(queue);
            closed = true;
        }
        for (ClBuffer b : live.toArray(new ClBuffer[0])) {
            b.close();
        }
        cache.releaseAll();
        kernels.values().forEach(CL::clReleaseKernel);
        clReleaseProgram(program);
        clReleaseCommandQueue(queue);
        clReleaseContext(context);
    }
}
