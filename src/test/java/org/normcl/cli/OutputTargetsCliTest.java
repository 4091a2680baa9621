package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.reference.TestNpy;

/**
 * Output options naming a named pipe: {@code normcl apply --output p3} with {@code p3} made by
 * {@code mkfifo} used to exit 0 and replace the pipe with a regular file (as root,
 * {@code --output /dev/null} replaced the system's /dev/null). Now it is bad input: exit 2, a message
 * naming the path and what it is, no file written and the pipe left alone. (A separate class from
 * {@code ApplyErrorsTest}, whose directory snapshots read every file: reading a pipe would block.)
 */
class OutputTargetsCliTest {
    @TempDir
    Path dir;

    @BeforeEach
    void inputs() throws IOException {
        float[] x = new float[30];
        float[] dy = new float[30];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i);
            dy[i] = (float) Math.cos(i);
        }
        TestNpy.writeFloat32(dir.resolve("x.npy"), new long[] {6, 5}, x);
        TestNpy.writeFloat32(dir.resolve("dy.npy"), new long[] {6, 5}, dy);
    }

    /** Makes a named pipe with mkfifo(1), or skips the test where there is none. */
    private Path fifo(String name) throws Exception {
        Path p = dir.resolve(name);
        Process proc;
        try {
            proc = new ProcessBuilder("mkfifo", p.toString()).redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.abort("mkfifo cannot run here: " + e);
            return p;
        }
        String output = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Assumptions.assumeTrue(proc.waitFor() == 0, () -> "mkfifo failed here: " + output);
        return p;
    }

    /** @return the POSIX file type as stat(1) prints it (%F) */
    private static String fileType(Path p) throws Exception {
        Process proc = new ProcessBuilder("stat", "-c", "%F", p.toString()).redirectErrorStream(true).start();
        String output = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertEquals(0, proc.waitFor(), output);
        return output;
    }

    private List<String> names() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private void refused(Path pipe, String option, String... args) throws Exception {
        List<String> before = names();
        List<String> argv = new ArrayList<>();
        for (String a : args) {
            argv.add(a.endsWith(".npy") || a.equals(pipe.getFileName().toString()) ? dir.resolve(a).toString() : a);
        }
        CliTestSupport.Result r = CliTestSupport.run(argv.toArray(new String[0]));
        assertEquals(2, r.code(), () -> "expected exit 2 (bad usage)\n" + r);
        r.assertNoStackTrace();
        assertEquals("", r.out(), () -> "nothing belongs on stdout\n" + r);
        String err = r.err().toLowerCase(Locale.ROOT);
        assertTrue(err.contains(option + " = ") && err.contains(pipe.toString().toLowerCase(Locale.ROOT))
                && err.contains("named pipe") && err.contains("expected"),
                () -> "the message names the option, the path, what it is and what is expected\n" + r);
        assertEquals("fifo", fileType(pipe), "the pipe is left alone");
        assertEquals(before, names(), "no output or temporary file");
    }

    @Test
    void applyOutputOntoANamedPipeExitsTwo() throws Exception {
        Path p3 = fifo("p3");
        refused(p3, "--output", "apply", "layer-norm", "--backend", "java", "--input", "x.npy", "--output", "p3");
    }

    @Test
    void applyStatisticOntoANamedPipeWritesNoOutputEither() throws Exception {
        Path p = fifo("mean");
        refused(p, "--save-mean", "apply", "layer-norm", "--backend", "java", "--input", "x.npy", "--output", "y.npy",
                "--save-mean", "mean");
    }

    @Test
    void gradOutputOntoANamedPipeExitsTwo() throws Exception {
        Path p = fifo("dx");
        refused(p, "--output-grad-input", "grad", "layer-norm", "--backend", "java", "--input", "x.npy", "--grad-output", "dy.npy",
                "--output-grad-input", "dx");
    }

    /**
     * Two output options naming one file by different spellings: {@code alias/y.npy} with
     * {@code alias -> .}, or a hard link. Were both staged, a failed commit restored the second
     * backup (the first output's new bytes) over the user's file; now it is bad input naming both.
     */
    @Test
    void applyRefusesTwoOutputsThatAreOneFile() throws Exception {
        Path y = dir.resolve("y.npy");
        Files.writeString(y, "user data");
        try {
            Files.createSymbolicLink(dir.resolve("alias"), Path.of("."));
        } catch (UnsupportedOperationException | IOException e) {
            Assumptions.abort("no symbolic links here: " + e);
        }
        Files.createLink(dir.resolve("hard.npy"), y);
        for (String other : new String[] {"alias/y.npy", "hard.npy"}) {
            List<String> before = names();
            CliTestSupport.Result r = CliTestSupport.run("apply", "layer-norm", "--backend", "java", "--input",
                    dir.resolve("x.npy").toString(), "--output", y.toString(), "--save-mean",
                    dir.resolve(other).toString(), "--save-inv-std", dir.resolve("s".repeat(300) + ".npy").toString());
            assertEquals(2, r.code(), () -> other + ": expected exit 2 (bad usage)\n" + r);
            r.assertNoStackTrace();
            assertTrue(r.err().contains("--save-mean = ") && r.err().contains("--output = " + y)
                    && r.err().contains("the same file"), () -> "names both options\n" + r);
            assertEquals("user data", Files.readString(y), other);
            assertEquals(before, names(), "no output or temporary file");
        }
    }
}
