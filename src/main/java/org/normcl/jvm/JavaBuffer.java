package org.normcl.jvm;

import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

import org.normcl.DType;
import org.normcl.backend.Buffer;

/**
 * A buffer on the Java heap: a {@code float[]}, a {@code double[]} (float64) or a {@code short[]}
 * of 16-bit patterns (float16, bfloat16).
 */
final class JavaBuffer implements Buffer {
    private final Object array;
    private final DType dtype;
    private final int length;
    private final Set<JavaBuffer> owner;
    private final AtomicBoolean closed = new AtomicBoolean();

    /** Where the array goes when the buffer is closed, or null (an array the backend does not own). */
    private final ArrayPool pool;
    /** Whether the array was handed out of the backend (then it is never reused). */
    private volatile boolean escaped;

    /**
     * @param array the elements
     * @param dtype their type
     * @param owner the backend's set of live buffers, which this buffer joins until closed
     * @param pool where the array goes for reuse when this buffer is closed; null for an array the
     *     backend does not own (an imported host tensor's)
     */
    JavaBuffer(Object array, DType dtype, Set<JavaBuffer> owner, ArrayPool pool) {
        this.array = array;
        this.dtype = dtype;
        this.length = java.lang.reflect.Array.getLength(array);
        this.owner = owner;
        this.pool = pool;
        owner.add(this);
    }

    /** @return the backing array, which from now on belongs to whoever it is handed to (never reused) */
    Object escape() {
        escaped = true;
        return array();
    }

    /** @return the backing array */
    Object array() {
        if (closed.get()) {
            throw new IllegalStateException("buffer is closed");
        }
        return array;
    }

    @Override
    public long elements() {
        return length;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public boolean isClosed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            owner.remove(this);
            if (pool != null && !escaped) {
                pool.give(dtype, array, length);
            }
        }
    }
}
