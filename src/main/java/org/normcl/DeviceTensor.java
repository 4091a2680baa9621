package org.normcl;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicBoolean;

import org.normcl.backend.Buffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A tensor whose memory belongs to a {@link NormEngine}: an OpenCL buffer on the engine's device,
 * or a heap array for the Java backend. Device tensors stay where they are between operator calls,
 * so a chain of operators makes no host round trips: upload once with
 * {@link NormEngine#upload(HostTensor)}, run operators, download once with {@link #toHost()}.
 *
 * <p>Close a device tensor when done (try-with-resources). A tensor that becomes unreachable
 * without being closed is released by a {@link Cleaner}, with a warning naming its shape; closing
 * the engine releases every tensor it still owns.
 */
public final class DeviceTensor implements Tensor, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceTensor.class);
    private static final Cleaner CLEANER = Cleaner.create();

    private final NormEngine engine;
    private final org.normcl.backend.Backend backend;
    private final Buffer buffer;
    private final Shape shape;
    private final Release release;
    private final Cleaner.Cleanable cleanable;

    DeviceTensor(NormEngine engine, org.normcl.backend.Backend backend, Buffer buffer, Shape shape) {
        this.engine = engine;
        this.backend = backend;
        this.buffer = buffer;
        this.shape = shape;
        this.release = new Release(buffer, shape.toString());
        this.cleanable = CLEANER.register(this, release);
    }

    /** The cleaning action; it must not refer to the tensor itself. */
    private static final class Release implements Runnable {
        private final Buffer buffer;
        private final String shape;
        private final AtomicBoolean closedExplicitly = new AtomicBoolean();

        Release(Buffer buffer, String shape) {
            this.buffer = buffer;
            this.shape = shape;
        }

        @Override
        public void run() {
            if (!closedExplicitly.get() && !buffer.isClosed()) {
                LOG.warn("DeviceTensor{} was not closed; released by the cleaner. Close tensors with try-with-resources.",
                        shape);
            }
            buffer.close();
        }
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public DType dtype() {
        return buffer.dtype();
    }

    /** @return the engine that owns this tensor */
    public NormEngine engine() {
        return engine;
    }

    /**
     * Downloads the tensor into a new Java array.
     *
     * @return a host copy
     * @throws IllegalStateException if the tensor or its engine is closed
     */
    @Override
    public HostTensor toHost() {
        return engine.download(this);
    }

    /** @return whether the tensor has been closed (or released with its engine) */
    public boolean isClosed() {
        return buffer.isClosed();
    }

    /** Releases the device memory; idempotent. */
    @Override
    public void close() {
        release.closedExplicitly.set(true);
        cleanable.clean();
    }

    /** The engine backend that holds the memory (an AUTO engine may hold some on its Java fallback). */
    org.normcl.backend.Backend backend() {
        return backend;
    }

    Buffer buffer() {
        if (buffer.isClosed()) {
            throw new IllegalStateException("DeviceTensor" + shape + " is closed");
        }
        return buffer;
    }

    @Override
    public String toString() {
        return "DeviceTensor" + shape + (isClosed() ? " (closed)" : "");
    }
}
