package org.normcl.npy;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a normal JVM shutdown (SIGTERM here, as {@code kill} or {@link Process#destroy()} sends; SIGINT
 * and {@link System#exit} run the same hooks) leaves of unfinished writes: a child JVM ({@link Child})
 * writes into a temporary directory, says on stdout when it has reached the state under test, and
 * is terminated. Before the shutdown hook, {@code normcl apply} killed while writing left its
 * temporary file {@code .y.npy.tmp-<hex>} behind for good.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class NpyShutdownTest {
    /** Elements per file written by the loops: 4 MiB, so that most of the time goes into writing. */
    static final int N = 1 << 20;
    /** The exit status of a JVM shut down by SIGTERM: 128 + 15. */
    static final int SIGTERM_STATUS = 143;

    @TempDir
    Path dir;

    /** A child JVM running {@link Child}, its stdout read line by line. */
    private final class Running implements AutoCloseable {
        final Process process;
        final BufferedReader out;
        final Path err;

        Running(String mode) throws IOException {
            err = Files.createTempFile("npy-shutdown-child", ".err");
            process = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                    System.getProperty("java.class.path"), Child.class.getName(), mode, dir.toString())
                    .redirectError(err.toFile()).start();
            out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        }

        /** Waits for the child's next line (it blocks until the child prints it or ends). */
        String line() throws IOException {
            String line = out.readLine();
            assertNotNull(line, () -> "the child ended early; stderr:\n" + stderr());
            return line;
        }

        /**
         * Sends SIGTERM and waits for the JVM to shut down. (Through the process handle: {@link
         * Process#destroy()} also closes the child's stdin, which ends it normally as well.)
         */
        void terminate() throws Exception {
            assertTrue(process.toHandle().destroy(), "SIGTERM could not be sent");
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the child did not shut down in 60 s");
            assertEquals(SIGTERM_STATUS, process.exitValue(), () -> "expected a shutdown by SIGTERM; stderr:\n"
                    + stderr());
        }

        String stderr() {
            try {
                return Files.readString(err, StandardCharsets.UTF_8);
            } catch (IOException e) {
                return e.toString();
            }
        }

        @Override
        public void close() throws IOException {
            process.destroyForcibly();
            Files.deleteIfExists(err);
        }
    }

    private String[] files() {
        return NpyFixtures.list(dir);
    }

    @Test
    void stagedFilesAreDeletedOnSigterm() throws Exception {
        try (Running child = new Running("staged")) {
            assertEquals("staged", child.line());
            assertEquals(2, files().length, "two temporary files");
            for (String name : files()) {
                assertTrue(name.startsWith(".") && name.contains(".npy.tmp-"), name);
            }
            child.terminate();
            assertArrayEquals(new String[0], files(), "no temporary file left");
        }
    }

    /** A file of other content (a report, an image) is covered as well, while it is being written. */
    @Test
    void aContentBeingWrittenIsDeletedOnSigterm() throws Exception {
        try (Running child = new Running("content")) {
            assertEquals("writing", child.line());
            assertEquals(2, files().length, "two temporary files");
            child.terminate();
            assertArrayEquals(new String[0], files(), "no temporary file left");
        }
    }

    @Test
    void committedFilesAreKeptOnSigterm() throws Exception {
        try (Running child = new Running("committed")) {
            assertEquals("committed", child.line());
            child.terminate();
            assertArrayEquals(new String[] {"a.npy", "b.npy"}, files());
            assertArrayEquals(new float[] {1, 2}, Npy.read(dir.resolve("a.npy")).data());
            assertArrayEquals(new float[] {3}, Npy.read(dir.resolve("b.npy")).data());
        }
    }

    /**
     * The child stages and commits a.npy and b.npy over and over, both holding the iteration's
     * number, until SIGTERM lands wherever it lands: mostly while a temporary file is written,
     * sometimes during a commit. Afterwards no temporary or backup file is left, and the two files
     * are whole and from the same commit: the hook never cuts a commit in half.
     */
    @Test
    void sigtermDuringRepeatedCommitsLeavesWholeCommitsOnly() throws Exception {
        try (Running child = new Running("commit-loop")) {
            assertEquals("committed 0", child.line());
            child.terminate();
            assertArrayEquals(new String[] {"a.npy", "b.npy"}, files(), "no temporary or backup file left");
            float[] a = Npy.read(dir.resolve("a.npy")).data();
            float[] b = Npy.read(dir.resolve("b.npy")).data();
            assertEquals(N, a.length);
            float[] same = new float[N];
            Arrays.fill(same, a[0]);
            assertArrayEquals(same, a, "a.npy is whole");
            assertArrayEquals(same, b, "b.npy is from the same commit as a.npy");
        }
    }

    /** The same with {@link Npy#write}, which has one temporary file at a time. */
    @Test
    void sigtermDuringRepeatedWritesLeavesAWholeFile() throws Exception {
        try (Running child = new Running("write-loop")) {
            assertEquals("written 0", child.line());
            child.terminate();
            assertArrayEquals(new String[] {"a.npy"}, files(), "no temporary file left");
            float[] a = Npy.read(dir.resolve("a.npy")).data();
            float[] same = new float[N];
            Arrays.fill(same, a[0]);
            assertArrayEquals(same, a, "a.npy is whole");
        }
    }

    /**
     * Once the hook has run, a commit that had not started yet, a new stage and a new write fail
     * naming their target, and create or replace nothing (the child tries them from a shutdown hook
     * of its own, after ours has run).
     */
    @Test
    void afterTheHookNothingIsCreatedOrRenamed() throws Exception {
        Files.writeString(dir.resolve("b.npy"), "old");
        try (Running child = new Running("late")) {
            assertEquals("staged", child.line());
            child.terminate();
            assertEquals("commit: cannot write " + dir.resolve("a.npy") + ": the JVM is shutting down", child.line());
            assertEquals("stage: cannot write " + dir.resolve("b.npy") + ": the JVM is shutting down", child.line());
            assertEquals("write: cannot write " + dir.resolve("c.npy") + ": the JVM is shutting down", child.line());
            assertArrayEquals(new String[] {"b.npy"}, files());
            assertEquals("old", Files.readString(dir.resolve("b.npy")));
        }
    }

    /** The hook is registered only while a temporary file exists. */
    @Test
    void theHookIsRegisteredOnlyWhileFilesAreStaged() {
        assertFalse(PendingFiles.hookRegistered(), "no temporary file: no hook");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("a.npy"), new float[] {1}, new long[] {1});
            assertTrue(PendingFiles.hookRegistered());
            out.commit();
            assertFalse(PendingFiles.hookRegistered(), "removed after a commit");
        }
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("b.npy"), new float[] {1}, new long[] {1});
            assertTrue(PendingFiles.hookRegistered());
        }
        assertFalse(PendingFiles.hookRegistered(), "removed after a close without commit");
        try (NpyOutputs out = new NpyOutputs()) {
            out.stage(dir.resolve("d.json"), new byte[] {'{', '}'});
            assertTrue(PendingFiles.hookRegistered(), "files of any content too");
        }
        assertFalse(PendingFiles.hookRegistered());
        Npy.write(dir.resolve("c.npy"), new float[] {1}, new long[] {1});
        assertFalse(PendingFiles.hookRegistered(), "removed after a write");
        assertArrayEquals(new String[] {"a.npy", "c.npy"}, files());
    }

    /** The child JVM: {@code Child MODE DIR}. */
    static final class Child {
        private Child() {
        }

        public static void main(String[] args) throws Exception {
            Path dir = Path.of(args[1]);
            Path a = dir.resolve("a.npy");
            Path b = dir.resolve("b.npy");
            switch (args[0]) {
                case "staged": {
                    NpyOutputs out = new NpyOutputs();
                    out.stage(a, new float[] {1, 2}, new long[] {2});
                    out.stage(b, new float[] {3}, new long[] {1});
                    say("staged");
                    break;
                }
                case "content": {
                    NpyOutputs out = new NpyOutputs();
                    out.stage(dir.resolve("r.json"), "{}".getBytes(StandardCharsets.UTF_8));
                    out.stage(dir.resolve("p.png"), o -> {
                        o.write(1);
                        say("writing");
                        System.in.read(); // until terminated
                    });
                    break;
                }
                case "committed": {
                    try (NpyOutputs out = new NpyOutputs()) {
                        out.stage(a, new float[] {1, 2}, new long[] {2});
                        out.stage(b, new float[] {3}, new long[] {1});
                        out.commit();
                    }
                    say("committed");
                    break;
                }
                case "commit-loop":
                    float[] data = new float[N];
                    for (int i = 0; ; i++) {
                        Arrays.fill(data, i);
                        try (NpyOutputs out = new NpyOutputs()) {
                            out.stage(a, data, new long[] {N});
                            out.stage(b, data, new long[] {N});
                            out.commit();
                        }
                        if (i == 0) {
                            say("committed 0");
                        }
                    }
                case "write-loop":
                    float[] values = new float[N];
                    for (int i = 0; ; i++) {
                        Arrays.fill(values, i);
                        Npy.write(a, values, new long[] {N});
                        if (i == 0) {
                            say("written 0");
                        }
                    }
                case "late": {
                    NpyOutputs out = new NpyOutputs();
                    out.stage(a, new float[] {1}, new long[] {1});
                    Runtime.getRuntime().addShutdownHook(new Thread(() -> afterOurHook(out, dir)));
                    say("staged");
                    break;
                }
                default:
                    throw new IllegalArgumentException(args[0]);
            }
            System.in.read(); // until terminated
        }

        /** From a shutdown hook of the child's own: waits for ours to run, then tries to write. */
        private static void afterOurHook(NpyOutputs out, Path dir) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!PendingFiles.shutDown() && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            try {
                out.commit();
                say("commit: succeeded");
            } catch (UncheckedIOException e) {
                say("commit: " + e.getMessage());
            }
            try (NpyOutputs more = new NpyOutputs()) {
                more.stage(dir.resolve("b.npy"), new float[] {1}, new long[] {1});
                say("stage: succeeded");
            } catch (UncheckedIOException e) {
                say("stage: " + e.getMessage());
            }
            try {
                Npy.write(dir.resolve("c.npy"), new float[] {1}, new long[] {1});
                say("write: succeeded");
            } catch (UncheckedIOException e) {
                say("write: " + e.getMessage());
            }
        }

        private static void say(String line) {
            System.out.println(line);
            System.out.flush();
        }
    }
}
