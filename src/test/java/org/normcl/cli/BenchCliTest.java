package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.imageio.ImageIO;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.NormEngine;

/**
 * {@code normcl bench}'s usage errors and its output files, beside {@code jvm.BenchCommandTest}
 * (records and arithmetic): malformed or empty lists exit 2 naming the option; {@code --json} and
 * {@code --plot} paths are checked before anything is measured, and are written all or nothing;
 * the plot keeps element types apart. Runs are tiny (4x4, one iteration, no warm-up).
 */
class BenchCliTest {
    @TempDir
    Path dir;

    /** Quick settings; an option the case gives itself is left out (list options accumulate). */
    private static final String[][] QUICK = {{"--ops", "layer-norm"}, {"--shapes", "4x4"}, {"--backends", "java"},
        {"--warmup", "0"}, {"--warmup-ms", "0"}, {"--iterations", "1"}, {"--no-engine"}};

    private static String[] bench(String... args) {
        List<String> argv = new ArrayList<>(List.of("bench"));
        for (String[] q : QUICK) {
            if (Arrays.stream(args).noneMatch(a -> a.equals(q[0]) || a.startsWith(q[0] + "="))) {
                argv.addAll(List.of(q));
            }
        }
        argv.addAll(List.of(args));
        return argv.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        // A trailing 'x' used to be dropped: 8192x ran shape 8192, 8192x1024x ran 8192x1024.
        "--shapes=8192x | --shapes: '8192x': expected dimensions >= 1 joined by 'x'",
        "--shapes=4x4x | --shapes: '4x4x'",
        "--shapes=x4 | --shapes: 'x4'", // a leading one was always an error
        // Element counts past a long: was "error: long overflow", exit 1.
        "--shapes=100000000000x100000000000 | --shapes: '100000000000x100000000000' has more than",
        "--shapes=9223372036854775807x2 | --shapes: '9223372036854775807x2' has more than",
        // Empty lists ran nothing and exited 0.
        "--dtype=, | --dtype: the list is empty",
        "--backends=, | --backends: the list is empty",
        "--shapes=, | --shapes: the list is empty",
        "--ops=, | --ops: the list is empty",
        // No file name: was a NullPointerException's message, exit 1.
        "--plot=/ | --plot /: expected a .png file name",
        // Bounds: 2^31-1 iterations failed every record for lack of memory; warm-up ms overflowed to none.
        "--iterations=2000000 | --iterations = 2000000: expected 1 to 1000000",
        "--warmup=2000000 | --warmup = 2000000: expected 0 to 1000000",
        "--warmup-ms=9223372036854775807 | --warmup-ms = 9223372036854775807: expected 0 to 3600000",
        // The help said so, but every backward record came out 'unsupported', exit 0.
        "--backward | --backward times the passes through NormEngine: drop --no-engine",
    })
    void badListsAndShapesExit2NamingTheOption(String arg, String message) {
        CliTestSupport.Result r = CliTestSupport.run(bench(arg.trim()));
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains(message.trim()), r::toString);
        assertFalse(r.err().contains("bench: [1/"), () -> "nothing is measured\n" + r);
        r.assertNoStackTrace();
    }

    @Test
    void outputDirectoriesAreCheckedBeforeMeasuring() {
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        String missing = dir.resolve("nodir").toString();
        CliTestSupport.Result json = CliTestSupport.run(bench("--json", missing + "/b.json"));
        assertEquals(2, json.code(), json::toString);
        assertTrue(json.err().contains("--json") && json.err().contains("directory " + missing + " does not exist"),
                json::toString);
        assertFalse(json.err().contains("bench: [1/"), () -> "checked before measuring\n" + json);
        json.assertNoStackTrace();

        // A good --json with a bad --plot: this used to write the JSON, measure, then fail on the plot (exit 1).
        CliTestSupport.Result plot = CliTestSupport.run(bench("--json", dir.resolve("ok.json").toString(), "--plot",
                missing + "/x.png"));
        assertEquals(2, plot.code(), plot::toString);
        assertTrue(plot.err().contains("--plot") && plot.err().contains("directory " + missing + " does not exist"),
                plot::toString);
        assertFalse(plot.err().contains("bench: [1/"), () -> "checked before measuring\n" + plot);
        CliTestSupport.assertUnchanged(before, dir, plot);
    }

    /** The OpenCL device is resolved before the Java records are taken (it was after them, minutes in). */
    @Test
    void aBadDeviceIsRefusedBeforeTheJavaRecords() {
        CliTestSupport.Result r = CliTestSupport.run(bench("--backends", "java,opencl", "--device",
                "no-such-device-name"));
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains(NormEngine.openClUnavailableReason().isPresent() ? "--backends opencl"
                : "--device"), r::toString);
        assertFalse(r.err().contains("bench: [1/"), () -> "checked before measuring\n" + r);
        r.assertNoStackTrace();
    }

    /** A directory the process may not write to fails before the run, not after it (/proc/self: even for root). */
    @Test
    void anUnwritableOutputDirectoryIsRefusedBeforeMeasuring() {
        assumeTrue(!Files.isWritable(Path.of("/proc/self")), "/proc/self is writable here");
        CliTestSupport.Result r = CliTestSupport.run(bench("--json", "/proc/self/bench.json"));
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains("--json") && r.err().contains("is not writable"), r::toString);
        assertFalse(r.err().contains("bench: [1/"), () -> "checked before measuring\n" + r);
        r.assertNoStackTrace();
    }

    /**
     * The plot's name is too long for the file system (255 bytes), which shows only when it is
     * renamed into place, after the JSON: the JSON must not stay, and an existing one keeps its bytes.
     */
    @Test
    void aFailureWritingThePlotLeavesTheJsonAsItWas() throws IOException {
        String longPlot = dir.resolve("p".repeat(300) + ".png").toString();
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.run(bench("--json", dir.resolve("ok.json").toString(), "--plot",
                longPlot));
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().contains("--plot") && r.err().contains("cannot write"), r::toString);
        r.assertNoStackTrace();
        CliTestSupport.assertUnchanged(before, dir, r);

        Files.writeString(dir.resolve("ok.json"), "previous", StandardCharsets.UTF_8);
        Map<String, byte[]> withJson = CliTestSupport.snapshot(dir);
        CliTestSupport.Result again = CliTestSupport.run(bench("--json", dir.resolve("ok.json").toString(), "--plot",
                longPlot));
        assertEquals(1, again.code(), again::toString);
        CliTestSupport.assertUnchanged(withJson, dir, again);
    }

    /**
     * Every measurement fails (a 120 MB tensor in a 64 MiB heap, in a child JVM): there is nothing
     * to plot, so neither the plot (it used to be an empty chart) nor the JSON is written.
     */
    @Test
    void nothingToPlotWritesNoFile() {
        Map<String, byte[]> before = CliTestSupport.snapshot(dir);
        CliTestSupport.Result r = CliTestSupport.runInChildJvm(Map.of("JAVA_TOOL_OPTIONS", "-Xmx64m"), bench(
                "--shapes", "30000000", "--json", dir.resolve("b.json").toString(), "--plot",
                dir.resolve("b.png").toString()));
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.out().contains("error"), () -> "the table shows why\n" + r);
        assertTrue(r.err().contains("--plot") && r.err().contains("nothing to plot"), r::toString);
        r.assertNoStackTrace();
        CliTestSupport.assertUnchanged(before, dir, r);
    }

    /**
     * An existing {@code --json} output that is a symbolic link survives a failed commit: only
     * regular files were moved aside, so the link was replaced by the new JSON and then deleted by
     * the undo. It is put back, pointing where it did, and the file it points to keeps its bytes.
     */
    @Test
    void aFailedCommitKeepsASymbolicLinkOutput() throws IOException {
        Files.writeString(dir.resolve("real.json"), "previous", StandardCharsets.UTF_8);
        Path link = dir.resolve("report.json");
        try {
            Files.createSymbolicLink(link, Path.of("real.json"));
        } catch (UnsupportedOperationException e) {
            org.junit.jupiter.api.Assumptions.abort("no symbolic links here: " + e);
        }
        CliTestSupport.Result r = CliTestSupport.run(bench("--json", link.toString(), "--plot",
                dir.resolve("p".repeat(300) + ".png").toString()));
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.err().contains("--plot") && r.err().contains("cannot write"), r::toString);
        r.assertNoStackTrace();
        assertTrue(Files.isSymbolicLink(link), "the link is still there");
        assertEquals(Path.of("real.json"), Files.readSymbolicLink(link));
        assertEquals("previous", Files.readString(dir.resolve("real.json"), StandardCharsets.UTF_8));
        assertEquals(List.of("real.json", "report.json"), CliTestSupport.names(dir), "no temporary or backup file");
    }

    /** The JSON was created owner-only (a temporary file's mode) while .npy and .png follow the umask. */
    @Test
    void outputsGetTheUmasksPermissions() throws IOException {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
        Set<PosixFilePermission> umask = Files.getPosixFilePermissions(Files.createFile(dir.resolve("reference")));
        Path json = dir.resolve("b.json");
        Path png = dir.resolve("b.png");
        CliTestSupport.run(bench("--json", json.toString(), "--plot", png.toString())).assertOk();
        assertEquals(umask, Files.getPosixFilePermissions(json), "--json");
        assertEquals(umask, Files.getPosixFilePermissions(png), "--plot");
        assertEquals(Set.of("b.json", "b.png", "reference"), Set.copyOf(CliTestSupport.names(dir)),
                "no temporary file left");
    }

    /**
     * Two element types on one backend: one line each, with its own values, and one copy line
     * each (a float16 copy moves half the bytes). The series key used to leave the type out, so the
     * last type's values overwrote the first's and the copies of both were merged.
     */
    @Test
    void thePlotKeepsElementTypesApart() throws IOException {
        List<Map<String, Object>> records = List.of(record("float32", 4, 10.0, 20.0), record("float16", 4, 5.0, 8.0),
                record("float32", 8, 12.0, 22.0), record("float16", 8, 6.0, 9.0));
        BenchPlot.Data d = BenchPlot.collect(records);
        assertEquals(List.of("4x4", "8x8"), d.shapes());
        assertEquals(Map.of("4x4", 10.0, "8x8", 12.0), d.series().get("layer-norm float32 (java)"), d.toString());
        assertEquals(Map.of("4x4", 5.0, "8x8", 6.0), d.series().get("layer-norm float16 (java)"), d.toString());
        assertEquals(2, d.series().size(), d.toString());
        assertEquals(Map.of("4x4", List.of(20.0), "8x8", List.of(22.0)), d.copies().get("float32 (java)"),
                d.toString());
        assertEquals(Map.of("4x4", List.of(8.0), "8x8", List.of(9.0)), d.copies().get("float16 (java)"),
                d.toString());
        assertEquals(2, d.copies().size(), d.toString());

        Path png = dir.resolve("dt.png");
        try (java.io.OutputStream o = Files.newOutputStream(png)) {
            BenchPlot.write(records, o);
        }
        assertNotNull(ImageIO.read(png.toFile()));
    }

    private static Map<String, Object> record(String dtype, long side, double gbps, double copyGbps) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("op", "layer-norm");
        r.put("pass", "forward");
        r.put("dtype", dtype);
        r.put("shape", List.of(side, side));
        r.put("backend", "java");
        r.put("status", "ok");
        r.put("gbps", gbps);
        r.put("copy_gbps", copyGbps);
        return r;
    }

    /** The report's {@code cpu}: the first processor's model name, and null where there is none. */
    @Test
    void cpuNamesTheFirstProcessorFromCpuinfo() {
        List<String> x86 = List.of("processor\t: 0", "vendor_id\t: AuthenticAMD", "cpu family\t: 26", "model\t\t: 2",
                "model name\t: AMD EPYC", "flags\t\t: fpu", "", "processor\t: 1", "cpu family\t: 6", "model\t\t: 85",
                "model name\t: Other", "");
        assertEquals("AMD EPYC (family 26, model 2)", BenchCommand.cpu(x86.iterator()));
        assertEquals("AMD EPYC", BenchCommand.cpu(List.of("model name\t: AMD EPYC", "").iterator()));
        // An empty name is no name (the report falls back to os.arch).
        assertEquals(null, BenchCommand.cpu(List.of("model name\t:", "cpu family\t: 6", "model\t\t: 85").iterator()));
        // ARM: no "model name" line.
        assertEquals(null, BenchCommand.cpu(List.of("processor\t: 0", "BogoMIPS\t: 50.00", "CPU implementer\t: 0x41",
                "CPU part\t: 0xd0c", "").iterator()));
        assertFalse(BenchCommand.cpu().isBlank());
    }
}
