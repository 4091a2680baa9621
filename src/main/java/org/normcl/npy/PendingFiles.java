package org.normcl.npy;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * The temporary files of unfinished writes, and the JVM shutdown hook that deletes them when the JVM
 * shuts down before they are renamed into place or deleted: on {@link System#exit}, or on SIGINT,
 * SIGTERM or SIGHUP (Ctrl-C, {@code kill}), which shut the JVM down normally. The hook is registered
 * while at least one temporary file exists and removed when none is left.
 *
 * <p><b>The guarantee with a commit in progress.</b> Creating a temporary file, and a group of renames
 * that must not be cut in half (all of {@link NpyOutputs#commit()}, its undo and the deletion of its
 * backups included; the rename of {@link Npy#write}), run holding {@link #LOCK}, and the hook takes
 * it too. So the hook runs either after such a group has finished (its files are in place and the
 * hook finds none of its temporary files) or before it has started: the group then checks
 * {@link #checkRunning}, fails with "the JVM is shutting down" and renames nothing. Once the hook has
 * run, no temporary file can be created. Threads that are writing a temporary file do not hold the
 * lock: the hook deletes the file under them, and they fail or are stopped when the JVM halts.
 *
 * <p>SIGKILL ({@code kill -9}), a JVM crash or a power loss stop the JVM without running hooks: a
 * temporary file {@code .<name>.tmp-<random>} may then remain next to its target, and if a commit was
 * under way, a backup {@code .<name>.bak-<hex>} and some targets placed while others are not.
 * Such leftovers are not deleted automatically later (by a next run): a file of that name may just as
 * well belong to another process writing to the same directory at that moment, which would then lose
 * its output, or to another program; they can be deleted by hand when no write is under way.
 *
 * <p>Thread-safe.
 */
final class PendingFiles {
    /** Held by the hook and by whatever must not be interrupted by it half way. */
    static final Object LOCK = new Object();

    private static final Set<Path> FILES = new LinkedHashSet<>();
    /** The registered hook, or null when none is (no file, or the JVM is shutting down). */
    private static Thread hook;
    /** Whether the hook has run: nothing may be created or renamed any more. */
    private static boolean shutDown;

    private PendingFiles() {
    }

    /**
     * Creates a new temporary file (as {@link StandardOpenOption#CREATE_NEW}) and records it, to be
     * deleted if the JVM shuts down before {@link #forget} is called.
     *
     * @return the file, open for writing
     * @throws java.nio.file.FileAlreadyExistsException if {@code tmp} exists
     * @throws FileSystemException if the JVM is shutting down; nothing is created then
     * @throws IOException if the file cannot be created
     */
    static FileChannel create(Path tmp) throws IOException {
        synchronized (LOCK) {
            checkRunning(tmp);
            if (hook == null) {
                Thread h = new Thread(PendingFiles::deleteAll, "normcl-npy-cleanup");
                try {
                    Runtime.getRuntime().addShutdownHook(h);
                } catch (IllegalStateException e) { // shutdown in progress, started elsewhere
                    throw shuttingDown(tmp);
                }
                hook = h;
            }
            FileChannel ch;
            try {
                ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            } catch (IOException | RuntimeException | Error e) {
                removeHookIfIdle();
                throw e;
            }
            FILES.add(tmp);
            return ch;
        }
    }

    /** Stops tracking a temporary file that was renamed into place or deleted. */
    static void forget(Path tmp) {
        synchronized (LOCK) {
            FILES.remove(tmp);
            removeHookIfIdle();
        }
    }

    /**
     * Checks, holding {@link #LOCK}, that the hook has not run.
     *
     * @param target the file about to be written, for the message
     * @throws FileSystemException "the JVM is shutting down", naming {@code target}, if it has
     */
    static void checkRunning(Path target) throws FileSystemException {
        synchronized (LOCK) {
            if (shutDown) {
                throw shuttingDown(target);
            }
        }
    }

    /** @return whether a shutdown hook is registered (for tests) */
    static boolean hookRegistered() {
        synchronized (LOCK) {
            return hook != null;
        }
    }

    /** @return whether the hook has run (for tests) */
    static boolean shutDown() {
        synchronized (LOCK) {
            return shutDown;
        }
    }

    private static FileSystemException shuttingDown(Path target) {
        return new FileSystemException(target.toString(), null, "the JVM is shutting down");
    }

    private static void removeHookIfIdle() {
        if (hook == null || !FILES.isEmpty()) {
            return;
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // Shutdown in progress: the hook runs anyway, and finds nothing to delete.
        }
        hook = null;
    }

    /** The hook: deletes every recorded file, and refuses new ones from now on. */
    private static void deleteAll() {
        synchronized (LOCK) {
            shutDown = true;
            for (Path p : FILES) {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException | RuntimeException e) {
                    System.err.println("normcl: cannot delete the temporary file " + p + " at exit: " + e);
                }
            }
            FILES.clear();
            hook = null;
        }
    }
}
