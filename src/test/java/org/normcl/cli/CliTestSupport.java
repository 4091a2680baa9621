package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.Assumptions;
import org.normcl.DeviceInfo;
import org.normcl.NormEngine;

/**
 * Shared helpers of the CLI tests: running {@link Main#run} in-process (or {@code normcl} in a child
 * JVM), directory snapshots, seeded random data and the OpenCL availability policy.
 */
final class CliTestSupport {
    private CliTestSupport() {
    }

    /** What one CLI run produced. */
    record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
        }

        /** Asserts exit 0 (showing both streams otherwise). */
        Result assertOk() {
            assertEquals(0, code, () -> "expected exit 0\n" + this);
            return this;
        }

        /**
         * Asserts that stderr carries no Java stack trace or exception class name. Skipped when the
         * CLI's own debug switch ({@code -Dnormcl.debug} / {@code NORMCL_DEBUG}) asks for traces.
         */
        Result assertNoStackTrace() {
            if (Boolean.getBoolean("normcl.debug") || System.getenv("NORMCL_DEBUG") != null) {
                return this;
            }
            for (String s : List.of("\tat ", "Exception in thread", "Caused by:", "java.lang.", "java.io.",
                    "java.nio.", "org.normcl.", "picocli.")) {
                assertFalse(err.contains(s) || out.contains(s), () -> "output contains '" + s.replace("\t", "\\t")
                        + "' (a stack trace or a class name leaked into the message)\n" + this);
            }
            return this;
        }
    }

    /** Runs {@code normcl ARGS} in this JVM. */
    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code;
        try (PrintWriter o = new PrintWriter(out, true); PrintWriter e = new PrintWriter(err, true)) {
            code = Main.run(o, e, args);
        }
        return new Result(code, out.toString(), err.toString());
    }

    /**
     * Runs {@code normcl ARGS} in a child JVM (same class path) with extra environment variables,
     * for behaviour that depends on process-wide state such as the one-time OpenCL scan.
     */
    static Result runInChildJvm(Map<String, String> env, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("org.normcl.cli.Main");
        cmd.addAll(Arrays.asList(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove("NORMCL_DEBUG");
        pb.environment().putAll(env);
        try {
            Path out = Files.createTempFile("normcl-child", ".out");
            Path err = Files.createTempFile("normcl-child", ".err");
            try {
                pb.redirectOutput(out.toFile()).redirectError(err.toFile());
                Process p = pb.start();
                if (!p.waitFor(120, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    fail("child JVM did not finish in 120 s: " + cmd);
                }
                return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                        Files.readString(err, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** @return whether the tests run under CI, where OpenCL is mandatory */
    static boolean inCi() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /**
     * Returns the OpenCL devices, or: under {@code CI=true} fails the test when there is none;
     * elsewhere prints a loud warning to stderr and aborts (skips) the test.
     */
    static List<DeviceInfo> requireOpenCl() {
        List<DeviceInfo> devices = NormEngine.devices();
        if (devices.isEmpty()) {
            String reason = NormEngine.openClUnavailableReason().orElse("no device");
            if (inCi()) {
                fail("CI=true but no OpenCL device is available (" + reason + "): the OpenCL CLI tests must run in CI");
            }
            String msg = "OpenCL CLI test SKIPPED: no OpenCL device (" + reason + ")";
            warnOnce(msg);
            Assumptions.abort(msg);
        }
        return devices;
    }

    private static boolean warned;

    /** Prints the skip warning once per test JVM, framed so that it stands out in the build log. */
    private static synchronized void warnOnce(String msg) {
        if (!warned) {
            warned = true;
            System.err.println("\n**********************************************************************");
            System.err.println("* WARNING: " + msg);
            System.err.println("* Every OpenCL case of the CLI tests is skipped; only the Java backend is tested.");
            System.err.println("* Under CI=true this is a failure. Install OpenCL (scripts/test does it as root).");
            System.err.println("**********************************************************************\n");
        }
    }

    /** Skips (or, for opencl under CI, fails) unless the backend named by {@code --backend} can run. */
    static void requireBackend(String backend) {
        if (backend.equals("opencl")) {
            requireOpenCl();
        }
    }

    /**
     * @return every file name in {@code dir} (hidden ones included, so stray temporary files show)
     *     mapped to its bytes
     */
    static Map<String, byte[]> snapshot(Path dir) {
        Map<String, byte[]> m = new TreeMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                m.put(p.getFileName().toString(), Files.isDirectory(p) ? new byte[0] : Files.readAllBytes(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return m;
    }

    /** @return the sorted file names in {@code dir}, hidden ones included */
    static List<String> names(Path dir) {
        return new ArrayList<>(snapshot(dir).keySet());
    }

    /** Asserts that {@code dir} holds exactly the files of {@code before}, byte for byte. */
    static void assertUnchanged(Map<String, byte[]> before, Path dir, Result r) {
        Map<String, byte[]> after = snapshot(dir);
        assertEquals(before.keySet(), after.keySet(),
                () -> "the directory's files changed (a failed run must leave no output or temporary file)\n" + r);
        for (Map.Entry<String, byte[]> e : before.entrySet()) {
            if (!Arrays.equals(e.getValue(), after.get(e.getKey()))) {
                fail(e.getKey() + " was modified by a failed run\n" + r);
            }
        }
    }

    /** Seeded normal values {@code mean + sd * N(0, 1)}, rounded to float32. */
    static float[] gaussian(long seed, int n, double mean, double sd) {
        Random rnd = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (mean + sd * rnd.nextGaussian());
        }
        return a;
    }

    /** Seeded uniform values in {@code [lo, hi)}, rounded to float32. */
    static float[] uniform(long seed, int n, double lo, double hi) {
        Random rnd = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return a;
    }

    /** @return {@code prod(shape)} as an int */
    static int size(long... shape) {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return Math.toIntExact(n);
    }
}
