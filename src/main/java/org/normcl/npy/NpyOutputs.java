package org.normcl.npy;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

import org.normcl.HostTensor;

/**
 * Writes several files all-or-nothing: each {@link #stage staged} array ({@code .npy}), or other
 * content ({@link #stage(Path, byte[])}, {@link #stage(Path, Content)}: a JSON report, an image),
 * goes to a temporary file next to its target, {@link #commit()} renames them all into place, and
 * {@link #close()} without a commit deletes the temporary files, leaving the targets untouched.
 * Temporary files are created with the permissions of any new file (from the umask), which the
 * targets keep.
 *
 * <pre>{@code
 * try (NpyOutputs out = new NpyOutputs()) {
 *     out.stage(yPath, y, shape);
 *     out.stage(meanPath, mean, statShape);
 *     out.commit();
 * } // an exception before commit() leaves no output file behind
 * }</pre>
 *
 * <p>If a rename fails during {@link #commit()}, the commit is undone before the failure is thrown:
 * the targets already placed are deleted, the targets that existed before (files or symbolic links)
 * are moved back from their backups, the last one moved aside first, and the temporary files are
 * deleted. Undoing is best effort: a step of it that fails is recorded as a suppressed exception of
 * the rename's failure (the cause of the {@link UncheckedIOException} thrown).
 *
 * <p><b>Interruption.</b> While a temporary file exists, a JVM shutdown hook is registered that
 * deletes it if the JVM shuts down before the file is renamed or deleted: on {@link System#exit},
 * or on SIGINT, SIGTERM or SIGHUP (Ctrl-C, {@code kill}). The hook and {@link #commit()} exclude each
 * other, so a commit is never cut in half by it: the hook runs either after the commit has finished
 * (its targets are in place, its backups deleted) or before it has started, and then the commit
 * fails with {@code "cannot write <target>: the JVM is shutting down"} and changes no target. After
 * the hook has run, {@link #stage} fails the same way and creates nothing. The hook is removed when
 * no temporary file is left. SIGKILL ({@code kill -9}), a JVM crash or a power loss run no hook: a
 * temporary file {@code .<name>.tmp-<random>} may then remain next to its target (and if it came
 * during a commit, a backup {@code .<name>.bak-<hex>}, with some targets replaced and others not).
 * Leftovers are not deleted by a later run, since a file of that name may belong to another process
 * writing to the same directory at that moment; they can be deleted by hand.
 *
 * <p>Not thread-safe.
 */
public final class NpyOutputs implements AutoCloseable {
    /**
     * Writes the content of a file staged by {@link #stage(Path, Content)}.
     */
    @FunctionalInterface
    public interface Content {
        /**
         * Writes the whole content.
         *
         * @param out the temporary file, open and empty, buffered; it may be closed or left open
         * @throws IOException if the content cannot be written: the stage fails, naming the target
         */
        void writeTo(OutputStream out) throws IOException;
    }

    private record Staged(Path target, Path key, Path tmp) {
    }

    private final List<Staged> staged = new ArrayList<>();
    private boolean finished;

    /** Creates an empty set of outputs. */
    public NpyOutputs() {
    }

    /**
     * Writes an array to a temporary file next to {@code target}, to be renamed onto it by
     * {@link #commit()}.
     *
     * @param target the file to create or replace; its directory must exist
     * @param data the elements in row-major (C) order
     * @param shape the shape, outermost first; empty for a scalar
     * @throws IllegalArgumentException if {@code target} is already staged (or is the same file as a
     *     staged target, see {@link #sameTarget}), exists and is not a
     *     regular file or a symbolic link to one (see {@link #checkTarget}), a dimension is
     *     negative, {@code data.length} is not the product of {@code shape}, or {@code shape} has too
     *     many dimensions, as {@link Npy#write}
     * @throws IllegalStateException after {@link #commit()} or {@link #close()}
     * @throws UncheckedIOException if the temporary file cannot be written, or the JVM is shutting
     *     down, with a message naming {@code target}; files staged before are kept until
     *     {@link #close()}
     * @throws NullPointerException if an argument is null
     */
    public void stage(Path target, float[] data, long[] shape) {
        Path key = newKey(target);
        byte[] header = NpyWriter.header(data, shape);
        staged.add(new Staged(target, key, NpyWriter.writeTemp(target, header, data)));
    }

    /**
     * Writes bytes to a temporary file next to {@code target}, to be renamed onto it by
     * {@link #commit()}; see {@link #stage(Path, Content)}.
     *
     * @param target the file to create or replace; its directory must exist
     * @param bytes the file's whole content
     * @throws IllegalArgumentException if {@code target} is already staged (or is the same file as a
     *     staged target, see {@link #sameTarget}), or exists and is not a regular file or a symbolic
     *     link to one (see {@link #checkTarget})
     * @throws IllegalStateException after {@link #commit()} or {@link #close()}
     * @throws UncheckedIOException if the temporary file cannot be written, or the JVM is shutting
     *     down, with a message naming {@code target}; files staged before are kept until
     *     {@link #close()}
     * @throws NullPointerException if an argument is null
     */
    public void stage(Path target, byte[] bytes) {
        Objects.requireNonNull(bytes, "bytes");
        stage(target, out -> out.write(bytes));
    }

    /**
     * Has {@code content} write a temporary file next to {@code target}, to be renamed onto it by
     * {@link #commit()}: for a file that is not an array, such as a JSON report or an image. The
     * temporary file is tracked as the others (deleted by {@link #close()}, or by the shutdown hook).
     *
     * @param target the file to create or replace; its directory must exist
     * @param content writes the file's whole content
     * @throws IllegalArgumentException if {@code target} is already staged (or is the same file as a
     *     staged target, see {@link #sameTarget}), or exists and is not a regular file or a symbolic
     *     link to one (see {@link #checkTarget}); nothing is written then
     * @throws IllegalStateException after {@link #commit()} or {@link #close()}
     * @throws UncheckedIOException if the temporary file cannot be created, {@code content} throws
     *     an {@link IOException}, or the JVM is shutting down, with a message naming {@code target};
     *     no temporary file of it is left, and files staged before are kept until {@link #close()}
     * @throws NullPointerException if an argument is null
     */
    public void stage(Path target, Content content) {
        Objects.requireNonNull(content, "content");
        Path key = newKey(target);
        staged.add(new Staged(target, key, NpyWriter.writeTemp(target, content)));
    }

    /** Checks that outputs are still open and {@code target} is not staged yet; returns its key. */
    private Path newKey(Path target) {
        Objects.requireNonNull(target, "target");
        checkOpen("stage");
        Path key = target.toAbsolutePath().normalize();
        for (Staged s : staged) {
            if (NpyWriter.sameTarget(s.target(), target)) {
                throw new IllegalArgumentException("target " + target + " is already staged"
                        + (s.key().equals(key) ? "" : " as " + s.target() + " (the same file)"));
            }
        }
        return key;
    }

    /**
     * Stages a tensor as a file of its type ({@code <f4}, {@code <f2}, {@code <f8}, or {@code <u2}
     * for bfloat16, as {@link Npy#writeTensor} writes it); see {@link #stage(Path, float[], long[])}.
     *
     * @param target the file to create or replace; its directory must exist
     * @param tensor the tensor
     * @throws IllegalArgumentException if {@code target} is already staged (or is the same file as a
     *     staged target, see {@link #sameTarget}), exists and is not a
     *     regular file or a symbolic link to one (see {@link #checkTarget}), or the tensor's shape has
     *     too many dimensions, as {@link Npy#write}
     * @throws IllegalStateException after {@link #commit()} or {@link #close()}
     * @throws UncheckedIOException if the temporary file cannot be written
     * @throws NullPointerException if an argument is null
     */
    public void stage(Path target, HostTensor tensor) {
        Path key = newKey(target);
        byte[] header = NpyWriter.header(tensor);
        staged.add(new Staged(target, key, NpyWriter.writeTemp(target, header, tensor.array(), tensor.dtype())));
    }

    /**
     * Checks that a file may be written to {@code target}, as {@link #stage} does before it writes
     * anything: for a caller that wants to refuse a bad target before it computes the data.
     * {@code target} may name nothing yet, a regular file, or a symbolic link that points to a
     * regular file or to nothing (the link itself is replaced, see {@link #commit()}). Anything else
     * is refused, since replacing it would destroy or bypass it: a directory, a named pipe, a
     * character or block device ({@code /dev/null}), a socket, or a symbolic link to one of these.
     * Whether the directory exists, and permissions, are left to the write.
     *
     * @param target the file to check
     * @throws IllegalArgumentException if {@code target} is refused, with a message naming it, what
     *     it is and what is expected: {@code "cannot write p: it is a named pipe (FIFO): expected a
     *     new file name, a regular file or a symbolic link to one"}
     * @throws NullPointerException if {@code target} is null
     */
    public static void checkTarget(Path target) {
        NpyWriter.checkTarget(Objects.requireNonNull(target, "target"));
    }

    /**
     * Says whether two targets would be the same file for a commit, as {@link #stage} refuses them:
     * the same directory entry however spelt (the real path of the existing parent directory plus the
     * file name: {@code alias/y.npy} with {@code alias -> .} is {@code y.npy}), or two names of one
     * existing file (hard links). A symbolic link to a file is not the file: a commit replaces the
     * link itself. For a caller that wants to refuse aliased outputs before it computes the data.
     *
     * @param a a target
     * @param b another target
     * @return whether staging both would write one file twice
     * @throws NullPointerException if an argument is null
     */
    public static boolean sameTarget(Path a, Path b) {
        return NpyWriter.sameTarget(Objects.requireNonNull(a, "a"), Objects.requireNonNull(b, "b"));
    }

    /** @return the staged targets, in staging order */
    public List<Path> targets() {
        List<Path> out = new ArrayList<>(staged.size());
        for (Staged s : staged) {
            out.add(s.target());
        }
        return out;
    }

    /**
     * Renames every staged temporary file onto its target, in staging order, all or nothing: a
     * target that already exists is first moved aside to a backup in its directory, and if any
     * rename fails, the targets placed so far are removed, the backups are moved back and no
     * temporary file is left. On success the backups are deleted. A target that is a symbolic link
     * is moved aside and replaced itself, not followed: the file it points to is left unchanged.
     * Each target is checked again before its rename, as {@link #checkTarget}: one that has become a
     * directory, a named pipe, a device, ... since it was staged fails the commit, and is left as it
     * is.
     *
     * @throws IllegalStateException after {@link #commit()} or {@link #close()}
     * @throws UncheckedIOException if a rename fails, a target is now refused, or the JVM is
     *     shutting down (see the class comment), with a message naming the target
     */
    public void commit() {
        checkOpen("commit");
        finished = true;
        synchronized (PendingFiles.LOCK) { // the shutdown hook runs before or after all this, not during
            renameAll();
        }
    }

    private void renameAll() {
        List<Path[]> backups = new ArrayList<>(); // {target, backup}
        List<Path> placed = new ArrayList<>();
        Path failing = null;
        try {
            for (Staged s : staged) {
                failing = s.target();
                PendingFiles.checkRunning(s.target());
                NpyWriter.recheckTarget(s.target());
                // Anything there but a directory (onto which the rename fails): a file, or a link.
                if (Files.exists(s.target(), LinkOption.NOFOLLOW_LINKS)
                        && !Files.isDirectory(s.target(), LinkOption.NOFOLLOW_LINKS)) {
                    Path backup = s.target().resolveSibling("." + s.target().getFileName() + ".bak-"
                            + Long.toHexString(System.nanoTime()));
                    NpyWriter.moveIntoPlace(s.target(), backup);
                    backups.add(new Path[] {s.target(), backup});
                }
                NpyWriter.moveIntoPlace(s.tmp(), s.target());
                placed.add(s.target());
            }
        } catch (IOException | RuntimeException | Error e) {
            for (Path p : placed) {
                NpyWriter.deleteQuietly(p, e);
            }
            // Newest first: should two backups be of one file after all (an alias made after
            // staging), the oldest, the user's own file, is the one put back last.
            for (int i = backups.size() - 1; i >= 0; i--) {
                Path[] b = backups.get(i);
                try {
                    NpyWriter.moveIntoPlace(b[1], b[0]);
                } catch (IOException | RuntimeException restore) {
                    e.addSuppressed(restore);
                }
            }
            for (Staged s : staged) {
                NpyWriter.discard(s.tmp(), e);
            }
            staged.clear();
            if (e instanceof IOException io) {
                throw Npy.ioFailure("write", failing, io);
            }
            if (e instanceof Error err) {
                throw err;
            }
            throw (RuntimeException) e;
        }
        for (Path[] b : backups) {
            NpyWriter.deleteQuietly(b[1], null);
        }
        for (Staged s : staged) {
            PendingFiles.forget(s.tmp());
        }
        staged.clear();
    }

    /**
     * Deletes the temporary files of an uncommitted set; does nothing after {@link #commit()} or
     * a previous close.
     */
    @Override
    public void close() {
        if (finished) {
            return;
        }
        finished = true;
        for (Staged s : staged) {
            NpyWriter.discard(s.tmp(), null);
        }
        staged.clear();
    }

    private void checkOpen(String operation) {
        if (finished) {
            throw new IllegalStateException("cannot " + operation + ": these outputs are already committed or closed");
        }
    }
}
