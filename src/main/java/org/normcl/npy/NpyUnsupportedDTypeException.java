package org.normcl.npy;

import java.nio.file.Path;
import java.util.Optional;

import org.normcl.DType;

/**
 * A well-formed {@code .npy} file whose element type this release does not decode: anything but
 * float32, float16, float64 and (read as bfloat16 bits, when asked) uint16, including object arrays
 * (pickles) and structured (record) dtypes; also a {@code u2} file read without asking for
 * bfloat16, with {@link #dtype()} {@link DType#BFLOAT16}.
 *
 * <p>Callers that want to phrase their own message ("expected float32 (&lt;f4), got &lt;i4") can
 * catch this type and use {@link #descr()} and {@link #dtype()}.
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
     * @return the {@link DType} the file's descr stands for (only {@code <u2}, {@link DType#BFLOAT16},
     *     when it was read without asking for bfloat16), or empty if none does (other integers,
     *     objects, structured dtypes, ...)
     */
    public Optional<DType> dtype() {
        return Optional.ofNullable(dtype);
    }
}
