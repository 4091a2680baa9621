package org.normcl.npy;

import java.nio.file.Path;
import java.util.Optional;

import org.normcl.DType;

/**
 * A well-formed {@code .npy} file whose element type this release does not decode: anything but
 * float32, including object arrays (pickles) and structured (record) dtypes.
 *
 * <p>Callers that want to phrase their own message ("expected float32 (&lt;f4), got &lt;f8") can
 * catch this type and use {@link #descr()}.
 */
public final class NpyUnsupportedDTypeException extends NpyFormatException {
    private static final long serialVersionUID = 1L;

    /** The file's descr, as text. */
    private final String descr;
    /** The matching element type, or null. */
    private final DType dtype;

    /**
     * @param file the file that could not be read
     * @param problem what is wrong with it, without the path
     * @param descr the file's {@code descr}: a type string such as {@code "<f8"}, or for a
     *     structured dtype the Python text of its field list
     * @param dtype the {@link DType} the descr stands for, or null if none does
     */
    public NpyUnsupportedDTypeException(Path file, String problem, String descr, DType dtype) {
        super(file, problem);
        this.descr = descr;
        this.dtype = dtype;
    }

    /**
     * @return the file's {@code descr}: a type string such as {@code "<f8"} or {@code "|O"}, or
     *     for a structured dtype the Python text of its field list
     */
    public String descr() {
        return descr;
    }

    /**
     * @return the {@link DType} the file's descr stands for ({@code <f2}, {@code <f8}, {@code <u2}
     *     in any byte order), or empty if none does (integers, objects, structured dtypes, ...)
     */
    public Optional<DType> dtype() {
        return Optional.ofNullable(dtype);
    }
}
