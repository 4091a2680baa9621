package org.normcl.jvm;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.normcl.DType;

/**
 * The arrays of closed Java buffers, kept for the next allocation of the same type and length, as
 * the OpenCL backend keeps released device buffers: a call on device tensors allocates its outputs
 * and temporaries, and on tensors of tens of MiB a new array costs more than the operator (the JVM
 * zeroes it, and large arrays are humongous objects that G1 collects separately): RMS norm
 * 8192x1024 through {@code NormEngine} took 5.4 ms for 1.6 ms of work. Only arrays the backend
 * allocated come here, and only when their buffer's array never left the backend
 * ({@link JavaBuffer#escape}); arrays below {@link #MIN_BYTES} are left to the allocator. At most
 * {@link #capFor} bytes are kept, the oldest dropped first.
 */
final class ArrayPool {
    /** Arrays smaller than this are not worth keeping: allocating them is cheap. */
    static final long MIN_BYTES = 64 * 1024;

    private record Key(DType dtype, int length) {
        long bytes() {
            return (long) length * dtype.byteSize();
        }
    }

    private final long capBytes;
    private final Map<Key, ArrayDeque<Object>> free = new HashMap<>();
    private final ArrayDeque<Key> order = new ArrayDeque<>(); // one entry per kept array, oldest first
    private long bytes;

    /** @param capBytes the most bytes kept */
    ArrayPool(long capBytes) {
        this.capBytes = capBytes;
    }

    /** @return an eighth of the heap the JVM may grow to, at most 1 GiB */
    static long capFor(long maxHeapBytes) {
        return Math.min(maxHeapBytes / 8, 1L << 30);
    }

    /** @return a kept array of this type and length (contents unspecified), or null */
    synchronized Object take(DType dtype, int length) {
        Key k = new Key(dtype, length);
        ArrayDeque<Object> q = free.get(k);
        Object a = q == null ? null : q.pollFirst();
        if (a != null) {
            bytes -= k.bytes();
            order.removeFirstOccurrence(k);
        }
        return a;
    }

    /** Keeps an array for reuse (unless it is small or larger than the cap), dropping the oldest over the cap. */
    synchronized void give(DType dtype, Object array, int length) {
        Key k = new Key(dtype, length);
        if (k.bytes() < MIN_BYTES || k.bytes() > capBytes) {
            return;
        }
        free.computeIfAbsent(k, x -> new ArrayDeque<>()).addFirst(array);
        order.addLast(k);
        bytes += k.bytes();
        while (bytes > capBytes) {
            Key oldest = order.pollFirst();
            free.get(oldest).pollLast();
            bytes -= oldest.bytes();
        }
    }

    /** @return a kept double array of this length (contents unspecified), or a new one */
    double[] doubles(int length) {
        Object a = take(DType.FLOAT64, length);
        return a != null ? (double[]) a : new double[length];
    }

    /** @return {@link #doubles}, zeroed */
    double[] zeroedDoubles(int length) {
        double[] a = doubles(length);
        Arrays.fill(a, 0.0);
        return a;
    }

    /** @return a kept float array of this length, zeroed, or a new one */
    float[] zeroedFloats(int length) {
        Object a = take(DType.FLOAT32, length);
        if (a == null) {
            return new float[length];
        }
        float[] f = (float[]) a;
        Arrays.fill(f, 0f);
        return f;
    }

    /** Keeps a double array for reuse ({@link #give}). */
    void give(double[] a) {
        give(DType.FLOAT64, a, a.length);
    }

    /** Keeps a float array for reuse ({@link #give}). */
    void give(float[] a) {
        give(DType.FLOAT32, a, a.length);
    }

    /** @return bytes kept */
    synchronized long bytes() {
        return bytes;
    }

    /** Drops every kept array. */
    synchronized void clear() {
        free.clear();
        order.clear();
        bytes = 0;
    }
}
