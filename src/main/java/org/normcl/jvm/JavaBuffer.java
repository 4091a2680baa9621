package org.normcl.jvm;

import java.util.concurrent.atomic.AtomicBoolean;

import org.normcl.DType;
import org.normcl.backend.Buffer;

/** A float32 buffer on the Java heap. */
final class JavaBuffer implements Buffer {
    private final float[] data;
    private final java.util.Set<JavaBuffer> owner;
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * @param data the elements
     * @param owner the backend's set of live buffers, which this buffer joins until closed
     */
    JavaBuffer(float[] data, java.util.Set<JavaBuffer> owner) {
        this.data = data;
        this.owner = owner;
        owner.add(this);
    }

    float[] data() {
        if (closed.get()) {
            throw new IllegalStateException("buffer is closed");
        }
        return data;
    }

    @Override
    public long elements() {
        return data.length;
    }

    @Override
    public DType dtype() {
        return DType.FLOAT32;
    }

    @Override
    public boolean isClosed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            owner.remove(this);
        }
    }
}
