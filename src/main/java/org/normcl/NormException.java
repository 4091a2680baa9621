package org.normcl;

/**
 * A failure while running a normalization that is not the caller's bad input: an OpenCL error,
 * a kernel build failure, a missing OpenCL library or device. Bad arguments get
 * {@link IllegalArgumentException} (or {@link IllegalStateException} for a closed engine or
 * tensor) instead, always naming the parameter and the expected value.
 */
public class NormException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what failed and, where known, what to do about it
     */
    public NormException(String message) {
        super(message);
    }

    /**
     * @param message what failed
     * @param cause the underlying failure
     */
    public NormException(String message, Throwable cause) {
        super(message, cause);
    }
}
