package org.normcl.opencl;

import static org.jocl.CL.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_device_id;
import org.jocl.cl_event;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;
import org.jocl.cl_program;
import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HalfFloats;
import org.normcl.HostTensor;
import org.normcl.NormException;
import org.normcl.Shape;
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
 * The OpenCL backend: one context and one in-order queue on one device, and one program per
 * (data type, parameter type) pair, built on first use (the float32 one at creation, so a device
 * that cannot build the kernels fails early). Kernel arguments are set and kernels enqueued under
 * a lock, since cl_kernel objects are not thread-safe; each primitive waits for its kernels, so
 * errors surface in the call that caused them.
 */
final class ClBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(ClBackend.class);
    /** acc_t values per channel in a channel_partial_rows block's scratch: COL_SLICES of channel_norm.cl. */
    private static final int CHANNEL_ROW_SLICES = 5;

    private static final String[] KERNELS = {
        "row_norm_serial", "row_norm_rows", "row_norm_pipelined", "row_norm_group", "row_norm_wg", "row_apply",
        "channel_partial_serial", "channel_partial_group", "channel_partial_cols", "channel_partial_rows",
        "channel_finalize", "channel_moments", "channel_running_stats", "channel_apply", "channel_apply_cols",
        "row_backward_serial", "row_backward_rows", "row_backward_group", "affine_grad_cols", "affine_grad_rows",
        "affine_grad_serial", "affine_grad_group", "affine_grad_finalize", "channel_backward",
        "channel_backward_coeffs", "channel_backward_cols", "copy_words", "channel_norm_serial",
        "channel_norm_blocks", "row_backward_affine_rows", "row_backward_affine_slices", "channel_backward_fused",
        "channel_backward_blocks", "row_backward_affine_groups"};
    /** The work-group kernels, whose group size is fixed per device and program. */
    private static final String[] GROUP_KERNELS = {"row_norm_group", "row_norm_wg", "channel_partial_group",
        "row_backward_group", "affine_grad_group"};

    // Flags and modes: must match common.cl.
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
    private final Map<String, Program> programs = new ConcurrentHashMap<>();
    private final WorkSizing sizing;
    private final HostTransfers transfers;
    private final Set<ClBuffer> live = ConcurrentHashMap.newKeySet();
    private final BufferCache cache;
    private final ClBuffer dummy;
    private final Object lock = new Object();
    /** The events of the commands enqueued since {@link #startDeviceTimer}; null when not recording. Under lock. */
    private List<cl_event> timedEvents;
    private final Optional<ProgramCache> programCache;
    private final AtomicInteger programsFromCache = new AtomicInteger();
    private volatile boolean closed;
    /** Why the device is gone, or null while it works. */
    private volatile String lost;
    /** What NVIDIA's driver returns after an illegal address in a kernel: the context is dead. */
    private static final int LOST_DEVICE_NVIDIA = -9999;

    /** A built program for one (data type, parameter type) pair, with its kernels. */
    private static final class Program {
        final cl_program program;
        final Map<String, cl_kernel> kernels = new HashMap<>();
        final Map<String, Integer> groupSizes = new HashMap<>();

        Program(cl_program program) {
            this.program = program;
        }

        void release() {
            kernels.values().forEach(CL::clReleaseKernel);
            clReleaseProgram(program);
        }
    }

    ClBackend(ClRuntime.Found found) {
        this(found, ProgramCache.forDevice(found.info()), Tuning.forDevice(found.info()));
    }

    /**
     * @param programCache where compiled programs are kept between processes; empty for none
     * @param tuning the device's launch parameters (stored by {@code normcl tune}, or the defaults)
     */
    ClBackend(ClRuntime.Found found, Optional<ProgramCache> programCache, Tuning tuning) {
        this(found, programCache, tuning, null, HostTransfers.CHUNK_BYTES);
    }

    /**
     * @param programCache where compiled programs are kept between processes; empty for none
     * @param tuning the device's launch parameters (stored by {@code normcl tune}, or the defaults)
     * @param transferMode how host arrays reach the device; null to choose by device
     * @param stagingChunkBytes bytes per pinned staging half (tests use small ones)
     */
    ClBackend(ClRuntime.Found found, Optional<ProgramCache> programCache, Tuning tuning,
            HostTransfers.Mode transferMode, int stagingChunkBytes) {
        this.info = found.info();
        this.cache = new BufferCache(BufferCache.capFor(info));
        this.programCache = programCache;
        this.device = found.device();
        long t0 = System.nanoTime();
        HostTransfers.Mode mode = transferMode != null ? transferMode
                : HostTransfers.choose(info, hostUnifiedMemory(device));
        int[] err = new int[1];
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL_CONTEXT_PLATFORM, found.platform());
        cl_context ctx = clCreateContext(props, 1, new cl_device_id[] {device}, null, null, err);
        ClErrors.check(err[0], "clCreateContext(" + info.name() + ")");
        this.context = ctx;
        cl_command_queue q = clCreateCommandQueue(ctx, device, CL_QUEUE_PROFILING_ENABLE, err);
        if (err[0] != CL_SUCCESS) {
            clReleaseContext(ctx);
            ClErrors.check(err[0], "clCreateCommandQueue");
        }
        this.queue = q;
        long[] maxItems = new long[3];
        clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, 3L * Sizeof.size_t, Pointer.to(maxItems), null);
        this.sizing = new WorkSizing(info, maxItems[0], tuning);
        this.transfers = new HostTransfers(ctx, q, mode, stagingChunkBytes, this::check);
        try {
            program(DType.FLOAT32, DType.FLOAT32);
        } catch (RuntimeException e) {
            clReleaseCommandQueue(q);
            clReleaseContext(ctx);
            throw e;
        }
        this.dummy = (ClBuffer) allocate(DType.FLOAT32, 1);
        LOG.debug("OpenCL backend on {} ready in {} ms ({} kernels, {} host transfers)", info.label(),
                (System.nanoTime() - t0) / 1_000_000, sizing.serial() ? "serial" : "work-group", mode);
    }

    /** @return CL_DEVICE_HOST_UNIFIED_MEMORY, or false where the driver does not answer */
    private static boolean hostUnifiedMemory(cl_device_id device) {
        int[] unified = new int[1];
        return clGetDeviceInfo(device, CL_DEVICE_HOST_UNIFIED_MEMORY, Sizeof.cl_int, Pointer.to(unified), null)
                == CL_SUCCESS && unified[0] != 0;
    }

    /** @return how host arrays reach this device (see {@link HostTransfers}) */
    HostTransfers.Mode transferMode() {
        return transfers.mode();
    }

    /** @return the program for this pair of types, built on first use */
    private Program program(DType data, DType param) {
        String key = data + "/" + param;
        Program p = programs.get(key);
        if (p != null) {
            return p;
        }
        synchronized (programs) {
            p = programs.get(key);
            if (p == null) {
                p = build(data, param);
                programs.put(key, p);
            }
            return p;
        }
    }

    private Program build(DType data, DType param) {
        if ((data == DType.FLOAT64 || param == DType.FLOAT64) && !info.fp64()) {
            throw new NormException("FLOAT64 is not supported by " + info.name() + " (no cl_khr_fp64)");
        }
        long t0 = System.nanoTime();
        String source = KernelSource.program();
        String options = buildOptions(data, param);
        if (FaultInjection.buildFails(data)) {
            throw new ClException("clBuildProgram(" + String.join(", ", KernelSource.FILES) + " for " + info.name()
                    + ", options '" + options + "')", CL_BUILD_PROGRAM_FAILURE, "build log:\n(injected fault)");
        }
        String key = programCache.map(c -> ProgramCache.key(info, source, options)).orElse(null);
        cl_program prog = key == null ? null : fromCachedBinary(key, options);
        boolean cached = prog != null;
        if (prog == null) {
            prog = fromSource(source, options);
            if (key != null) {
                byte[] binary = programBinary(prog);
                if (binary != null) {
                    programCache.get().store(key, binary);
                }
            }
        }
        Program p = new Program(prog);
        int[] err = new int[1];
        try {
            for (String k : KERNELS) {
                cl_kernel kernel = clCreateKernel(prog, k, err);
                ClErrors.check(err[0], "clCreateKernel(" + k + ")");
                p.kernels.put(k, kernel);
            }
            int statBytes = data.statistics().byteSize();
            for (String k : GROUP_KERNELS) {
                p.groupSizes.put(k, sizing.groupSize(kernelWorkGroupSize(p.kernels.get(k)), statBytes));
            }
        } catch (RuntimeException e) {
            p.release();
            throw e;
        }
        LOG.debug("{} the {}/{} kernels for {} in {} ms", cached ? "loaded" : "built", data, param, info.name(),
                (System.nanoTime() - t0) / 1_000_000);
        return p;
    }

    private cl_program fromSource(String source, String options) {
        int[] err = new int[1];
        cl_program prog = clCreateProgramWithSource(context, 1, new String[] {source}, null, err);
        ClErrors.check(err[0], "clCreateProgramWithSource");
        int status = clBuildProgram(prog, 1, new cl_device_id[] {device}, options, null, null);
        if (status != CL_SUCCESS) {
            String log = buildLog(prog);
            clReleaseProgram(prog);
            throw new ClException("clBuildProgram(" + String.join(", ", KernelSource.FILES) + " for " + info.name()
                    + ", options '" + options + "')", status, "build log:\n" + log);
        }
        return prog;
    }

    /** @return the program built from a cached binary, or null (and the entry removed) if the driver rejects it */
    private cl_program fromCachedBinary(String key, String options) {
        byte[] binary = programCache.get().load(key).orElse(null);
        if (binary == null) {
            return null;
        }
        int[] err = new int[1];
        int[] binaryStatus = new int[1];
        cl_program prog = clCreateProgramWithBinary(context, 1, new cl_device_id[] {device},
                new long[] {binary.length}, new byte[][] {binary}, binaryStatus, err);
        int status = err[0] != CL_SUCCESS ? err[0] : binaryStatus[0];
        if (status == CL_SUCCESS) {
            status = clBuildProgram(prog, 1, new cl_device_id[] {device}, options, null, null);
        }
        if (status != CL_SUCCESS) {
            LOG.warn("cached program binary {} was rejected by {} ({}); rebuilding from source", key, info.name(),
                    CL.stringFor_errorCode(status));
            if (prog != null) {
                clReleaseProgram(prog);
            }
            programCache.get().discard(key);
            return null;
        }
        programsFromCache.incrementAndGet();
        return prog;
    }

    /** @return the device binary of a built program, or null when the driver offers none */
    private byte[] programBinary(cl_program prog) {
        long[] size = new long[1];
        if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, Sizeof.size_t, Pointer.to(size), null) != CL_SUCCESS
                || size[0] <= 0 || size[0] > Integer.MAX_VALUE - 64) {
            return null;
        }
        byte[] binary = new byte[(int) size[0]];
        Pointer target = Pointer.to(binary);
        if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, Sizeof.POINTER, Pointer.to(target), null) != CL_SUCCESS) {
            return null;
        }
        return binary;
    }

    /** @return the work sizes this backend launches with (for tests) */
    WorkSizing sizing() {
        return sizing;
    }

    @Override
    public Map<String, String> kernelParameters() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("kernels", sizing.serial() ? "one-work-item-per-row" : "work-group");
        m.putAll(sizing.tuning().parameters());
        return m;
    }

    /** @return how many programs this backend loaded from the on-disk cache instead of compiling */
    int programsFromCache() {
        return programsFromCache.get();
    }

    /**
     * OpenCL C 1.2 where the compiler takes it; never fast-math (NaN and Inf must propagate). On
     * Oclgrind, optimization is off: its checker aborts on the `freeze` instruction LLVM's
     * optimizer adds when a kernel takes both a / b and a % b, and a simulator gains nothing from
     * optimized code (its reports also map to source lines better).
     */
    private String buildOptions(DType data, DType param) {
        String v = info.openclCVersion();
        boolean atLeast12 = v.matches(".*OpenCL C ([2-9]|1\\.[2-9]).*");
        boolean oclgrind = ClInfo.isSimulator(info);
        return (atLeast12 ? "-cl-std=CL1.2 " : "") + (oclgrind ? "-cl-opt-disable -D NO_SWIZZLE " : "") + "-D DTYPE_"
                + typeMacro(data) + " -D PARAM_" + typeMacro(param) + " -D VW=" + sizing.vectorWidth();
    }

    private static String typeMacro(DType t) {
        switch (t) {
            case FLOAT16:
                return "F16";
            case BFLOAT16:
                return "BF16";
            case FLOAT64:
                return "F64";
            case FLOAT32:
            default:
                return "F32";
        }
    }

    private String buildLog(cl_program prog) {
        long[] size = new long[1];
        int err = clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, 0, null, size);
        if (err != CL_SUCCESS || size[0] <= 1 || size[0] > (64 << 20)) {
            return "(no build log: the driver returned none)";
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

    @Override
    public boolean supports(DType dtype) {
        return dtype != DType.FLOAT64 || info.fp64();
    }

    // ---------------------------------------------------------------- Backend: memory

    @Override
    public long maxAllocationBytes() {
        return Math.min(info.maxAllocBytes(), FaultInjection.allocationLimit());
    }

    @Override
    public Buffer allocate(DType dtype, long elements) {
        checkOpen();
        // Checked: 2^62 + 1 float32 values wrapped to 4 bytes, a buffer the kernels then overran.
        boolean overflows = elements > Long.MAX_VALUE / dtype.byteSize();
        long bytes = overflows ? Long.MAX_VALUE : elements * dtype.byteSize();
        if (bytes > maxAllocationBytes()) {
            throw new IllegalArgumentException("a tensor of " + elements + " " + dtype + " elements ("
                    + (overflows ? "more than 2^63" : Long.toString(bytes)) + " bytes) exceeds CL_DEVICE_MAX_MEM_ALLOC_SIZE = "
                    + maxAllocationBytes() + " bytes of " + info.name() + ": keep it on the host, where operators process it in chunks");
        }
        cl_mem mem = null;
        if (elements > 0) {
            mem = cache.take(bytes);
            if (mem == null) {
                int[] err = new int[1];
                mem = createBuffer(bytes, err);
                if (mem == null && cache.bytes() > 0
                        && (err[0] == CL_MEM_OBJECT_ALLOCATION_FAILURE || err[0] == CL_OUT_OF_RESOURCES)) {
                    // The cached buffers may be what the device lacks: give them back and try once more.
                    cache.releaseAll();
                    mem = createBuffer(bytes, err);
                }
                check(err[0], "clCreateBuffer(" + bytes + " bytes)");
            }
        }
        ClBuffer b = new ClBuffer(this, mem, elements, dtype);
        live.add(b);
        return b;
    }

    /** @return a new buffer, or null with the error in {@code err[0]} (injected faults included) */
    private cl_mem createBuffer(long bytes, int[] err) {
        int injected = FaultInjection.allocationError(bytes);
        if (injected != 0) {
            err[0] = injected;
            return null;
        }
        cl_mem mem = clCreateBuffer(context, CL_MEM_READ_WRITE, bytes, null, err);
        return err[0] == CL_SUCCESS ? mem : null;
    }

    @Override
    public Buffer scratch(DType dtype, long elements) {
        return allocate(dtype, elements);
    }

    /** Called once by {@link ClBuffer#close()}: keeps its memory for reuse, or releases it. */
    void released(ClBuffer b, cl_mem mem) {
        live.remove(b);
        if (mem == null) {
            return;
        }
        // Under the lock close() sets `closed` with: a buffer closed on another thread while the
        // backend closes is either cached before the cache is emptied or released here, never
        // cached after it.
        synchronized (lock) {
            if (closed) {
                clReleaseMemObject(mem);
            } else {
                cache.give(mem, b.bytes());
            }
        }
    }

    /** @return buffers allocated and not yet closed, apart from the internal dummy (for leak checks) */
    @Override
    public int liveBuffers() {
        return live.size() - (dummy.isClosed() ? 0 : 1);
    }

    /** @return bytes held by the buffer cache (released by the caller, kept for reuse) */
    long cachedBytes() {
        return cache.bytes();
    }

    /**
     * Released buffers kept for reuse by the next allocation of the same size, as GPU frameworks'
     * caching allocators do: creating a buffer costs a driver round trip, and on Oclgrind a
     * released buffer whose memory is taken by a new one of the same size is then misreported as
     * uninitialized between two kernels. At most {@link #capFor} bytes stay cached (the oldest are
     * released first); an allocation the device refuses releases them all and tries again; closing
     * the backend releases them all.
     */
    static final class BufferCache {
        /** The cap on devices that report little memory. */
        static final long MIN_CACHED_BYTES = 64L << 20;
        private final long maxCachedBytes;
        private final Map<Long, ArrayDeque<cl_mem>> free = new HashMap<>();
        private final ArrayDeque<Long> order = new ArrayDeque<>(); // sizes, oldest first
        private long bytes;

        BufferCache(long maxCachedBytes) {
            this.maxCachedBytes = maxCachedBytes;
        }

        /**
         * An eighth of the device's global memory, at least {@link #MIN_CACHED_BYTES} and at most
         * 2 GiB: enough that the outputs of a call on tensors of hundreds of MiB are reused by the
         * next call instead of allocated again (on a CPU driver a new buffer's pages fault in on
         * first touch: about 20 ms for 128 MiB here), little enough to leave the device its memory.
         */
        static long capFor(DeviceInfo info) {
            return Math.max(MIN_CACHED_BYTES, Math.min(info.globalMemBytes() / 8, 2L << 30));
        }

        synchronized cl_mem take(long size) {
            ArrayDeque<cl_mem> q = free.get(size);
            cl_mem m = q == null ? null : q.pollFirst();
            if (m != null) {
                bytes -= size;
                for (Iterator<Long> it = order.iterator(); it.hasNext();) {
                    if (it.next() == size) {
                        it.remove();
                        break;
                    }
                }
            }
            return m;
        }

        /** Keeps {@code m}, releasing the oldest cached buffers if the cap is exceeded. */
        synchronized void give(cl_mem m, long size) {
            if (size > maxCachedBytes) {
                clReleaseMemObject(m);
                return;
            }
            free.computeIfAbsent(size, k -> new ArrayDeque<>()).addFirst(m);
            order.addLast(size);
            bytes += size;
            while (bytes > maxCachedBytes) {
                long oldest = order.pollFirst();
                cl_mem victim = free.get(oldest).pollLast();
                bytes -= oldest;
                clReleaseMemObject(victim);
            }
        }

        synchronized long bytes() {
            return bytes;
        }

        synchronized void releaseAll() {
            for (ArrayDeque<cl_mem> q : free.values()) {
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
    public void write(Buffer dst, HostTensor src) {
        ClBuffer d = cl(dst);
        if (d.elements() == 0) {
            return;
        }
        if (src.dtype() != d.dtype()) {
            throw new IllegalArgumentException("cannot write " + src.dtype() + " data into a " + d.dtype() + " buffer");
        }
        synchronized (lock) {
            transfers.write(d.mem(), src.array(), d.bytes());
        }
    }

    @Override
    public HostTensor read(Buffer src, Shape shape) {
        ClBuffer s = cl(src);
        HostTensor out = HostTensor.zeros(s.dtype(), shape);
        if (s.elements() == 0) {
            return out;
        }
        synchronized (lock) {
            transfers.read(s.mem(), out.array(), s.bytes());
        }
        return out;
    }

    @Override
    public Buffer importHost(HostTensor data) {
        Buffer b = allocate(data.dtype(), data.shape().size());
        try {
            write(b, data);
            return b;
        } catch (RuntimeException e) {
            b.close();
            throw e;
        }
    }

    @Override
    public HostTensor exportHost(Buffer buffer, Shape shape) {
        return read(buffer, shape);
    }

    @Override
    public void copy(Buffer src, Buffer dst) {
        ClBuffer s = cl(src);
        ClBuffer d = cl(dst);
        if (s.elements() == 0) {
            return;
        }
        synchronized (lock) {
            if (sizing.serial() && s.bytes() % 4 == 0) {
                // CPU drivers: the copy kernel on every core (PoCL's clEnqueueCopyBuffer ran at about
                // half the copy kernel's GB/s here).
                long words = s.bytes() / 4;
                long perItem = WorkSizing.roundUp(Math.max(1, (words + 31) / 32), sizing.vectorWidth());
                Args a = args(program(DType.FLOAT32, DType.FLOAT32), "copy_words").mem(src).mem(dst).ulong(words)
                        .ulong(perItem);
                launchSerial(a, (words + perItem - 1) / perItem);
            } else {
                cl_event e = timedEvent();
                check(clEnqueueCopyBuffer(queue, s.mem(), d.mem(), 0, 0, s.bytes(), 0, null, e),
                        "clEnqueueCopyBuffer");
                recordTimed(e);
            }
            finish();
        }
    }

    @Override
    public void fill(Buffer dst, float value) {
        ClBuffer d = cl(dst);
        if (d.elements() == 0) {
            return;
        }
        Pointer pattern;
        switch (d.dtype()) {
            case FLOAT64:
                pattern = Pointer.to(new double[] {value});
                break;
            case FLOAT16:
                pattern = Pointer.to(new short[] {HalfFloats.floatToHalf(value)});
                break;
            case BFLOAT16:
                pattern = Pointer.to(new short[] {HalfFloats.floatToBfloat16(value)});
                break;
            case FLOAT32:
            default:
                pattern = Pointer.to(new float[] {value});
        }
        synchronized (lock) {
            cl_event e = timedEvent();
            check(clEnqueueFillBuffer(queue, d.mem(), pattern, d.dtype().byteSize(), 0, d.bytes(), 0, null, e),
                    "clEnqueueFillBuffer");
            recordTimed(e);
            finish();
        }
    }

    // ---------------------------------------------------------------- Backend: primitives

    /** The parameter type of a call: that of the first parameter buffer given, else float32. */
    private static DType paramType(Buffer... params) {
        for (Buffer b : params) {
            if (b != null) {
                return b.dtype();
            }
        }
        return DType.FLOAT32;
    }

    @Override
    public void rowNorm(RowNormPlan p, Buffer x, Buffer scale, Buffer bias, Buffer y, Buffer mean, Buffer invStd) {
        int flags = (p.hasScale() && scale != null ? HAS_SCALE : 0) | (p.hasBias() && bias != null ? HAS_BIAS : 0)
                | (mean != null && p.mode() != StatMode.RMS ? WRITE_MEAN : 0) | (invStd != null ? WRITE_INVSTD : 0)
                | (y == null ? SKIP_APPLY : 0);
        Program prog = program(x.dtype(), paramType(scale, bias));
        // The pipelined kernel takes the affine entry from the column alone: layer and RMS norm.
        long rowsPerItem = p.isContiguous() && p.spatial() == 1 && p.groups() == 1
                ? sizing.pipelinedRowsPerItem(p.rows(), p.cols() * x.dtype().byteSize()) : 0;
        if (rowsPerItem > 0) {
            synchronized (lock) {
                Args a = args(prog, "row_norm_pipelined").mem(x).mem(scale).mem(bias).mem(y).mem(mean).mem(invStd)
                        .ulong(p.rows()).ulong(p.cols()).ulong(rowsPerItem).f32(p.epsilon()).i32(modeCode(p.mode()))
                        .i32(flags);
                launchSerial(a, (p.rows() + rowsPerItem - 1) / rowsPerItem);
                finish();
            }
            return;
        }
        long shortRows = p.isContiguous() ? sizing.shortRowsPerItem(p.rows(), p.cols() * x.dtype().byteSize()) : 0;
        if (shortRows > 0) {
            synchronized (lock) {
                Args a = args(prog, "row_norm_rows").mem(x).mem(scale).mem(bias).mem(y).mem(mean).mem(invStd)
                        .shortRows(p, shortRows).f32(p.epsilon()).i32(modeCode(p.mode())).i32(flags);
                launchSerial(a, (p.rows() + shortRows - 1) / shortRows);
                finish();
            }
            return;
        }
        int items = p.isContiguous() && p.spatial() == 1
                ? sizing.rowItems(p.cols(), prog.groupSizes.get("row_norm_wg")) : 0;
        if (items > 0) {
            rowNormWorkGroup(prog, p, x, scale, bias, y, mean, invStd, flags, items);
            return;
        }
        String name = sizing.serial() ? "row_norm_serial" : "row_norm_group";
        synchronized (lock) {
            Args a = args(prog, name).mem(x).mem(scale).mem(bias).mem(y).mem(mean).mem(invStd).layout(p)
                    .f32(p.epsilon()).i32(modeCode(p.mode())).i32(flags);
            launchRows(prog, a, name, p.rows(), 3);
            finish();
        }
    }

    /**
     * Contiguous rows with one affine entry per value (spatial 1: layer and RMS norm, group norm of
     * (N, C) data) on the work-group family: row_norm_wg, {@link WorkSizing#rowItems} work-items per
     * row and as many rows per work-group as fit (vector loads, the row kept in registers where it
     * fits, see row_norm.cl). Other layouts take row_norm_group, one work-group per row.
     */
    private void rowNormWorkGroup(Program prog, RowNormPlan p, Buffer x, Buffer scale, Buffer bias, Buffer y,
            Buffer mean, Buffer invStd, int flags, int items) {
        int wg = prog.groupSizes.get("row_norm_wg");
        long rowsPerGroup = wg / items;
        synchronized (lock) {
            args(prog, "row_norm_wg").mem(x).mem(scale).mem(bias).mem(y).mem(mean).mem(invStd).ulong(p.rows())
                    .ulong(p.cols()).ulong(p.groups()).ulong(p.channelsPerGroup()).i32(items).f32(p.epsilon())
                    .i32(modeCode(p.mode())).i32(flags).local(wg).local(wg)
                    .launch(new long[] {(p.rows() + rowsPerGroup - 1) / rowsPerGroup * wg}, new long[] {wg});
            finish();
        }
    }

    /** One work-item per row (serial) or one work-group per row with {@code localArrays} local arrays. */
    private void launchRows(Program prog, Args a, String name, long rows, int localArrays) {
        if (sizing.serial()) {
            launchSerial(a, rows);
        } else {
            int wg = prog.groupSizes.get(name);
            for (int i = 0; i < localArrays; i++) {
                a.local(wg);
            }
            a.launch(new long[] {rows * wg}, new long[] {wg});
        }
    }

    @Override
    public void channelStats(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut) {
        boolean up = update != null;
        Program prog = program(x.dtype(), up ? paramType(runMeanIn) : DType.FLOAT32);
        long parts = channelParts(prog, p, x.dtype());
        try (Buffer partials = scratch(x.dtype().statistics(), p.channels() * parts * 3);
                Buffer acc = channelRowScratch(p, x.dtype(), parts)) {
            synchronized (lock) {
                enqueueChannelPartials(prog, p, x, partials, acc, parts);
                args(prog, "channel_finalize").mem(x).mem(partials).mem(mean).mem(meanLo).mem(invStd)
                        .mem(up ? runMeanIn : null).mem(up ? runVarIn : null).mem(up ? runMeanOut : null)
                        .mem(up ? runVarOut : null).ulong(p.channels()).ulong(p.inner()).ulong(parts)
                        .ulong(p.perChannel()).f32(p.epsilon()).i32(modeCode(p.mode())).i32(up ? 1 : 0)
                        .f32(up ? update.batchWeight() : 0f).i32(up && update.unbiased() ? 1 : 0)
                        .i32(meanLo != null ? 1 : 0).launch(new long[] {p.channels()}, null);
                finish();
            }
        }
    }

    /**
     * Statistics and apply in one kernel (channel_norm_serial, or channel_norm_blocks for blocks of
     * channels: {@link WorkSizing#channelsPerBlock}) on the one-work-item family when each
     * channel is one part of contiguous segments and the running statistics, scale and bias share a
     * type; otherwise {@link #channelStats} then {@link #channelApply}.
     */
    @Override
    public void channelNorm(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut, Buffer scale, Buffer bias,
            Buffer y) {
        boolean up = update != null;
        boolean affine = scale != null || bias != null;
        DType param = affine ? paramType(scale, bias) : up ? paramType(runMeanIn) : DType.FLOAT32;
        boolean oneParamType = !up || !affine || paramType(runMeanIn) == param;
        Program prog = oneParamType && sizing.serial() && !columnKernels(p) ? program(x.dtype(), param) : null;
        if (prog == null || channelParts(prog, p, x.dtype()) != 1) {
            Backend.super.channelNorm(p, x, mean, meanLo, invStd, update, runMeanIn, runVarIn, runMeanOut, runVarOut,
                    scale, bias, y);
            return;
        }
        int flags = (scale != null ? HAS_SCALE : 0) | (bias != null ? HAS_BIAS : 0) | (meanLo != null ? HAS_MEAN_LO : 0);
        long perItem = sizing.channelsPerBlock(p.channels(), p.perChannel() * x.dtype().byteSize());
        synchronized (lock) {
            Args a = args(prog, perItem > 0 ? "channel_norm_blocks" : "channel_norm_serial").mem(x).mem(scale)
                    .mem(bias).mem(y).mem(mean).mem(meanLo).mem(invStd).mem(up ? runMeanIn : null)
                    .mem(up ? runVarIn : null).mem(up ? runMeanOut : null).mem(up ? runVarOut : null)
                    .ulong(p.outer()).ulong(p.channels()).ulong(p.inner()).f32(p.epsilon()).i32(modeCode(p.mode()))
                    .i32(up ? 1 : 0).f32(up ? update.batchWeight() : 0f).i32(up && update.unbiased() ? 1 : 0)
                    .i32(flags);
            launchChannels(a, p.channels(), perItem);
            finish();
        }
    }

    @Override
    public void channelMoments(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer m2) {
        Program prog = program(x.dtype(), DType.FLOAT32);
        long parts = channelParts(prog, p, x.dtype());
        try (Buffer partials = scratch(x.dtype().statistics(), p.channels() * parts * 3);
                Buffer acc = channelRowScratch(p, x.dtype(), parts)) {
            synchronized (lock) {
                enqueueChannelPartials(prog, p, x, partials, acc, parts);
                args(prog, "channel_moments").mem(x).mem(partials).mem(mean).mem(meanLo).mem(m2)
                        .ulong(p.channels()).ulong(p.inner()).ulong(parts).i32(meanLo != null ? 1 : 0)
                        .launch(new long[] {p.channels()}, null);
                finish();
            }
        }
    }

    /**
     * Whether the channel kernels for one value per row apply: channels one apart (inner == 1:
     * BatchNorm1d and channels-last), on the one-work-item family. GPUs read such a tensor
     * coalesced with the element-wise kernels already.
     */
    private boolean columnKernels(ChannelPlan p) {
        return sizing.serial() && p.inner() == 1;
    }

    /**
     * Parts per channel of the first statistics stage. Column kernels: the row blocks of
     * channel_partial_rows, or channel_partial_cols' parts when not even one block's scratch fits
     * one allocation.
     */
    private long channelParts(Program prog, ChannelPlan p, DType dtype) {
        if (columnKernels(p)) {
            long byRows = channelRowParts(p, dtype);
            return byRows > 0 ? byRows : sizing.columnParts(p.outer(), p.channels(), sizing.vectorWidth());
        }
        int wg = sizing.serial() ? 1 : prog.groupSizes.get("channel_partial_group");
        return sizing.partsPerChannel(p.channels(), p.perChannel(), wg);
    }

    /**
     * Row blocks of channel_partial_rows (column kernels only): {@link WorkSizing#rowParts}, fewer
     * when their scratch would not fit one allocation, 0 when not even one block's fits.
     */
    private long channelRowParts(ChannelPlan p, DType dtype) {
        long perPart = p.channels() * CHANNEL_ROW_SLICES * dtype.statistics().byteSize();
        long maxParts = maxAllocationBytes() / Math.max(1, perPart);
        return maxParts < 1 ? 0 : Math.min(maxParts, sizing.rowParts(p.outer()));
    }

    /** @return channel_partial_rows' per-block scratch for {@code parts} blocks, or null when it does not apply */
    private Buffer channelRowScratch(ChannelPlan p, DType dtype, long parts) {
        if (!columnKernels(p) || channelRowParts(p, dtype) == 0) {
            return null;
        }
        return scratch(dtype.statistics(), p.channels() * CHANNEL_ROW_SLICES * parts);
    }

    /**
     * Stage 1 of the channel statistics: (count, shifted mean, M2) per channel part. {@code acc}:
     * {@link #channelRowScratch}'s buffer, or null. Holds {@link #lock}.
     */
    private void enqueueChannelPartials(Program prog, ChannelPlan p, Buffer x, Buffer partials, Buffer acc,
            long parts) {
        if (acc != null) {
            launchSerial(args(prog, "channel_partial_rows").mem(x).mem(acc).mem(partials).ulong(p.outer())
                    .ulong(p.channels()).ulong(parts), parts);
            return;
        }
        if (columnKernels(p)) {
            long blocks = (p.channels() + sizing.vectorWidth() - 1) / sizing.vectorWidth();
            launchSerial(args(prog, "channel_partial_cols").mem(x).mem(partials).ulong(p.outer()).ulong(p.channels())
                    .ulong(parts), blocks * parts);
            return;
        }
        String name = sizing.serial() ? "channel_partial_serial" : "channel_partial_group";
        Args a = args(prog, name).mem(x).mem(partials).ulong(p.outer()).ulong(p.channels()).ulong(p.inner())
                .ulong(parts);
        if (sizing.serial()) {
            launchSerial(a, p.channels() * parts);
        } else {
            int wg = prog.groupSizes.get(name);
            a.local(wg).local(wg).local(wg).launch(new long[] {p.channels() * parts * wg}, new long[] {wg});
        }
    }

    @Override
    public void channelRunningStats(ChannelPlan p, Buffer runMean, Buffer runVar, Buffer mean, Buffer invStd) {
        Program prog = program(mean.dtype() == DType.FLOAT64 ? DType.FLOAT64 : DType.FLOAT32, runMean.dtype());
        synchronized (lock) {
            args(prog, "channel_running_stats").mem(runMean).mem(runVar).mem(mean).mem(invStd).ulong(p.channels())
                    .f32(p.epsilon()).i32(modeCode(p.mode())).launch(new long[] {p.channels()}, null);
            finish();
        }
    }

    @Override
    public void channelApply(ChannelPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale,
            Buffer bias, Buffer y) {
        int flags = (scale != null ? HAS_SCALE : 0) | (bias != null ? HAS_BIAS : 0) | (meanLo != null ? HAS_MEAN_LO : 0);
        Program prog = program(x.dtype(), paramType(scale, bias));
        synchronized (lock) {
            if (columnKernels(p)) {
                long rowsPerItem = sizing.rowsPerItem(p.outer());
                Args a = args(prog, "channel_apply_cols").mem(x).mem(mean).mem(meanLo).mem(invStd).mem(scale)
                        .mem(bias).mem(y).ulong(p.outer()).ulong(p.channels()).ulong(rowsPerItem).i32(flags);
                launchSerial(a, (p.outer() + rowsPerItem - 1) / rowsPerItem);
            } else {
                args(prog, "channel_apply").mem(x).mem(mean).mem(meanLo).mem(invStd).mem(scale).mem(bias).mem(y)
                        .ulong(p.channels()).ulong(p.inner()).i32(flags)
                        .launch(new long[] {p.inner(), p.outer() * p.channels()}, null);
            }
            finish();
        }
    }

    @Override
    public void rowApply(RowNormPlan p, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale, Buffer bias,
            Buffer y) {
        boolean rms = p.mode() == StatMode.RMS;
        boolean lo = !rms && meanLo != null;
        int flags = (p.hasScale() && scale != null ? HAS_SCALE : 0) | (p.hasBias() && bias != null ? HAS_BIAS : 0)
                | (lo ? HAS_MEAN_LO : 0);
        Program prog = program(x.dtype(), paramType(scale, bias));
        synchronized (lock) {
            args(prog, "row_apply").mem(x).mem(rms ? null : mean).mem(lo ? meanLo : null).mem(invStd).mem(scale)
                    .mem(bias).mem(y).layout(p).i32(rms ? 1 : 0).i32(flags)
                    .launch(new long[] {p.cols(), p.rows()}, null);
            finish();
        }
    }

    // ---------------------------------------------------------------- Backend: backward

    @Override
    public void rowNormBackward(RowNormPlan p, Buffer dy, Buffer x, Buffer scale, Buffer mean, Buffer invStd,
            Buffer dx) {
        boolean rms = p.mode() == StatMode.RMS;
        Program prog = program(x.dtype(), paramType(scale));
        long shortRows = p.isContiguous() ? sizing.shortRowsPerItem(p.rows(), p.cols() * x.dtype().byteSize()) : 0;
        if (shortRows > 0) {
            synchronized (lock) {
                Args a = args(prog, "row_backward_rows").mem(dy).mem(x).mem(scale).mem(rms ? null : mean).mem(invStd)
                        .mem(dx).shortRows(p, shortRows).i32(rms ? 1 : 0).i32(scale != null ? 1 : 0);
                launchSerial(a, (p.rows() + shortRows - 1) / shortRows);
                finish();
            }
            return;
        }
        String name = sizing.serial() ? "row_backward_serial" : "row_backward_group";
        synchronized (lock) {
            Args a = args(prog, name).mem(dy).mem(x).mem(scale).mem(rms ? null : mean).mem(invStd).mem(dx).layout(p)
                    .i32(rms ? 1 : 0).i32(scale != null ? 1 : 0);
            launchRows(prog, a, name, p.rows(), 2);
            finish();
        }
    }

    /**
     * On the one-work-item family: layer and RMS norm over contiguous rows with one statistic per
     * row take row_backward_affine_rows (dX and the parameter gradients' partials in one read of
     * dY and X, the same bits as the two kernels); channels-first group and instance norm take
     * row_backward_affine_slices (partials per sample); group norm of (N, C) data (rows of the
     * channels of a group) takes row_backward_affine_groups (affine_grad_rows' partials, the same bits
     * as the two kernels); all then affine_grad_finalize. Anything else: the two calls.
     */
    @Override
    public void rowNormBackwardWithGrad(RowNormPlan plan, AffineGradPlan grad, Buffer dy, Buffer x, Buffer scale,
            Buffer mean, Buffer invStd, Buffer dx, Buffer dScale, Buffer dBias) {
        boolean contiguousRows = plan.isContiguous() && plan.groups() == 1 && plan.spatial() == 1
                && grad.inner() == 1 && grad.channels() == plan.cols() && grad.outer() == plan.rows()
                && grad.channelsPerStat() >= grad.channels() && grad.outerPerStat() == 1 && grad.statsPerOuter() == 1;
        boolean oneParamType = paramType(scale) == paramType(dScale, dBias) || scale == null && dScale == null
                && dBias == null;
        if (sizing.serial() && oneParamType && slicesWithChannels(plan, grad)
                && grad.channels() * grad.outer() * 2 * x.dtype().statistics().byteSize() <= maxAllocationBytes()) {
            sliceBackwardWithGrad(plan, grad, dy, x, scale, mean, invStd, dx, dScale, dBias);
            return;
        }
        long maxParts = affineRowParts(grad, x);
        // Rows shorter than the vector width go VW groups at a time through the lanes, so a sample's
        // groups must come in whole vectors; else they stay with row_backward_rows, which takes VW rows
        // at a time across samples (one at a time, group norm of 65536x128 in 32 groups took 4x as long).
        int vw = sizing.vectorWidth();
        if (sizing.serial() && oneParamType && groupsOfChannels(plan, grad) && maxParts >= 1
                && (plan.channelsPerGroup() >= vw || plan.groups() % vw == 0)) {
            groupBackwardWithGrad(plan, grad, dy, x, scale, mean, invStd, dx, dScale, dBias, maxParts);
            return;
        }
        if (!sizing.serial() || !contiguousRows || !oneParamType || maxParts < 1) {
            Backend.super.rowNormBackwardWithGrad(plan, grad, dy, x, scale, mean, invStd, dx, dScale, dBias);
            return;
        }
        boolean rms = plan.mode() == StatMode.RMS;
        Program prog = program(x.dtype(), paramType(scale, dScale, dBias));
        long parts = Math.min(maxParts, sizing.gradRowParts(grad.outer()));
        DType st = x.dtype().statistics();
        try (Buffer partials = scratch(st, grad.channels() * parts * 2);
                Buffer acc = scratch(st, grad.channels() * parts * 4)) {
            synchronized (lock) {
                launchSerial(args(prog, "row_backward_affine_rows").mem(dy).mem(x).mem(scale).mem(rms ? null : mean)
                        .mem(invStd).mem(dx).mem(acc).mem(partials).ulong(plan.rows()).ulong(plan.cols())
                        .ulong(parts).i32(rms ? 1 : 0).i32(scale != null ? 1 : 0), parts);
                finalizeAffineGrad(prog, partials, dScale, dBias, null, grad.channels(), parts);
                finish();
            }
        }
    }

    /** Stage 2 of the parameter gradients: per channel, its parts in order. Holds {@link #lock}. */
    private void finalizeAffineGrad(Program prog, Buffer partials, Buffer dScale, Buffer dBias, Buffer sums,
            long channels, long parts) {
        args(prog, "affine_grad_finalize").mem(partials).mem(dScale).mem(dBias).mem(sums).ulong(channels).ulong(parts)
                .i32(dScale != null ? 1 : 0).i32(dBias != null ? 1 : 0).i32(sums != null ? 1 : 0)
                .launch(new long[] {channels}, null);
    }

    /**
     * Whether the rows are channels-first group/instance-norm slices (sample, group) of whole
     * channels with more than one value each, and the parameter gradients are per channel (or per
     * group) over them: row_backward_affine_slices' case.
     */
    private static boolean slicesWithChannels(RowNormPlan plan, AffineGradPlan grad) {
        return plan.isContiguous() && plan.mode() != StatMode.RMS && plan.spatial() > 1
                && grad.outer() * plan.groups() == plan.rows() && grad.channels() == plan.groups() * plan.channelsPerGroup()
                && grad.inner() == plan.spatial() && grad.outerPerStat() == 1 && grad.statsPerOuter() == plan.groups()
                && grad.channelsPerStat() == plan.channelsPerGroup();
    }

    /**
     * Whether the rows are the groups of (N, C) group norm (each row the channels of one group of a
     * sample, one statistic a row) and the parameter gradients are per channel over the samples:
     * row_backward_affine_groups' case.
     */
    private static boolean groupsOfChannels(RowNormPlan plan, AffineGradPlan grad) {
        return plan.isContiguous() && plan.mode() != StatMode.RMS && plan.spatial() == 1 && plan.groups() > 1
                && plan.cols() == plan.channelsPerGroup() && grad.inner() == 1
                && grad.outer() * plan.groups() == plan.rows()
                && grad.channels() == plan.groups() * plan.channelsPerGroup() && grad.outerPerStat() == 1
                && grad.statsPerOuter() == plan.groups() && grad.channelsPerStat() == plan.channelsPerGroup();
    }

    /** row_backward_affine_groups over affine_grad_rows' row blocks, then affine_grad_finalize. */
    private void groupBackwardWithGrad(RowNormPlan plan, AffineGradPlan grad, Buffer dy, Buffer x, Buffer scale,
            Buffer mean, Buffer invStd, Buffer dx, Buffer dScale, Buffer dBias, long maxParts) {
        Program prog = program(x.dtype(), paramType(scale, dScale, dBias));
        long parts = Math.min(maxParts, sizing.gradRowParts(grad.outer())); // affineGrad's, for its bits
        DType st = x.dtype().statistics();
        try (Buffer partials = scratch(st, grad.channels() * parts * 2);
                Buffer acc = scratch(st, grad.channels() * parts * 4)) {
            synchronized (lock) {
                launchSerial(args(prog, "row_backward_affine_groups").mem(dy).mem(x).mem(scale).mem(mean)
                        .mem(invStd).mem(dx).mem(acc).mem(partials).ulong(grad.outer()).ulong(grad.channels())
                        .ulong(plan.groups()).ulong(parts).i32(scale != null ? 1 : 0), parts);
                finalizeAffineGrad(prog, partials, dScale, dBias, null, grad.channels(), parts);
                finish();
            }
        }
    }

    /** row_backward_affine_slices, then affine_grad_finalize over the N samples' partials. */
    private void sliceBackwardWithGrad(RowNormPlan plan, AffineGradPlan grad, Buffer dy, Buffer x, Buffer scale,
            Buffer mean, Buffer invStd, Buffer dx, Buffer dScale, Buffer dBias) {
        Program prog = program(x.dtype(), paramType(scale, dScale, dBias));
        long parts = grad.outer();
        try (Buffer partials = scratch(x.dtype().statistics(), grad.channels() * parts * 2)) {
            synchronized (lock) {
                launchSerial(args(prog, "row_backward_affine_slices").mem(dy).mem(x).mem(scale).mem(mean).mem(invStd)
                        .mem(dx).mem(partials).ulong(plan.rows()).ulong(plan.groups()).ulong(plan.channelsPerGroup())
                        .ulong(plan.spatial()).i32(scale != null ? 1 : 0), plan.rows());
                finalizeAffineGrad(prog, partials, dScale, dBias, null, grad.channels(), parts);
                finish();
            }
        }
    }

    /** @return how many row blocks' accumulators (4 sums per column) fit one allocation */
    private long affineRowParts(AffineGradPlan p, Buffer x) {
        long accBytesPerPart = p.channels() * 4L * x.dtype().statistics().byteSize();
        return maxAllocationBytes() / Math.max(1, accBytesPerPart);
    }

    @Override
    public void affineGrad(AffineGradPlan p, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer dScale,
            Buffer dBias, Buffer sums) {
        boolean cols = p.inner() == 1;
        // affine_grad_rows keeps 4 sums per column and row block in a scratch buffer: fewer blocks
        // when that would not fit one allocation, the column kernel when not even one fits.
        long maxParts = affineRowParts(p, x);
        boolean byRows = cols && sizing.serial() && maxParts >= 1;
        String name = byRows ? "affine_grad_rows" : cols ? "affine_grad_cols"
                : sizing.serial() ? "affine_grad_serial" : "affine_grad_group";
        Program prog = program(x.dtype(), paramType(dScale, dBias));
        int wg = name.equals("affine_grad_group") ? prog.groupSizes.get(name) : 1;
        long parts = byRows ? Math.min(maxParts, sizing.gradRowParts(p.outer()))
                : cols ? sizing.rowBlocks(p.outer(), p.channels())
                : sizing.partsPerChannel(p.channels(), p.outer() * p.inner(), wg);
        Buffer m = p.rms() ? null : mean;
        try (Buffer partials = scratch(x.dtype().statistics(), p.channels() * parts * 2);
                Buffer acc = byRows ? scratch(x.dtype().statistics(), p.channels() * parts * 4) : null) {
            synchronized (lock) {
                if (byRows) {
                    launchSerial(args(prog, name).mem(dy).mem(x).mem(m).mem(invStd).mem(acc).mem(partials)
                            .ulong(p.outer()).ulong(p.channels()).ulong(parts).ulong(p.statsPerOuter())
                            .ulong(p.channelsPerStat()).ulong(p.outerPerStat()).i32(p.rms() ? 1 : 0), parts);
                } else if (cols) {
                    args(prog, name).mem(dy).mem(x).mem(m).mem(invStd).mem(partials).ulong(p.outer())
                            .ulong(p.channels()).ulong(parts).ulong(p.statsPerOuter()).ulong(p.channelsPerStat())
                            .ulong(p.outerPerStat()).i32(p.rms() ? 1 : 0)
                            .launch(new long[] {p.channels(), parts}, null);
                } else {
                    Args a = args(prog, name).mem(dy).mem(x).mem(m).mem(invStd).mem(partials).ulong(p.outer())
                            .ulong(p.channels()).ulong(p.inner()).ulong(parts).ulong(p.statsPerOuter())
                            .ulong(p.channelsPerStat()).ulong(p.outerPerStat()).i32(p.rms() ? 1 : 0);
                    if (sizing.serial()) {
                        launchSerial(a, p.channels() * parts);
                    } else {
                        a.local(wg).local(wg).launch(new long[] {p.channels() * parts * wg}, new long[] {wg});
                    }
                }
                finalizeAffineGrad(prog, partials, dScale, dBias, sums, p.channels(), parts);
                finish();
            }
        }
    }

    @Override
    public void channelBackward(ChannelPlan p, long count, Buffer dy, Buffer x, Buffer mean, Buffer invStd,
            Buffer scale, Buffer sums, Buffer dx) {
        boolean training = sums != null;
        Program prog = program(x.dtype(), paramType(scale));
        if (columnKernels(p)) {
            try (Buffer coef = scratch(x.dtype().statistics(), p.channels() * 5)) {
                synchronized (lock) {
                    args(prog, "channel_backward_coeffs").mem(mean).mem(invStd).mem(scale).mem(sums).mem(coef)
                            .ulong(p.channels()).ulong(count).i32(training ? 1 : 0).i32(scale != null ? 1 : 0)
                            .launch(new long[] {p.channels()}, null);
                    long rowsPerItem = sizing.rowsPerItem(p.outer());
                    launchSerial(args(prog, "channel_backward_cols").mem(dy).mem(x).mem(coef).mem(dx).ulong(p.outer())
                            .ulong(p.channels()).ulong(rowsPerItem).i32(training ? 1 : 0),
                            (p.outer() + rowsPerItem - 1) / rowsPerItem);
                    finish();
                }
            }
            return;
        }
        synchronized (lock) {
            args(prog, "channel_backward").mem(dy).mem(x).mem(mean).mem(invStd).mem(scale).mem(sums).mem(dx)
                    .ulong(p.channels()).ulong(p.inner()).ulong(count).i32(training ? 1 : 0)
                    .i32(scale != null ? 1 : 0).launch(new long[] {p.inner(), p.outer() * p.channels()}, null);
            finish();
        }
    }

    /**
     * On the one-work-item family, batch norm over channels of contiguous segments, each one part of
     * the parameter-gradient reduction, takes channel_backward_fused (the sums and dX of a channel
     * in one read of dY and X; the same bits as affine_grad_serial + channel_backward), or
     * channel_backward_blocks for blocks of channels ({@link WorkSizing#channelsPerBlock}), and
     * affine_grad_finalize; otherwise the two calls.
     */
    @Override
    public void channelBackwardWithGrad(ChannelPlan p, boolean training, Buffer dy, Buffer x, Buffer mean,
            Buffer invStd, Buffer scale, Buffer dScale, Buffer dBias, Buffer dx) {
        boolean oneParamType = scale == null || dScale == null && dBias == null
                || paramType(scale) == paramType(dScale, dBias);
        if (!sizing.serial() || columnKernels(p) || !oneParamType
                || sizing.partsPerChannel(p.channels(), p.perChannel(), 1) != 1) {
            Backend.super.channelBackwardWithGrad(p, training, dy, x, mean, invStd, scale, dScale, dBias, dx);
            return;
        }
        Program prog = program(x.dtype(), paramType(scale, dScale, dBias));
        long perItem = sizing.channelsPerBlock(p.channels(), p.perChannel() * x.dtype().byteSize());
        try (Buffer partials = scratch(x.dtype().statistics(), p.channels() * 2)) {
            synchronized (lock) {
                Args a = args(prog, perItem > 0 ? "channel_backward_blocks" : "channel_backward_fused").mem(dy)
                        .mem(x).mem(mean).mem(invStd).mem(scale).mem(partials).mem(dx).ulong(p.outer())
                        .ulong(p.channels()).ulong(p.inner()).ulong(p.perChannel()).i32(training ? 1 : 0)
                        .i32(scale != null ? 1 : 0);
                launchChannels(a, p.channels(), perItem);
                finalizeAffineGrad(prog, partials, dScale, dBias, null, p.channels(), 1);
                finish();
            }
        }
    }

    /**
     * Launches a per-channel kernel of the one-work-item family: one work-item a channel when
     * {@code perBlock} is 0, else one a block of {@code perBlock} channels (its last argument).
     */
    private void launchChannels(Args a, long channels, long perBlock) {
        if (perBlock > 0) {
            launchSerial(a.ulong(perBlock), (channels + perBlock - 1) / perBlock);
        } else {
            launchSerial(a, channels);
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
        check(clFinish(queue), "clFinish");
    }

    @Override
    public boolean startDeviceTimer() {
        synchronized (lock) {
            releaseTimed();
            timedEvents = new ArrayList<>();
            return true;
        }
    }

    @Override
    public long stopDeviceTimer() {
        synchronized (lock) {
            if (timedEvents == null) {
                return -1;
            }
            try {
                finish();
                long first = Long.MAX_VALUE;
                long last = Long.MIN_VALUE;
                long[] t = new long[1];
                for (cl_event e : timedEvents) {
                    check(clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, Sizeof.cl_ulong, Pointer.to(t), null),
                            "clGetEventProfilingInfo(START)");
                    first = Math.min(first, t[0]);
                    check(clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, Sizeof.cl_ulong, Pointer.to(t), null),
                            "clGetEventProfilingInfo(END)");
                    last = Math.max(last, t[0]);
                }
                return timedEvents.isEmpty() ? 0 : last - first;
            } finally {
                releaseTimed();
            }
        }
    }

    /** @return an event for the next command while {@link #startDeviceTimer} records, else null */
    private cl_event timedEvent() {
        return timedEvents != null ? new cl_event() : null;
    }

    /** Keeps the event of a command just enqueued (null: not recording) for {@link #stopDeviceTimer}. */
    private void recordTimed(cl_event e) {
        if (e != null) {
            timedEvents.add(e);
        }
    }

    private void releaseTimed() {
        if (timedEvents != null) {
            timedEvents.forEach(CL::clReleaseEvent);
            timedEvents = null;
        }
    }

    /**
     * The error check of every call that touches the device: a lost device (the driver reports it
     * unavailable, or commands failed for good) marks the backend unusable, so later calls fail
     * at once with a message that says so instead of with another driver error.
     */
    private void check(int code, String call) {
        if (code == CL_SUCCESS) {
            return;
        }
        if (code == CL_DEVICE_NOT_AVAILABLE || code == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST
                || code == LOST_DEVICE_NVIDIA) {
            lost = call + ": " + ClErrors.name(code) + " (" + code + ")";
        }
        ClErrors.check(code, call);
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
        String why = lost;
        if (why != null) {
            throw new DeviceLostException("the OpenCL device " + info.name() + " is lost (" + why
                    + "); its tensors are gone: create a new engine");
        }
    }

    @Override
    public boolean isLost() {
        return lost != null;
    }

    private Args args(Program prog, String kernel) {
        checkOpen();
        return new Args(kernel, prog.kernels.get(kernel));
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

        /** The layout of contiguous rows and their block size: row_norm_rows and row_backward_rows. */
        Args shortRows(RowNormPlan p, long rowsPerItem) {
            return ulong(p.rows()).ulong(p.cols()).ulong(p.groups()).ulong(p.channelsPerGroup()).ulong(p.spatial())
                    .ulong(rowsPerItem);
        }

        /** The nine ROW_LAYOUT_ARGS of row_norm.cl. */
        Args layout(RowNormPlan p) {
            return ulong(p.rows()).ulong(p.cols()).ulong(p.groups()).ulong(p.channelsPerGroup()).ulong(p.spatial())
                    .ulong(p.segments()).ulong(p.segmentStride()).ulong(p.outerStride()).ulong(p.groupStride());
        }

        /** A __local array of {@code items} statistics; its element size is set by the program (acc_t). */
        Args local(int items) {
            return set((long) items * 8, null); // 8 bytes covers float and double acc_t
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
            int injected = FaultInjection.launchError(name);
            cl_event e = timedEvent();
            check(injected != 0 ? injected
                    : clEnqueueNDRangeKernel(queue, kernel, global.length, null, global, local, 0, null, e),
                    "clEnqueueNDRangeKernel(" + name + ")");
            recordTimed(e);
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            clFinish(queue);
            releaseTimed();
            closed = true;
        }
        for (ClBuffer b : live.toArray(new ClBuffer[0])) {
            b.close();
        }
        cache.releaseAll();
        transfers.close();
        programs.values().forEach(Program::release);
        clReleaseCommandQueue(queue);
        clReleaseContext(context);
    }
}
