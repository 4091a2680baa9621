package org.normcl.jvm;

import java.util.concurrent.atomic.AtomicBoolean;

import org.normcl.DType;
import org.normcl.backend.Buffer;

/** A float32 buffer on the Java heap. */
final class JavaBuffer implements Buffer {
    private final float[] data;
    private final AtomicBoolean closed = new AtomicBoolean();

    JavaBuffer(float[] data) {
        this.data = data;
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
        closed.set(true);
    }
}
