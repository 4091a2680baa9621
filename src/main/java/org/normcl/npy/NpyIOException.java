package org.normcl.npy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * An I/O failure reading or writing one file (missing, permission denied, a failed rename, a
 * target that became a pipe or device before a commit). The message names the file and the
 * reason, {@code "cannot write y.npy: permission denied"}; {@link #file()} gives the file, so a
 * caller can tell which of several outputs failed without reading the message.
 */
public final class NpyIOException extends UncheckedIOException {
    private static final long serialVersionUID = 1L;

    /** Not serialized: {@link Path} is not {@link java.io.Serializable}; the message keeps it. */
    private final transient Path file;

    /**
     * @param file the file the operation failed on
     * @param message the message, naming the file
     * @param cause the I/O failure
     */
    public NpyIOException(Path file, String message, IOException cause) {
        super(message, cause);
        this.file = file;
    }

    /** @return the file the operation failed on (null after deserialization) */
    public Path file() {
        return file;
    }
}
