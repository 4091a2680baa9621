package org.normcl.backend;

import org.normcl.DType;

/**
 * Memory owned by a {@link Backend}: an OpenCL buffer or a Java array. Internal SPI: applications
 * use {@link org.normcl.DeviceTensor}.
 *
 * <p>Closing is idempotent and thread-safe.
 */
public interface Buffer extends AutoCloseable {

    /** @return the number of elements */
    long elements();

    /** @return the element type */
    DType dtype();

    /** @return whether {@link #close()} has run */
    boolean isClosed();

    /** Releases the memory. */
    @Override
    void close();
}
