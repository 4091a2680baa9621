package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import javax.imageio.ImageIO;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.DeviceInfo;
import org.normcl.NormEngine;
import org.normcl.cli.Main;
import org.normcl.opencl.Tuning;
import org.normcl.reference.TestJson;
import org.normcl.testing.SystemProperties;

/**
 * {@code normcl bench} on tiny shapes: the JSON records' structure and arithmetic (bytes of each
 * operator, GB/s = bytes / median time, ratio = GB/s / copy GB/s), the plot, and usage errors.
 * It asserts numbers the command computes, never how fast anything ran.
 */
class BenchCommandTest {
    @TempDir
    Path dir;

    record Run(int code, String out, String err) {
    }

    static Run normcl(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code;
        try (PrintWriter o = new PrintWriter(out, true); PrintWriter e = new PrintWriter(err, true)) {
            code = Main.run(o, e, args);
        }
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    @SuppressWarnings("unchecked")
    void jsonRecordsCarryTheArithmetic() throws Exception {
        Path json = dir.resolve("bench.json");
        Path png = dir.resolve("bench.png");
        Run r = normcl("bench", "--ops", "layer-norm,rms-norm,batch-norm,group-norm,instance-norm", "--shapes",
                "4x6x10,3x8x2x5", "--backends", "java", "--threads", "2", "--groups", "4", "--dtype", "float32,float16",
                "--backward", "--warmup", "1", "--warmup-ms", "0", "--iterations", "3", "--json", json.toString(),
                "--plot", png.toString());
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.err().contains("bench: [1/20] layer-norm 4x6x10 java float32"), "progress on stderr: " + r.err());
        assertTrue(r.out().contains("layer-norm") && r.out().contains("copy GB/s"), "table on stdout: " + r.out());

        Map<String, Object> report = TestJson.parseObject(json);
        List<Object> records = TestJson.array(report.get("records"));
        // 5 ops x 2 shapes x 2 dtypes, forward and backward
        assertEquals(40, records.size());
        // The processor the ratios were measured on: never empty (os.arch where /proc/cpuinfo lacks it).
        assertTrue(report.get("cpu") instanceof String && !((String) report.get("cpu")).isBlank(), report.toString());
        int ok = 0;
        for (Object o : records) {
            Map<String, Object> rec = TestJson.object(o);
            assertFalse(rec.containsKey("kernel_parameters"), "the Java backend has no launch parameters: " + rec);
            for (String key : new String[] {"op", "pass", "dtype", "shape", "backend", "device", "median_ms", "gbps",
                "copy_gbps", "ratio", "status"}) {
                assertTrue(rec.containsKey(key), "record has " + key + ": " + rec);
            }
            assertEquals("java", rec.get("backend"));
            assertTrue(TestJson.string(rec.get("device")).startsWith("Java (2 threads"), rec.toString());
            List<Object> shape = TestJson.array(rec.get("shape"));
            long[] dims = shape.stream().mapToLong(TestJson::asLong).toArray();
            String op = TestJson.string(rec.get("op"));
            String pass = TestJson.string(rec.get("pass"));
            int dsize = rec.get("dtype").equals("float16") ? 2 : 4;
            assertEquals("ok", rec.get("status"), rec.toString());
            ok++;
            long bytes = TestJson.asLong(rec.get("bytes"));
            assertEquals(expectedBytes(op, pass, dims, dsize), bytes, op + " " + pass + " bytes for " + shape);
            double median = TestJson.asDouble(rec.get("median_ms"));
            double gbps = TestJson.asDouble(rec.get("gbps"));
            double copy = TestJson.asDouble(rec.get("copy_gbps"));
            double ratio = TestJson.asDouble(rec.get("ratio"));
            double copyMedian = TestJson.asDouble(rec.get("copy_median_ms"));
            assertTrue(median > 0 && copyMedian > 0, rec.toString());
            // Reported to 4 significant digits: the identities hold to about 1e-3.
            assertEquals(bytes / (median * 1e6), gbps, 2e-3 * gbps, "gbps = bytes / median");
            assertEquals(bytes / 8 * 8 / (copyMedian * 1e6), copy, 2e-3 * copy, "copy_gbps = bytes / copy median");
            assertEquals(gbps / copy, ratio, 2e-3 * ratio, "ratio = gbps / copy_gbps");
            assertNull(rec.get("transfer_ms"), "no host transfers on the Java backend");
            assertEquals("wall", rec.get("timing"), "the Java backend has no device clock");
            assertEquals(3L, TestJson.asLong(rec.get("iterations")));
            if (pass.equals("forward")) {
                assertTrue(TestJson.asDouble(rec.get("engine_median_ms")) > 0, "timed through NormEngine too");
                if (op.equals("group-norm")) {
                    assertEquals(groups(dims[1]), TestJson.asLong(rec.get("groups")), "groups used");
                }
            } else {
                assertEquals("engine", rec.get("timed"), "backward passes are timed through NormEngine");
            }
        }
        assertEquals(40, ok);

        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img, "--plot writes a PNG");
        assertTrue(img.getWidth() >= 800 && img.getHeight() >= 400);
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "no temporary files left beside the outputs");
        }
    }

    /**
     * The fewest bytes, by hand: every input read once, every output written once; X, Y, dY, dX of
     * the data type, parameters and statistics float32.
     */
    static long expectedBytes(String op, String pass, long[] d, int dsize) {
        long size = 1;
        for (long v : d) {
            size *= v;
        }
        long c = d[1];
        long cols = d[d.length - 1];
        long rows = size / cols;
        boolean fwd = pass.equals("forward");
        long data = (fwd ? 2 : 3) * size * dsize; // X, Y or dY, X, dX
        switch (op) {
            case "layer-norm": // scale, bias (fwd) or scale, dScale, dBias (bwd); Mean, InvStdDev
                return data + 4 * ((fwd ? 2 : 3) * cols + 2 * rows);
            case "rms-norm": // scale (+ dScale); InvStdDev
                return data + 4 * ((fwd ? 1 : 2) * cols + rows);
            case "batch-norm": // fwd: scale, bias, running mean/var in and out, saved mean, inv; bwd: scale, dScale,
                               // dBias, saved mean, inv
                return data + 4 * (fwd ? 8 * c : 5 * c);
            case "group-norm": // scale, bias (+ scale read by bwd); Mean, InvStdDev per (N, G)
                return data + 4 * ((fwd ? 2 : 3) * c + 2 * d[0] * groups(c));
            case "instance-norm":
                return data + 4 * ((fwd ? 2 : 3) * c + 2 * d[0] * c);
            default:
                throw new IllegalArgumentException(op);
        }
    }

    /** --groups 4: the largest divisor of C that is at most 4. */
    static long groups(long c) {
        long g = 4;
        while (c % g != 0) {
            g--;
        }
        return g;
    }

    @Test
    void jsonToStdout() {
        Run r = normcl("bench", "--ops", "rms-norm", "--shapes", "16x32", "--backends", "java", "--warmup", "0",
                "--warmup-ms", "0", "--iterations", "1", "--no-engine", "--json", "-");
        assertEquals(0, r.code(), r.toString());
        Map<String, Object> report = TestJson.object(TestJson.parse(r.out()));
        Map<String, Object> rec = TestJson.object(TestJson.array(report.get("records")).get(0));
        assertEquals("rms-norm", rec.get("op"));
        assertFalse(rec.containsKey("engine_median_ms"), "--no-engine skips the API timing");
    }

    @Test
    void badUsageExitsTwoWithTheOptionNamed() {
        String[][] cases = {
            {"--ops", "layer-norm,softmax"},
            {"--shapes", "8x0"},
            {"--shapes", "8xabc"},
            {"--ops", "batch-norm", "--shapes", "1024"},
            {"--backends", "cuda"},
            {"--backends", "java", "--device", "pocl"},
            {"--dtype", "int8"},
            {"--iterations", "0"},
            {"--threads", "0"},
            {"--threads", "40000"},
            {"--plot", "out.svg"},
        };
        for (String[] c : cases) {
            String[] args = new String[c.length + 1];
            args[0] = "bench";
            System.arraycopy(c, 0, args, 1, c.length);
            Run r = normcl(args);
            assertEquals(2, r.code(), String.join(" ", c) + " -> " + r);
            assertTrue(r.err().contains(c[c.length - 2].startsWith("--") ? c[c.length - 2] : c[0]),
                    "the message names the option: " + r.err());
        }
    }

    @Test
    void openClRecordsReportTransfers() {
        assumeTrue(!NormEngine.devices().isEmpty(), "no OpenCL device here");
        Run r = normcl("bench", "--ops", "layer-norm,batch-norm", "--shapes", "8x16x4", "--backends", "opencl",
                "--backward", "--warmup", "1", "--warmup-ms", "0", "--iterations", "2", "--json", "-");
        assertEquals(0, r.code(), r.toString());
        // The tests' cache directory holds no tuning file: the bench says what the tuner is for.
        assertTrue(r.err().contains("runs the default kernel parameters: 'normcl tune'"), r.err());
        Map<String, Object> report = TestJson.object(TestJson.parse(r.out()));
        for (Object o : TestJson.array(report.get("records"))) {
            Map<String, Object> rec = TestJson.object(o);
            assertEquals("ok", rec.get("status"), rec.toString());
            assertEquals("opencl", rec.get("backend"));
            double median = TestJson.asDouble(rec.get("median_ms"));
            double copyMedian = TestJson.asDouble(rec.get("copy_median_ms"));
            assertTrue(median > 0 && Double.isFinite(median) && copyMedian > 0, rec.toString());
            if (rec.get("pass").equals("backward")) {
                // Through NormEngine, whose backend the bench cannot time: wall time (it was 0 ms, 'Infinity').
                assertEquals("wall", rec.get("timing"), rec.toString());
                continue;
            }
            // The device's span of each call lies within its wall time, so the medians keep that order
            // (both rounded to 4 digits).
            assertEquals("opencl-events", rec.get("timing"), rec.toString());
            assertTrue(TestJson.asDouble(rec.get("wall_median_ms")) >= median * (1 - 1e-3), rec.toString());
            assertTrue(TestJson.asDouble(rec.get("copy_wall_median_ms")) >= copyMedian * (1 - 1e-3), rec.toString());
            assertTrue(TestJson.asDouble(rec.get("transfer_ms")) >= 0, rec.toString());
            // The tuning the numbers were measured with (normcl tune's file or the defaults).
            Map<String, Object> params = TestJson.object(rec.get("kernel_parameters"));
            assertTrue(List.of("one-work-item-per-row", "work-group").contains(params.get("kernels")), rec.toString());
            assertTrue(List.of(4.0, 8.0, 16.0).contains(TestJson.asDouble(params.get("vectorWidth"))), rec.toString());
        }
    }

    /** With a tuning file for the device, the records carry its parameters and the bench does not suggest tuning. */
    @Test
    void aTuningFileIsReportedNotSuggested(@TempDir Path tmp) throws Exception {
        assumeTrue(!NormEngine.devices().isEmpty(), "no OpenCL device here");
        DeviceInfo device = NormEngine.devices().get(0);
        Path file = tmp.resolve("tuned.properties");
        int other = Tuning.defaults().resolvedFor(device).vectorWidth() == 8 ? 4 : 8;
        Tuning.defaults().withVectorWidth(other).write(file, device, "BenchCommandTest");
        try (SystemProperties p = SystemProperties.set(Tuning.PROPERTY, file.toString())) {
            Run r = normcl("bench", "--ops", "rms-norm", "--shapes", "8x64", "--backends", "opencl", "--device", "0",
                    "--warmup", "1", "--warmup-ms", "0", "--iterations", "1", "--no-engine", "--json", "-");
            assertEquals(0, r.code(), r.toString());
            assertFalse(r.err().contains("runs the default kernel parameters"), r.err());
            Map<String, Object> rec = TestJson.object(TestJson.array(TestJson.object(TestJson.parse(r.out()))
                    .get("records")).get(0));
            assertEquals(other, TestJson.asLong(TestJson.object(rec.get("kernel_parameters")).get("vectorWidth")),
                    rec.toString());
        }
    }
}
