package org.normcl.npy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

import org.normcl.DType;
import org.normcl.HostTensor;

/**
 * Writes {@code .npy} files (float32, float16, bfloat16 as {@code <u2}, float64) through a temporary file in the target's directory, so that
 * a reader never sees a half-written file under the target name.
 */
final class NpyWriter {
    /** Bytes written per call. */
    private static final int CHUNK = 1 << 20;
    /** Longest piece of the target's name kept in a temporary file's name. */
    private static final int MAX_NAME_IN_TEMP = 100;

    private NpyWriter() {
    }

    /**
     * Checks the arguments of a write and builds the header.
     *
     * @return the bytes before the data
     * @throws IllegalArgumentException if a dimension is negative or the sizes disagree
     */
    static byte[] header(float[] data, long[] shape) {
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(shape, "shape");
        return header(DType.FLOAT32, data.length, shape);
    }

    /**
     * Checks a tensor to be written and builds its header.
     *
     * @return the bytes before the data
     */
    static byte[] header(HostTensor tensor) {
        Objects.requireNonNull(tensor, "tensor");
        return header(tensor.dtype(), Array.getLength(tensor.array()), tensor.shape().dims());
    }

    /**
     * Checks the element count against the shape and builds the header for {@code dtype}'s
     * {@link DType#npyDescr() descr}.
     *
     * @throws IllegalArgumentException if a dimension is negative or the sizes disagree
     */
    private static byte[] header(DType dtype, int length, long[] shape) {
        long count = 1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("shape[" + i + "] = " + shape[i] + ": expected >= 0 in "
                        + Arrays.toString(shape));
            }
            try {
                count = Math.multiplyExact(count, shape[i]);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than 2^63 - 1 elements");
            }
        }
        if (count != length) {
            throw new IllegalArgumentException("data has " + length + " elements but shape "
                    + Arrays.toString(shape) + " needs " + count);
        }
        return NpyHeader.encode(dtype.npyDescr(), shape);
    }

    /**
     * Writes a complete file to a new temporary file next to {@code target}.
     *
     * @return the temporary file
     * @throws UncheckedIOException naming {@code target} if writing fails; no temporary file is left
     */
    static Path writeTemp(Path target, byte[] header, float[] data) {
        return writeTemp(target, header, data, DType.FLOAT32);
    }

    /**
     * Writes a complete file to a new temporary file next to {@code target}.
     *
     * @param data the elements: {@code float[]}, {@code double[]} or {@code short[]} (16-bit
     *     patterns) as {@code dtype} needs, written little-endian bit for bit
     * @return the temporary file
     * @throws UncheckedIOException naming {@code target} if writing fails; no temporary file is left
     */
    static Path writeTemp(Path target, byte[] header, Object data, DType dtype) {
        Path tmp = null;
        try {
            Path abs = target.toAbsolutePath();
            Path name = abs.getFileName();
            if (name == null) {
                throw new FileSystemException(target.toString(), null, "not a file name");
            }
            if (Files.isDirectory(target)) {
                throw new FileSystemException(target.toString(), null, "is a directory");
            }
            Path dir = abs.getParent();
            if (dir != null && !Files.isDirectory(dir)) {
                throw new NoSuchFileException(target.toString(), null, "directory " + dir + " does not exist");
            }
            String base = name.toString();
            if (base.length() > MAX_NAME_IN_TEMP) {
                base = base.substring(0, MAX_NAME_IN_TEMP);
            }
            FileChannel ch = null;
            for (int attempt = 0; ch == null; attempt++) {
                tmp = abs.resolveSibling("." + base + ".tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
                try {
                    ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                } catch (FileAlreadyExistsException e) {
                    tmp = null;
                    if (attempt >= 100) {
                        throw e;
                    }
                }
            }
            try (FileChannel out = ch) {
                writeFully(out, ByteBuffer.wrap(header));
                int size = dtype.byteSize();
                int length = Array.getLength(data);
                ByteBuffer buf = ByteBuffer.allocateDirect((int) Math.min(CHUNK, Math.max(8L, (long) size * length)))
                        .order(ByteOrder.LITTLE_ENDIAN);
                for (int done = 0; done < length; ) {
                    int n = Math.min(length - done, buf.capacity() / size);
                    buf.clear();
                    switch (dtype) {
                        case FLOAT32:
                            buf.asFloatBuffer().put((float[]) data, done, n);
                            break;
                        case FLOAT64:
                            buf.asDoubleBuffer().put((double[]) data, done, n);
                            break;
                        default:
                            buf.asShortBuffer().put((short[]) data, done, n);
                    }
                    buf.limit(size * n);
                    writeFully(out, buf);
                    done += n;
                }
            }
            return tmp;
        } catch (IOException e) {
            deleteQuietly(tmp, e);
            throw Npy.ioFailure("write", target, e);
        } catch (RuntimeException | Error e) {
            deleteQuietly(tmp, e);
            throw e;
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /**
     * Renames a temporary file onto its target, atomically where the file system allows.
     *
     * @throws IOException if the rename fails; the temporary file is then still there
     */
    static void moveIntoPlace(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Deletes a file if it exists, recording a failure on {@code inFlight} rather than throwing.
     *
     * @param file the file, or null for nothing to do
     * @param inFlight the exception being thrown, or null
     * @return whether the file is gone
     */
    static boolean deleteQuietly(Path file, Throwable inFlight) {
        if (file == null) {
            return true;
        }
        try {
            Files.deleteIfExists(file);
            return true;
        } catch (IOException | RuntimeException e) {
            if (inFlight != null) {
                inFlight.addSuppressed(e);
            }
            return false;
        }
    }
}
