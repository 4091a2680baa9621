package org.normcl.npy;

import java.nio.file.Path;

/**
 * A {@code .npy} file that cannot be read: it is not a {@code .npy} file, its header is
 * malformed, its data is shorter or longer than the header says, or it holds an array this
 * release does not decode (see {@link NpyUnsupportedDTypeException}).
 *
 * <p>The message always starts with the file's path, followed by the problem, for example
 * {@code "x.npy: truncated: shape [3, 4] needs 48 bytes of data, file has 40"}. I/O failures
 * (a missing file, a permission error) are reported as {@link java.io.UncheckedIOException}
 * instead.
 */
public class NpyFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** Not serialized: {@link Path} is not {@link java.io.Serializable}; the message keeps it. */
    private final transient Path file;
    /** The message without the leading path. */
    private final String problem;

    /**
     * @param file the file that could not be read
     * @param problem what is wrong with it, without the path
     */
    public NpyFormatException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
        this.problem = problem;
    }

    /** @return the file that could not be read (null after deserialization) */
    public Path file() {
        return file;
    }

    /** @return what is wrong with the file: the message without the leading path */
    public String problem() {
        return problem;
    }
}
