package org.normcl.opencl;

import static org.jocl.CL.CL_FALSE;
import static org.jocl.CL.CL_MAP_READ;
import static org.jocl.CL.CL_MAP_WRITE;
import static org.jocl.CL.CL_MEM_ALLOC_HOST_PTR;
import static org.jocl.CL.CL_MEM_READ_WRITE;
import static org.jocl.CL.CL_TRUE;
import static org.jocl.CL.clCreateBuffer;
import static org.jocl.CL.clEnqueueMapBuffer;
import static org.jocl.CL.clEnqueueReadBuffer;
import static org.jocl.CL.clEnqueueUnmapMemObject;
import static org.jocl.CL.clEnqueueWriteBuffer;
import static org.jocl.CL.clFinish;
import static org.jocl.CL.clFlush;
import static org.jocl.CL.clReleaseEvent;
import static org.jocl.CL.clReleaseMemObject;
import static org.jocl.CL.clWaitForEvents;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;

import org.jocl.Pointer;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_event;
import org.jocl.cl_mem;
import org.normcl.DeviceInfo;

/**
 * Copies between Java arrays and device buffers for the host-array calls.
 *
 * <p>Two ways, chosen per device by {@link #choose}:
 * <ul>
 *   <li>{@link Mode#DIRECT}: one blocking {@code clEnqueueWriteBuffer}/{@code clEnqueueReadBuffer}
 *       on the Java array (JOCL pins it for the call). Right for CPU drivers and integrated GPUs,
 *       whose buffers live in host memory: the driver does one copy, and a staging buffer would add a
 *       second.</li>
 *   <li>{@link Mode#STAGED}: through two pinned buffers ({@code CL_MEM_ALLOC_HOST_PTR}, mapped once
 *       for the backend's life), in chunks of {@link #CHUNK_BYTES}: the JVM copies chunk i + 1 into
 *       one pinned half while the device's DMA engine moves chunk i from the other. A discrete GPU's
 *       driver can only DMA from pinned memory; handed pageable memory it stages through a bounce
 *       buffer of its own without this overlap (NVIDIA's OpenCL best-practices guide describes this
 *       pinned, mapped pattern). Right for discrete GPUs.</li>
 * </ul>
 * The choice can be forced with {@code -D}{@value #PROPERTY}{@code =direct|staged|auto}.
 *
 * <p>JOCL keeps the staging buffer referenced after each non-blocking copy by waiting on the
 * copy's event from a thread of its own; the OpenCL API is thread-safe, so drivers allow that, but
 * Oclgrind 21.10's runtime crashes on it, so the simulator always gets {@link Mode#DIRECT}.
 *
 * <p>Not thread-safe: the backend calls it under its queue lock.
 */
final class HostTransfers implements AutoCloseable {
    /** System property that forces the transfer mode: {@code auto} (default), {@code direct}, {@code staged}. */
    static final String PROPERTY = "normcl.transfers";
    /** Bytes per pinned half: large enough that per-command overhead is small, small enough to overlap. */
    static final int CHUNK_BYTES = 4 << 20;

    /** How host arrays reach the device. */
    enum Mode {
        /** One blocking read or write on the Java array. */
        DIRECT,
        /** Through two pinned, mapped buffers, double-buffered. */
        STAGED
    }

    /** Where an OpenCL status code becomes an exception (the backend also notes a lost device there). */
    interface Check {
        void check(int code, String call);
    }

    private final cl_context context;
    private final cl_command_queue queue;
    private final Check check;
    private final Mode mode;
    private final int chunkBytes;
    private cl_mem[] pinned;
    private ByteBuffer[] mapped;

    HostTransfers(cl_context context, cl_command_queue queue, Mode mode, int chunkBytes, Check check) {
        if (chunkBytes < 8 || chunkBytes % 8 != 0) {
            throw new IllegalArgumentException("chunkBytes = " + chunkBytes + ": expected a positive multiple of 8");
        }
        this.context = context;
        this.queue = queue;
        this.mode = mode;
        this.chunkBytes = chunkBytes;
        this.check = check;
    }

    /**
     * @param info the device
     * @param hostUnifiedMemory whether the device reports {@code CL_DEVICE_HOST_UNIFIED_MEMORY}
     * @return {@link Mode#STAGED} for GPUs and accelerators with memory of their own, else
     *     {@link Mode#DIRECT} (also for Oclgrind: {@link ClInfo#isSimulator}); {@value #PROPERTY}
     *     overrides
     * @throws IllegalArgumentException if the property holds anything else
     */
    static Mode choose(DeviceInfo info, boolean hostUnifiedMemory) {
        String forced = System.getProperty(PROPERTY, "auto").trim().toLowerCase(Locale.ROOT);
        switch (forced) {
            case "direct":
                return Mode.DIRECT;
            case "staged":
                return Mode.STAGED;
            case "auto":
                return info.isCpu() || hostUnifiedMemory || ClInfo.isSimulator(info) ? Mode.DIRECT : Mode.STAGED;
            default:
                throw new IllegalArgumentException("-D" + PROPERTY + "=" + forced + ": expected auto, direct or staged");
        }
    }

    /** @return the mode this backend uses */
    Mode mode() {
        return mode;
    }

    /**
     * Writes a whole Java array into the start of a buffer and returns when the data is on the device.
     *
     * @param dst the device buffer
     * @param array a float[], double[] or short[] (float16/bfloat16 words)
     * @param bytes the bytes to write (the array's length times its element size)
     */
    void write(cl_mem dst, Object array, long bytes) {
        if (mode == Mode.DIRECT) {
            check.check(clEnqueueWriteBuffer(queue, dst, CL_TRUE, 0, bytes, pointer(array), 0, null, null),
                    "clEnqueueWriteBuffer");
            return;
        }
        ensurePinned();
        cl_event[] pending = new cl_event[2];
        try {
            int half = 0;
            for (long off = 0; off < bytes; off += chunkBytes, half ^= 1) {
                waitAndRelease(pending, half);
                int len = (int) Math.min(chunkBytes, bytes - off);
                ByteBuffer stage = mapped[half];
                stage.clear();
                fill(stage, array, off, len);
                cl_event done = new cl_event();
                check.check(clEnqueueWriteBuffer(queue, dst, CL_FALSE, off, len, Pointer.to(stage), 0, null, done),
                        "clEnqueueWriteBuffer(staged)");
                pending[half] = done;
                clFlush(queue); // start this chunk's DMA while the next one is filled
            }
        } finally {
            // The pinned halves are reused by the next call: nothing may still be reading them.
            waitAndRelease(pending, 0);
            waitAndRelease(pending, 1);
        }
    }

    /**
     * Reads the start of a buffer into a whole Java array.
     *
     * @param src the device buffer
     * @param array a float[], double[] or short[], filled from the buffer
     * @param bytes the bytes to read (the array's length times its element size)
     */
    void read(cl_mem src, Object array, long bytes) {
        if (mode == Mode.DIRECT) {
            check.check(clEnqueueReadBuffer(queue, src, CL_TRUE, 0, bytes, pointer(array), 0, null, null),
                    "clEnqueueReadBuffer");
            return;
        }
        ensurePinned();
        cl_event[] pending = new cl_event[2];
        try {
            long chunks = (bytes + chunkBytes - 1) / chunkBytes;
            enqueueRead(src, bytes, 0, pending);
            for (long i = 0; i < chunks; i++) {
                if (i + 1 < chunks) {
                    enqueueRead(src, bytes, i + 1, pending); // the device fills one half while the JVM drains the other
                }
                int half = (int) (i & 1);
                waitAndRelease(pending, half);
                long off = i * chunkBytes;
                int len = (int) Math.min(chunkBytes, bytes - off);
                ByteBuffer stage = mapped[half];
                stage.clear();
                drain(stage, array, off, len);
            }
        } finally {
            waitAndRelease(pending, 0);
            waitAndRelease(pending, 1);
        }
    }

    private void enqueueRead(cl_mem src, long bytes, long chunk, cl_event[] pending) {
        int half = (int) (chunk & 1);
        long off = chunk * chunkBytes;
        int len = (int) Math.min(chunkBytes, bytes - off);
        cl_event done = new cl_event();
        check.check(clEnqueueReadBuffer(queue, src, CL_FALSE, off, len, Pointer.to(mapped[half]), 0, null, done),
                "clEnqueueReadBuffer(staged)");
        pending[half] = done;
        clFlush(queue);
    }

    private void waitAndRelease(cl_event[] pending, int half) {
        cl_event e = pending[half];
        if (e == null) {
            return;
        }
        pending[half] = null;
        try {
            check.check(clWaitForEvents(1, new cl_event[] {e}), "clWaitForEvents(staged transfer)");
        } finally {
            clReleaseEvent(e);
        }
    }

    /** Allocates and maps the two pinned halves on first use. */
    private void ensurePinned() {
        if (pinned != null) {
            return;
        }
        cl_mem[] mems = new cl_mem[2];
        ByteBuffer[] views = new ByteBuffer[2];
        int[] err = new int[1];
        try {
            for (int h = 0; h < 2; h++) {
                mems[h] = clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, chunkBytes, null, err);
                check.check(err[0], "clCreateBuffer(pinned staging, " + chunkBytes + " bytes)");
                views[h] = clEnqueueMapBuffer(queue, mems[h], CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, chunkBytes, 0,
                        null, null, err);
                check.check(err[0], "clEnqueueMapBuffer(pinned staging)");
                views[h].order(ByteOrder.nativeOrder());
            }
        } catch (RuntimeException e) {
            release(mems, views);
            throw e;
        }
        pinned = mems;
        mapped = views;
    }

    private void release(cl_mem[] mems, ByteBuffer[] views) {
        for (int h = 0; h < mems.length; h++) {
            if (mems[h] == null) {
                continue;
            }
            if (views[h] != null) {
                clEnqueueUnmapMemObject(queue, mems[h], views[h], 0, null, null);
            }
        }
        clFinish(queue);
        for (cl_mem m : mems) {
            if (m != null) {
                clReleaseMemObject(m);
            }
        }
    }

    /** Unmaps and releases the pinned halves (before the backend releases its queue). */
    @Override
    public void close() {
        if (pinned != null) {
            release(pinned, mapped);
            pinned = null;
            mapped = null;
        }
    }

    /** @return a pointer to a Java array of whatever element type (JOCL pins it for a blocking call) */
    static Pointer pointer(Object array) {
        if (array instanceof float[] f) {
            return Pointer.to(f);
        }
        if (array instanceof double[] d) {
            return Pointer.to(d);
        }
        return Pointer.to((short[]) array);
    }

    /** Copies {@code len} bytes of the array from byte offset {@code off} into the stage. */
    private static void fill(ByteBuffer stage, Object array, long off, int len) {
        if (array instanceof float[] f) {
            stage.asFloatBuffer().put(f, (int) (off / Float.BYTES), len / Float.BYTES);
        } else if (array instanceof double[] d) {
            stage.asDoubleBuffer().put(d, (int) (off / Double.BYTES), len / Double.BYTES);
        } else {
            stage.asShortBuffer().put((short[]) array, (int) (off / Short.BYTES), len / Short.BYTES);
        }
    }

    /** Copies {@code len} bytes from the stage into the array at byte offset {@code off}. */
    private static void drain(ByteBuffer stage, Object array, long off, int len) {
        if (array instanceof float[] f) {
            stage.asFloatBuffer().get(f, (int) (off / Float.BYTES), len / Float.BYTES);
        } else if (array instanceof double[] d) {
            stage.asDoubleBuffer().get(d, (int) (off / Double.BYTES), len / Double.BYTES);
        } else {
            stage.asShortBuffer().get((short[]) array, (int) (off / Short.BYTES), len / Short.BYTES);
        }
    }
}
