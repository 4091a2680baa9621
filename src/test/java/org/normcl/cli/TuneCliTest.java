package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.normcl.DeviceInfo;
import org.normcl.opencl.ClRuntime;
import org.normcl.opencl.Tuning;
import org.normcl.reference.TestJson;

/**
 * {@code normcl tune} on tiny shapes: a dry run prints the table and writes nothing; a real run
 * writes the device's tuning file (and nothing else) where engines read it; bad options exit 2
 * with a message that names the option. The cache directory is a temporary one, so neither a
 * user's tuning nor the build's program cache is touched. It asserts what the command reports and
 * writes, never which candidate won.
 */
class TuneCliTest {
    @TempDir
    Path dir;

    private String cacheDirBefore;

    /** Tiny, quick workloads: every parameter is still tried (rows of 64 B and 32 KiB). */
    private static final String[] QUICK = {"--ops", "layer-norm,batch-norm", "--shapes", "64x16,4x8192",
        "--iterations", "1", "--budget-s", "60"};

    @BeforeEach
    void privateCacheDirectory() {
        cacheDirBefore = System.getProperty("normcl.cacheDir");
        System.setProperty("normcl.cacheDir", dir.toString());
    }

    @AfterEach
    void restore() {
        if (cacheDirBefore == null) {
            System.clearProperty("normcl.cacheDir");
        } else {
            System.setProperty("normcl.cacheDir", cacheDirBefore);
        }
    }

    private static String[] tune(String... extra) {
        String[] args = new String[1 + QUICK.length + extra.length];
        args[0] = "tune";
        System.arraycopy(QUICK, 0, args, 1, QUICK.length);
        System.arraycopy(extra, 0, args, 1 + QUICK.length, extra.length);
        return args;
    }

    @Test
    void dryRunPrintsTheTableAndWritesNothing() {
        CliTestSupport.requireOpenCl();
        CliTestSupport.Result r = CliTestSupport.run(tune("--dry-run")).assertOk().assertNoStackTrace();
        assertTrue(r.out().contains("parameter") && r.out().contains("vectorWidth"), r.toString());
        assertTrue(r.out().contains("dry run: nothing written"), r.toString());
        assertTrue(r.err().contains("tune: vectorWidth="), "progress on stderr: " + r);
        assertEquals(List.of(), CliTestSupport.names(dir), "nothing in the cache directory");
    }

    @Test
    void workGroupKernelsTuneTheirGroupCapInstead() {
        CliTestSupport.requireOpenCl();
        String before = System.getProperty("normcl.kernels");
        System.setProperty("normcl.kernels", "group"); // the GPU family, on whatever device there is
        try {
            CliTestSupport.Result r = CliTestSupport.run(tune("--dry-run")).assertOk();
            assertTrue(r.out().contains("maxGroupSize") && r.out().contains("work-group kernels"), r.toString());
            assertTrue(r.out().lines().noneMatch(l -> l.startsWith("serialGroupCap") || l.startsWith("pipeline")),
                    "the one-work-item-per-row parameters are not timed: " + r);
        } finally {
            if (before == null) {
                System.clearProperty("normcl.kernels");
            } else {
                System.setProperty("normcl.kernels", before);
            }
        }
        assertEquals(List.of(), CliTestSupport.names(dir));
    }

    @Test
    void aRunWritesTheDevicesTuningFileAndNothingElse() throws IOException {
        CliTestSupport.requireOpenCl();
        CliTestSupport.Result r = CliTestSupport.run(tune("--json")).assertOk().assertNoStackTrace();
        Map<String, Object> report = TestJson.object(TestJson.parse(r.out()));
        DeviceInfo device = ClRuntime.device(null);
        Path file = Tuning.file(dir.resolve("tuning"), device);
        assertEquals(file.toString(), report.get("file"));
        assertEquals(Boolean.TRUE, report.get("written"));
        assertEquals(List.of("tuning"), CliTestSupport.names(dir));
        assertEquals(List.of(file.getFileName().toString()), CliTestSupport.names(dir.resolve("tuning")),
                "one file, no temporary file left behind");
        Tuning stored = Tuning.read(file, device).orElseThrow();
        Map<String, Object> reported = TestJson.object(report.get("tuning"));
        stored.parameters().forEach((k, v) -> assertEquals(v, String.valueOf(reported.get(k)), k));
        assertEquals(stored, Tuning.forDevice(device), "what engines on this device now use");
        List<Object> trials = TestJson.array(report.get("trials"));
        assertTrue(trials.size() >= 3, "every vector width was timed: " + trials);

        // A second run replaces the file in place.
        CliTestSupport.run(tune()).assertOk();
        assertEquals(List.of(file.getFileName().toString()), CliTestSupport.names(dir.resolve("tuning")));
        assertTrue(Tuning.read(file, device).isPresent());
    }

    /**
     * The tuning file follows the umask like every other output: it was written through an
     * owner-only temporary file of {@code Tuning.write} and ended up 0600.
     */
    @Test
    void theTuningFileGetsTheUmasksPermissions() throws IOException {
        CliTestSupport.requireOpenCl();
        org.junit.jupiter.api.Assumptions.assumeTrue(
                java.nio.file.FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "POSIX");
        Path reference = Files.createFile(dir.resolve("reference"));
        CliTestSupport.run(tune()).assertOk();
        Path file = Tuning.file(dir.resolve("tuning"), ClRuntime.device(null));
        assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(file));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "--ops=layer-norm,softmax | --ops: unknown operator 'softmax'",
        "--shapes=8x0 | --shapes: '8x0'",
        "--ops=layer-norm --shapes=8192x | --shapes: '8192x'",
        "--shapes=9223372036854775807x2 | --shapes: '9223372036854775807x2' has more than",
        "--shapes=, | --shapes: the list is empty",
        "--ops=batch-norm --shapes=64 | --shapes: batch-norm needs shapes of rank >= 2",
        "--budget-s=0 | --budget-s = 0.0",
        "--budget-s=soon | --budget-s",
        "--margin=150 | --margin = 150.0",
        "--iterations=0 | --iterations = 0",
        "--device=no-such-device-anywhere | --device: device 'no-such-device-anywhere' matches no OpenCL device",
        "--frobnicate | --frobnicate",
    })
    void badOptionsExit2NamingTheOption(String args, String message) {
        if (args.startsWith("--device")) {
            CliTestSupport.requireOpenCl();
        }
        List<String> argv = new java.util.ArrayList<>(List.of("tune", "--dry-run"));
        argv.addAll(List.of(args.trim().split(" ")));
        CliTestSupport.Result r = CliTestSupport.run(argv.toArray(String[]::new));
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains(message.trim()), r.toString());
        r.assertNoStackTrace();
        assertEquals(List.of(), CliTestSupport.names(dir));
    }

    /**
     * A --json in a missing directory is a usage error found before measuring; it used to come
     * after the measurements and after the tuning file was written (exit 1).
     */
    @Test
    void jsonDirectoryIsCheckedBeforeMeasuring() {
        CliTestSupport.Result r = CliTestSupport.run(tune("--json", dir.resolve("nodir/t.json").toString()));
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("--json") && r.err().contains("does not exist"), r.toString());
        assertTrue(r.err().lines().noneMatch(l -> l.startsWith("tune: ")), "nothing measured: " + r);
        r.assertNoStackTrace();
        assertEquals(List.of(), CliTestSupport.names(dir));
    }

    /**
     * The JSON cannot be renamed into place (a name over the file system's 255 bytes): neither it
     * nor the tuning file is written, so the engines' tuning stays as it was.
     */
    @Test
    void aJsonThatCannotBeWrittenLeavesNoTuningFile() throws IOException {
        CliTestSupport.requireOpenCl();
        Path out = Files.createDirectory(dir.resolve("out"));
        CliTestSupport.Result r = CliTestSupport.run(tune("--json", out.resolve("t".repeat(300) + ".json")
                .toString()));
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("--json") && r.err().contains("cannot write"), r.toString());
        r.assertNoStackTrace();
        assertEquals(List.of(), CliTestSupport.names(out));
        Path tuning = dir.resolve("tuning");
        assertTrue(Files.notExists(tuning) || CliTestSupport.names(tuning).isEmpty(),
                () -> "no tuning file: " + CliTestSupport.names(tuning));
    }

    @Test
    void withTheCacheDirectoryOffOnlyADryRunMakesSense() {
        CliTestSupport.requireOpenCl();
        System.setProperty("normcl.cacheDir", "off");
        CliTestSupport.Result r = CliTestSupport.run(tune());
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("--dry-run"), r.toString());
        assertTrue(Files.notExists(dir.resolve("tuning")));
    }
}
