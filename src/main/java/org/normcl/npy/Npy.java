package org.normcl.npy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;

import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.Shape;

/**
 * Reads and writes NumPy {@code .npy} files holding float32, float16, float64 or bfloat16 arrays.
 *
 * <p><b>Element types.</b> {@code f4} is {@link DType#FLOAT32}, {@code f2} is {@link DType#FLOAT16}
 * and {@code f8} is {@link DType#FLOAT64}, little- or big-endian ({@code '<f4'}, {@code '>f4'};
 * {@code '|'} and {@code '='} mean the platform's order). NumPy has no bfloat16, so bfloat16 values
 * are stored as their 16-bit patterns in a {@code uint16} array ({@code '<u2'}): a reader asks for
 * that reading with {@code bf16 = true} ({@link #read(Path, boolean)},
 * {@link #readTensor(Path, boolean)}); without it a {@code u2} file is refused, since it may just
 * as well hold integers. float16 and bfloat16 elements are kept as their bit patterns, so every
 * value, NaN payloads and subnormals included, reads and writes back bit for bit.
 *
 * <p><b>Reading</b> accepts format versions 1.0, 2.0 and 3.0, C order, any shape including
 * {@code ()} (a scalar, one element) and shapes with a zero dimension, up to
 * {@code Integer.MAX_VALUE - 8} elements. Anything else gets an {@link NpyFormatException} whose
 * message starts with the file's path and says what is wrong; a well-formed file of another dtype
 * gets its subclass {@link NpyUnsupportedDTypeException} ({@code "x.npy: dtype <i4 is not
 * supported: expected float32 ('<f4'), float16 ('<f2'), float64 ('<f8') or bfloat16 bits
 * ('<u2')"}). I/O failures get an {@link UncheckedIOException} (an {@link NpyIOException}, whose
 * {@link NpyIOException#file()} is the file) whose message names the file
 * ({@code "cannot read x.npy: no such file"}). Nothing else is thrown for bad input.
 *
 * <p><b>Writing</b> produces the same bytes as NumPy's {@code np.save} for a C-contiguous array of
 * the tensor's {@link DType#npyDescr() type} ({@code '<f4'}, {@code '<f2'}, {@code '<f8'}, or
 * {@code '<u2'} for bfloat16): format version 1.0 (2.0 if the header exceeds 65535 bytes),
 * {@code fortran_order: False}, the header padded with spaces and a final {@code '\n'} so that the
 * data starts at a multiple of 64 bytes. The file is written to a temporary file in the same
 * directory ({@code .<name>.tmp-<random>}) and renamed onto the target, atomically where the file
 * system supports it, so the target is never seen half written; if the target is a symbolic link,
 * the link itself is replaced. A target that is neither a regular file nor a link to one (a
 * directory, a named pipe, a device such as {@code /dev/null}, a socket) is refused, not replaced.
 * If the JVM shuts down (SIGINT, SIGTERM, {@link System#exit}) while the temporary file exists, a
 * shutdown hook deletes it, before or after the rename, never during it; only SIGKILL or a crash can
 * leave it behind (see {@link NpyOutputs}). To write several files all-or-nothing, use
 * {@link NpyOutputs}.
 *
 * <p>All methods are thread-safe (they share no state but the synchronized record of temporary files
 * that the shutdown hook deletes).
 */
public final class Npy {
    /** Longest piece of a header quoted in a message. */
    private static final int MAX_QUOTE = 200;

    private Npy() {
    }

    /**
     * Reads a float32, float16 or float64 {@code .npy} file ({@code u2} files are refused: see
     * {@link #read(Path, boolean)}).
     *
     * @param file the file
     * @return the array
     * @throws NpyUnsupportedDTypeException if the file holds another dtype (integers, complex,
     *     objects, a structured dtype, ..., or {@code u2})
     * @throws NpyFormatException if the file is not a valid {@code .npy} file, is in Fortran order,
     *     has more elements than a Java array holds, or has more or less data than its shape needs
     * @throws UncheckedIOException if the file cannot be read, with a message naming it
     * @throws NullPointerException if {@code file} is null
     */
    public static NpyArray read(Path file) {
        return read(file, false);
    }

    /**
     * Reads a float32, float16 or float64 {@code .npy} file, or with {@code bf16} also a
     * {@code u2} file as bfloat16 bit patterns ({@link DType#BFLOAT16}).
     *
     * @param file the file
     * @param bf16 whether {@code u2} data holds bfloat16 values
     * @return the array, of the {@link DType} the file stores
     * @throws NpyUnsupportedDTypeException if the file holds another dtype, or {@code u2} without
     *     {@code bf16} (then {@link NpyUnsupportedDTypeException#dtype()} is {@link DType#BFLOAT16})
     * @throws NpyFormatException as {@link #read(Path)}
     * @throws UncheckedIOException if the file cannot be read, with a message naming it
     * @throws NullPointerException if {@code file} is null
     */
    public static NpyArray read(Path file, boolean bf16) {
        Objects.requireNonNull(file, "file");
        try (NpyReader reader = NpyReader.open(file)) {
            NpyHeader header = reader.header();
            NpyDescr descr = NpyDescr.parse(file, header.descr());
            DType dtype = descr.dtype();
            if (dtype == null) {
                throw descr.unsupported(file);
            }
            if (dtype == DType.BFLOAT16 && !bf16) {
                throw descr.bfloat16Only(file);
            }
            if (header.fortranOrder()) {
                throw new NpyFormatException(file,
                        "Fortran-order arrays are not supported: save with np.ascontiguousarray");
            }
            int count = reader.intCount();
            reader.checkDataLength(descr.itemSize());
            Object data = reader.read(dtype, count, descr.order());
            return new NpyArray(descr.text(), tensor(data, dtype, header.shape()));
        }
    }

    private static HostTensor tensor(Object data, DType dtype, long[] shape) {
        switch (dtype) {
            case FLOAT32:
                return HostTensor.of((float[]) data, Shape.of(shape));
            case FLOAT64:
                return HostTensor.ofDoubles((double[]) data, shape);
            default:
                return HostTensor.ofBits((short[]) data, dtype, shape);
        }
    }

    /**
     * Reads a float32, float16 or float64 {@code .npy} file into a tensor of that type, without
     * copying the elements ({@code u2} files are refused: see {@link #readTensor(Path, boolean)}).
     *
     * @param file the file
     * @return the tensor
     * @throws NpyFormatException as {@link #read(Path)}
     * @throws UncheckedIOException as {@link #read(Path)}
     */
    public static HostTensor readTensor(Path file) {
        return readTensor(file, false);
    }

    /**
     * Reads a {@code .npy} file into a tensor of the type it stores, without copying the elements:
     * {@link DType#FLOAT32} ({@code f4}), {@link DType#FLOAT16} ({@code f2}), {@link DType#FLOAT64}
     * ({@code f8}) and, when {@code bf16} is set, {@link DType#BFLOAT16} ({@code u2}).
     *
     * @param file the file
     * @param bf16 whether {@code u2} data holds bfloat16 values
     * @return the tensor
     * @throws NpyFormatException as {@link #read(Path, boolean)}
     * @throws UncheckedIOException as {@link #read(Path, boolean)}
     */
    public static HostTensor readTensor(Path file, boolean bf16) {
        return read(file, bf16).tensorNoCopy();
    }

    /**
     * Writes a float32 array as a {@code .npy} file, replacing the file if it exists.
     *
     * @param file the target file; its directory must exist
     * @param data the elements in row-major (C) order
     * @param shape the shape, outermost first; empty for a scalar
     * @throws IllegalArgumentException if {@code file} exists and is not a regular file or a
     *     symbolic link to one (a directory, a named pipe, a device, ...: see
     *     {@link NpyOutputs#checkTarget}), a dimension is negative, {@code data.length} is not the
     *     product of {@code shape}, or {@code shape} has so many dimensions (hundreds of thousands)
     *     that the header would be longer than the 1 MiB that {@link #read} accepts
     * @throws UncheckedIOException if the file cannot be written, with a message naming it; the
     *     target is then unchanged and no temporary file is left behind
     * @throws NullPointerException if an argument is null
     */
    public static void write(Path file, float[] data, long[] shape) {
        Objects.requireNonNull(file, "file");
        byte[] header = NpyWriter.header(data, shape);
        place(file, NpyWriter.writeTemp(file, header, data));
    }

    /**
     * Writes a tensor as a {@code .npy} file of its type ({@code <f4}, {@code <f2}, {@code <f8}, or
     * {@code <u2} for bfloat16), replacing the file if it exists.
     *
     * @param file the target file; its directory must exist
     * @param tensor the tensor
     * @throws IllegalArgumentException if {@code file} is not a file, or the tensor's shape has too
     *     many dimensions, as {@link #write(Path, float[], long[])}
     * @throws UncheckedIOException as {@link #write(Path, float[], long[])}
     * @throws NullPointerException if an argument is null
     */
    public static void writeTensor(Path file, HostTensor tensor) {
        Objects.requireNonNull(file, "file");
        byte[] header = NpyWriter.header(tensor);
        place(file, NpyWriter.writeTemp(file, header, tensor.array(), tensor.dtype()));
    }

    private static void place(Path file, Path tmp) {
        synchronized (PendingFiles.LOCK) { // the shutdown hook deletes tmp before or after, not during
            try {
                PendingFiles.checkRunning(file);
                NpyWriter.recheckTarget(file);
                NpyWriter.moveIntoPlace(tmp, file);
                PendingFiles.forget(tmp);
            } catch (IOException e) {
                NpyWriter.discard(tmp, e);
                throw ioFailure("write", file, e);
            } catch (RuntimeException | Error e) {
                NpyWriter.discard(tmp, e);
                throw e;
            }
        }
    }

    /**
     * Wraps an I/O failure in an exception whose message names the file.
     *
     * @param verb "read" or "write"
     */
    static NpyIOException ioFailure(String verb, Path file, IOException e) {
        String reason;
        if (e instanceof FileSystemException fse && fse.getReason() != null) {
            reason = fse.getReason();
        } else if (e instanceof NoSuchFileException) {
            reason = "no such file";
        } else if (e instanceof AccessDeniedException) {
            reason = "permission denied";
        } else if (e instanceof FileSystemException fse) {
            reason = fse.getClass().getSimpleName() + " on " + fse.getFile()
                    + (fse.getOtherFile() != null ? " and " + fse.getOtherFile() : "");
        } else {
            reason = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
        }
        return new NpyIOException(file, "cannot " + verb + " " + file + ": " + reason, e);
    }

    /** Shortens a text for quoting in a message. */
    static String abbreviate(String text) {
        if (text.length() <= MAX_QUOTE) {
            return text;
        }
        return text.substring(0, MAX_QUOTE) + "... (" + text.length() + " characters)";
    }
}
