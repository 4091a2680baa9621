package org.normcl.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The files of a {@code bench} or {@code tune} run (JSON, PNG, tuning file), written all or
 * nothing, as {@code NpyOutputs} writes the {@code .npy} outputs of {@code apply}: each file is
 * written to a temporary file beside its target, and {@link #commit()} renames them all into place;
 * a failure while writing or renaming leaves every target as it was, and no temporary file.
 * Temporary files are created like any other new file (permissions from the umask, not the
 * owner-only ones of {@link Files#createTempFile}), so the outputs end up with the same
 * permissions as the {@code .npy} ones.
 */
final class StagedFiles implements AutoCloseable {
    /** Writes a file's content to the (existing, empty) temporary file. */
    interface Content {
        void writeTo(Path tmp) throws IOException;
    }

    /** Long target names are cut in temporary names, so that the temporary file can be created. */
    private static final int MAX_NAME_IN_TEMP = 100;

    private record Staged(String option, Path target, Path tmp) {
    }

    private final List<Staged> staged = new ArrayList<>();

    /** Stages bytes for {@code target}, named in messages by {@code option}. */
    void stage(String option, Path target, byte[] bytes) {
        stage(option, target, tmp -> Files.write(tmp, bytes));
    }

    /**
     * Writes {@code content} to a new temporary file beside {@code target}.
     *
     * @throws UncheckedIOException naming the option and the target if it cannot be written
     */
    void stage(String option, Path target, Content content) {
        Path tmp = null;
        try {
            tmp = sibling(target, ".tmp-");
            try (OutputStream o = Files.newOutputStream(tmp, StandardOpenOption.CREATE_NEW)) {
                // Created empty here, with the umask's permissions; the content replaces it.
            }
            staged.add(new Staged(option, target, tmp));
            content.writeTo(tmp);
        } catch (IOException e) {
            throw failure(option, target, e);
        }
    }

    /**
     * Renames every staged file onto its target: a target that exists is moved aside first and
     * moved back if a later rename fails, so that either every target holds its new content or
     * every target is as it was.
     *
     * @throws UncheckedIOException naming the option and target whose rename failed
     */
    void commit() {
        List<Path[]> backups = new ArrayList<>(); // {target, backup}
        List<Path> placed = new ArrayList<>();
        Staged current = null;
        try {
            for (Staged s : staged) {
                current = s;
                if (Files.isRegularFile(s.target(), LinkOption.NOFOLLOW_LINKS)) {
                    Path backup = sibling(s.target(), ".bak-");
                    move(s.target(), backup);
                    backups.add(new Path[] {s.target(), backup});
                }
                move(s.tmp(), s.target());
                placed.add(s.target());
            }
        } catch (IOException e) {
            placed.forEach(p -> deleteQuietly(p, e));
            for (Path[] b : backups) {
                try {
                    move(b[1], b[0]);
                } catch (IOException restore) {
                    e.addSuppressed(restore);
                }
            }
            close();
            throw failure(current.option(), current.target(), e);
        }
        backups.forEach(b -> deleteQuietly(b[1], null));
        staged.clear();
    }

    /** Deletes the temporary files not committed. */
    @Override
    public void close() {
        staged.forEach(s -> deleteQuietly(s.tmp(), null));
        staged.clear();
    }

    /** @return a new name beside {@code target}: {@code .<name><kind><random>}, not yet taken */
    private static Path sibling(Path target, String kind) throws IOException {
        Path abs = target.toAbsolutePath();
        String name = abs.getFileName().toString();
        name = name.substring(0, Math.min(name.length(), MAX_NAME_IN_TEMP));
        for (int attempt = 0; attempt < 100; attempt++) {
            Path p = abs.resolveSibling("." + name + kind + Long.toHexString(ThreadLocalRandom.current().nextLong()));
            if (Files.notExists(p, LinkOption.NOFOLLOW_LINKS)) {
                return p;
            }
        }
        throw new FileAlreadyExistsException(abs.toString(), null, "no free temporary name beside it");
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void deleteQuietly(Path p, Throwable inFlight) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            if (inFlight != null) {
                inFlight.addSuppressed(e);
            }
        }
    }

    /** @return "--json FILE: cannot write: REASON", the reason in words rather than a temporary path */
    static UncheckedIOException failure(String option, Path target, IOException e) {
        String reason = e instanceof FileSystemException f && f.getReason() != null ? f.getReason()
                : e instanceof NoSuchFileException ? "no such file or directory"
                : e instanceof AccessDeniedException ? "permission denied"
                : e.getMessage() != null && !(e instanceof FileSystemException) ? e.getMessage()
                : e.getClass().getSimpleName();
        return new UncheckedIOException(option + " " + target + ": cannot write: " + reason, e);
    }
}
