package org.normcl.opencl;

import java.util.concurrent.atomic.AtomicBoolean;

import org.jocl.cl_mem;
import org.normcl.DType;
import org.normcl.backend.Buffer;

/** An OpenCL buffer. A zero-element buffer has no cl_mem (OpenCL forbids empty buffers). */
final class ClBuffer implements Buffer {
    private final ClBackend owner;
    private final cl_mem mem;
    private final long elements;
    private final DType dtype;
    private final AtomicBoolean closed = new AtomicBoolean();

    ClBuffer(ClBackend owner, cl_mem mem, long elements, DType dtype) {
        this.owner = owner;
        this.mem = mem;
        this.elements = elements;
        this.dtype = dtype;
    }

    cl_mem mem() {
        if (closed.get()) {
            throw new IllegalStateException("OpenCL buffer of " + elements + " elements is closed");
        }
        return mem;
    }

    ClBackend owner() {
        return owner;
    }

    long bytes() {
        return elements * dtype.byteSize();
    }

    @Override
    public long elements() {
        return elements;
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
            owner.released(this, mem);
        }
    }
}
