package org.normcl.npy;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

import org.normcl.DType;
import org.normcl.HostTensor;

/**
 * Writes {@code .npy} files (float32, float16, bfloat16 as {@code <u2}, float64), and files of any
 * content for {@link NpyOutputs}, through a temporary file in the target's directory, so that a
 * reader never sees a half-written file under the target name.
 */
final class NpyWriter {
    /** Bytes written per call. */
    private static final int CHUNK = 1 << 20;
    /** Longest piece of the target's name kept in a temporary file's name. */
    private static final int MAX_NAME_IN_TEMP = 100;
    /** What a target may be, for messages. */
    private static final String EXPECTED_TARGET =
            ": expected a new file name, a regular file or a symbolic link to one";

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
     * @throws IllegalArgumentException if {@code target} exists and is not a regular file or a
     *     symbolic link to one, as {@link #checkTarget}; nothing is written then
     * @throws UncheckedIOException naming {@code target} if writing fails; no temporary file is left
     */
    static Path writeTemp(Path target, byte[] header, Object data, DType dtype) {
        return fillTemp(target, out -> {
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
        });
    }

    /**
     * Writes a file of any content to a new temporary file next to {@code target}, through a
     * buffered stream that {@code content} may close or leave open.
     *
     * @return the temporary file
     * @throws IllegalArgumentException as {@link #writeTemp(Path, byte[], Object, DType)}
     * @throws UncheckedIOException naming {@code target} if writing fails; no temporary file is left
     */
    static Path writeTemp(Path target, NpyOutputs.Content content) {
        return fillTemp(target, ch -> {
            OutputStream out = new BufferedOutputStream(Channels.newOutputStream(ch), CHUNK);
            content.writeTo(out);
            out.flush();
        });
    }

    /** Writes a temporary file's bytes to its (open, empty) channel. */
    private interface Body {
        void writeTo(FileChannel out) throws IOException;
    }

    /**
     * Checks {@code target}, creates a temporary file next to it (tracked by {@link PendingFiles})
     * and has {@code body} fill it.
     *
     * @return the temporary file
     * @throws IllegalArgumentException if {@code target} is refused, as {@link #checkTarget}
     * @throws UncheckedIOException naming {@code target} if writing fails; no temporary file is left
     */
    private static Path fillTemp(Path target, Body body) {
        Path tmp = null;
        try {
            Path abs = target.toAbsolutePath();
            Path name = abs.getFileName();
            if (name == null) {
                throw new FileSystemException(target.toString(), null, "not a file name");
            }
            checkTarget(target);
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
                    ch = PendingFiles.create(tmp); // deleted by a shutdown hook until it is forgotten
                } catch (FileAlreadyExistsException e) {
                    tmp = null;
                    if (attempt >= 100) {
                        throw e;
                    }
                }
            }
            try (FileChannel out = ch) {
                body.writeTo(out);
            }
            return tmp;
        } catch (IOException e) {
            discard(tmp, e);
            throw Npy.ioFailure("write", target, e);
        } catch (RuntimeException | Error e) {
            discard(tmp, e);
            throw e;
        }
    }

    /**
     * Checks that {@code target} may be replaced by a written file; see
     * {@link NpyOutputs#checkTarget(Path)}.
     *
     * @throws IllegalArgumentException naming {@code target} and what it is, if it is neither absent,
     *     a regular file, nor a symbolic link to one (or to nothing)
     */
    static void checkTarget(Path target) {
        String problem = targetProblem(target);
        if (problem != null) {
            throw new IllegalArgumentException("cannot write " + target + ": it is " + problem + EXPECTED_TARGET);
        }
    }

    /**
     * Says whether two targets are the same file for a commit: the same directory entry (compared
     * through the real path of the existing parent directory, so that {@code alias/y.npy} with
     * {@code alias -> .} is {@code y.npy}), or two names of one existing file (hard links, compared
     * by file key without following a final symbolic link: a link to {@code y.npy} is a different
     * target, since a commit replaces the link itself). Staging both would make the second backup
     * hold the first output's new bytes.
     */
    static boolean sameTarget(Path a, Path b) {
        if (entry(a).equals(entry(b))) {
            return true;
        }
        Object ka = fileKey(a);
        return ka != null && ka.equals(fileKey(b));
    }

    /** @return the directory entry {@code target} names: real parent directory plus file name */
    static Path entry(Path target) {
        Path abs = target.toAbsolutePath();
        Path name = abs.getFileName();
        Path dir = abs.getParent();
        if (name != null && dir != null) {
            try {
                return dir.toRealPath().resolve(name).normalize();
            } catch (IOException | RuntimeException e) {
                // no such directory (yet): the write reports it; compare the path as given
            }
        }
        return abs.normalize();
    }

    /** @return the identity (device and inode) of what {@code target} names, not following a link; null if none */
    private static Object fileKey(Path target) {
        try {
            return Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /**
     * Checks again, just before a rename, that {@code target} may be replaced: it may have become a
     * directory, a named pipe, ... since it was checked before the temporary file was written.
     *
     * @throws FileSystemException naming {@code target} and what it is now
     */
    static void recheckTarget(Path target) throws FileSystemException {
        String problem = targetProblem(target);
        if (problem != null) {
            throw new FileSystemException(target.toString(), null, "it is now " + problem + EXPECTED_TARGET);
        }
    }

    /**
     * Says what is at {@code target} if a written file must not replace it ("a directory", "a named
     * pipe (FIFO)", "a symbolic link to a character device (/dev/null)", ...), or null if it may.
     * It may replace nothing, a regular file, or a symbolic link (which is replaced itself, not
     * followed) that is dangling, a loop, or points to a regular file. Anything else is refused: a
     * directory (a rename onto it fails), a named pipe, a device or a socket (a rename would replace
     * the special file with a regular one: {@code /dev/null} for a root user), and a symbolic link to
     * one of these (whoever pointed a name at {@code /dev/null} or a pipe expects the data to go
     * there, and the link would be replaced instead). What cannot be examined (a failure other than
     * "no such file") is let through: the write itself then reports any problem.
     */
    private static String targetProblem(Path target) {
        BasicFileAttributes own;
        try {
            own = Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException | RuntimeException e) {
            return null; // nothing there (or nothing to tell)
        }
        if (own.isRegularFile()) {
            return null;
        }
        if (!own.isSymbolicLink()) {
            return kind(target, own, LinkOption.NOFOLLOW_LINKS);
        }
        BasicFileAttributes resolved;
        try {
            resolved = Files.readAttributes(target, BasicFileAttributes.class);
        } catch (IOException | RuntimeException e) {
            return null; // dangling, a loop, or unreadable: nothing behind the link is touched
        }
        if (resolved.isRegularFile()) {
            return null;
        }
        String to;
        try {
            to = " (" + Files.readSymbolicLink(target) + ")";
        } catch (IOException | RuntimeException e) {
            to = "";
        }
        return "a symbolic link to " + kind(target, resolved) + to;
    }

    /** @return "a directory", "a named pipe (FIFO)", ... for a file that is not a regular file */
    private static String kind(Path file, BasicFileAttributes attributes, LinkOption... options) {
        if (attributes.isDirectory()) {
            return "a directory";
        }
        try {
            switch ((Integer) Files.getAttribute(file, "unix:mode", options) & 0170000) { // S_IFMT
                case 0010000:
                    return "a named pipe (FIFO)";
                case 0020000:
                    return "a character device";
                case 0060000:
                    return "a block device";
                case 0140000:
                    return "a socket";
                default:
                    break;
            }
        } catch (IOException | RuntimeException e) {
            // no "unix" attribute view here, or the file is gone: say less
        }
        return "something other than a regular file";
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
     * Deletes a temporary file made by {@link #writeTemp} and stops tracking it for the shutdown
     * hook, recording a failure on {@code inFlight} rather than throwing.
     *
     * @param tmp the file, or null for nothing to do
     * @param inFlight the exception being thrown, or null
     */
    static void discard(Path tmp, Throwable inFlight) {
        if (tmp != null) {
            deleteQuietly(tmp, inFlight);
            PendingFiles.forget(tmp); // after the delete: the hook covers the file until it is gone
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
