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
 * Reads and writes NumPy {@code .npy} files holding float32 arrays.
 *
 * <p><b>Reading</b> accepts format versions 1.0, 2.0 and 3.0, little- and big-endian float32
 * ({@code '<f4'}, {@code '>f4'}), C order, any shape including {@code ()} (a scalar, one element)
 * and shapes with a zero dimension, up to {@code Integer.MAX_VALUE - 8} elements. Anything else
 * gets an {@link NpyFormatException} whose message starts with the file's path and says what is
 * wrong; a well-formed file of another dtype gets its subclass {@link NpyUnsupportedDTypeException}
 * ({@code "x.npy: dtype <f8 is not supported: expected float32 ('<f4')"}). I/O failures get an
 * {@link UncheckedIOException} whose message names the file ({@code "cannot read x.npy: no such
 * file"}). Nothing else is thrown for bad input.
 *
 * <p><b>Writing</b> produces the same bytes as NumPy's {@code np.save} for a C-contiguous
 * {@code float32} array: format version 1.0 (2.0 if the header exceeds 65535 bytes),
 * {@code '<f4'}, {@code fortran_order: False}, the header padded with spaces and a final
 * {@code '\n'} so that the data starts at a multiple of 64 bytes. The file is written to a
 * temporary file in the same directory ({@code .<name>.tmp-<random>}) and renamed onto the
 * target, atomically where the file system supports it, so the target is never seen half
 * written; if the target is a symbolic link, the link itself is replaced. To write several files
 * all-or-nothing, use {@link NpyOutputs}.
 *
 * <p>All methods are thread-safe (they share no state).
 */
public final class Npy {
    /** Longest piece of a header quoted in a message. */
    private static final int MAX_QUOTE = 200;

    private Npy() {
    }

    /**
     * Reads a float32 {@code .npy} file.
     *
     * @param file the file
     * @return the array, its elements converted to Java floats
     * @throws NpyUnsupportedDTypeException if the file holds another dtype (float64, float16,
     *     integers, objects, a structured dtype, ...)
     * @throws NpyFormatException if the file is not a valid {@code .npy} file, is in Fortran order,
     *     has more elements than a Java array holds, or has more or less data than its shape needs
     * @throws UncheckedIOException if the file cannot be read, with a message naming it
     * @throws NullPointerException if {@code file} is null
     */
    public static NpyArray read(Path file) {
        Objects.requireNonNull(file, "file");
        try (NpyReader reader = NpyReader.open(file)) {
            NpyHeader header = reader.header();
            NpyDescr descr = NpyDescr.parse(file, header.descr());
            DType dtype = descr.dtype();
            if (dtype != DType.FLOAT32) {
                throw descr.unsupported(file);
            }
            if (header.fortranOrder()) {
                throw new NpyFormatException(file,
                        "Fortran-order arrays are not supported: save with np.ascontiguousarray");
            }
            int count = reader.intCount();
            reader.checkDataLength(descr.itemSize());
            float[] data = reader.readFloat32(count, descr.order());
            return new NpyArray(descr.text(), dtype, header.shape().clone(), data);
        }
    }

    /**
     * Reads a float32 {@code .npy} file into a tensor, without copying the elements.
     *
     * @param file the file
     * @return the tensor
     * @throws NpyFormatException as {@link #read}
     * @throws UncheckedIOException as {@link #read}
     */
    public static HostTensor readTensor(Path file) {
        NpyArray array = read(file);
        return HostTensor.of(array.dataNoCopy(), Shape.of(array.shape()));
    }

    /**
     * Writes a float32 array as a {@code .npy} file, replacing the file if it exists.
     *
     * @param file the target file; its directory must exist
     * @param data the elements in row-major (C) order
     * @param shape the shape, outermost first; empty for a scalar
     * @throws IllegalArgumentException if a dimension is negative or {@code data.length} is not the
     *     product of {@code shape}
     * @throws UncheckedIOException if the file cannot be written, with a message naming it; the
     *     target is then unchanged and no temporary file is left behind
     * @throws NullPointerException if an argument is null
     */
    public static void write(Path file, float[] data, long[] shape) {
        Objects.requireNonNull(file, "file");
        byte[] header = NpyWriter.header(data, shape);
        Path tmp = NpyWriter.writeTemp(file, header, data);
        try {
            NpyWriter.moveIntoPlace(tmp, file);
        } catch (IOException e) {
            NpyWriter.deleteQuietly(tmp, e);
            throw ioFailure("write", file, e);
        } catch (RuntimeException | Error e) {
            NpyWriter.deleteQuietly(tmp, e);
            throw e;
        }
    }

    /**
     * Writes a tensor as a {@code .npy} file, replacing the file if it exists.
     *
     * @param file the target file; its directory must exist
     * @param tensor the tensor
     * @throws UncheckedIOException as {@link #write(Path, float[], long[])}
     * @throws NullPointerException if an argument is null
     */
    public static void writeTensor(Path file, HostTensor tensor) {
        Objects.requireNonNull(tensor, "tensor");
        write(file, tensor.data(), tensor.shape().dims());
    }

    /**
     * Wraps an I/O failure in an exception whose message names the file.
     *
     * @param verb "read" or "write"
     */
    static UncheckedIOException ioFailure(String verb, Path file, IOException e) {
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
        return new UncheckedIOException("cannot " + verb + " " + file + ": " + reason, e);
    }

    /** Shortens a text for quoting in a message. */
    static String abbreviate(String text) {
        if (text.length() <= MAX_QUOTE) {
            return text;
        }
        return text.substring(0, MAX_QUOTE) + "... (" + text.length() + " characters)";
    }
}
