package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.DeviceInfo;
import org.normcl.NormEngine;
import org.normcl.opencl.Tuning;
import org.normcl.reference.TestJson;
import org.normcl.reference.TestNpy;
import org.normcl.testing.SystemProperties;

/**
 * {@code normcl probe}: lists every platform and device with its capabilities and a self-test,
 * and exits 0 with or without OpenCL. The no-OpenCL path is exercised in a child JVM whose
 * OpenCL ICD loader is pointed at an empty vendor directory ({@code OCL_ICD_VENDORS}).
 */
class ProbeCliTest {
    private static final String[] OPS = {"layer-norm", "rms-norm", "batch-norm", "group-norm", "instance-norm"};

    @TempDir
    Path dir;

    /**
     * The tuning source is whether the device's file was read: one that kept every default counts
     * as tuned; a malformed one only logs, and probe still exits 0 with valid JSON.
     */
    @Test
    void kernelTuningSourceIsTheFileNotItsValues() throws Exception {
        DeviceInfo device = CliTestSupport.requireOpenCl().get(0);
        try (SystemProperties p = SystemProperties.set("normcl.cacheDir", dir.toString()).and(Tuning.PROPERTY, null)) {
            Path file = Tuning.file(dir.resolve("tuning"), device);
            Tuning.defaults().write(file, device, "ProbeCliTest");
            assertEquals("normcl tune", probedSource(device), "a file that kept the defaults");
            Files.writeString(file, "format=normcl-tuning-v1\nvectorWidth=5\n");
            assertEquals("defaults", probedSource(device), "a malformed file");
        }
    }

    private static Object probedSource(DeviceInfo device) {
        CliTestSupport.Result r = CliTestSupport.run("probe", "--json", "--no-self-test").assertOk();
        Map<String, Object> d = TestJson.object(TestJson.array(TestJson.object(TestJson.parse(r.out()))
                .get("devices")).get(device.index()));
        return d.get("kernel_tuning_source");
    }

    @Test
    void jsonReportListsEveryDeviceWithCapabilitiesAndPassingSelfTests() {
        CliTestSupport.Result r = CliTestSupport.run("probe", "--json").assertOk().assertNoStackTrace();
        Map<String, Object> report = TestJson.object(TestJson.parse(r.out()));
        List<Object> devices = TestJson.array(report.get("devices"));
        List<DeviceInfo> expected = NormEngine.devices();
        assertEquals(expected.size(), devices.size(), "one entry per device of NormEngine.devices()");
        assertEquals(!expected.isEmpty(), TestJson.bool(report.get("opencl_available")));
        if (expected.isEmpty()) {
            assertNotNull(report.get("opencl_unavailable_reason"));
            assertNotNull(report.get("fallback"));
            CliTestSupport.requireOpenCl(); // fails under CI, else skips the device checks loudly
        }
        assertNull(report.get("opencl_unavailable_reason"));
        assertTrue(TestJson.bool(report.get("all_self_tests_passed")), r::toString);

        Map<String, Object> pocl = null;
        for (int i = 0; i < devices.size(); i++) {
            Map<String, Object> d = TestJson.object(devices.get(i));
            String label = "device " + i + " (" + d.get("name") + ")";
            assertEquals(i, TestJson.asInt(d.get("index")), label);
            assertEquals(expected.get(i).name(), d.get("name"), label);
            for (String key : List.of("platform", "platform_vendor", "platform_version", "vendor", "type",
                    "device_version", "driver_version", "opencl_c_version")) {
                assertFalse(TestJson.string(d.get(key)).isBlank(), label + ": " + key);
            }
            assertTrue(TestJson.asLong(d.get("compute_units")) > 0, label + ": compute_units");
            assertTrue(TestJson.asLong(d.get("max_alloc_bytes")) > 0, label + ": max_alloc_bytes");
            assertTrue(TestJson.asLong(d.get("global_mem_bytes")) >= TestJson.asLong(d.get("max_alloc_bytes")),
                    label + ": global_mem_bytes >= max_alloc_bytes");
            assertTrue(TestJson.asLong(d.get("max_work_group_size")) > 0, label + ": max_work_group_size");
            TestJson.bool(d.get("fp16"));
            TestJson.bool(d.get("fp64"));
            TestJson.object(d.get("preferred_vector_width"));
            // The launch parameters an engine here would use, and whether normcl tune chose them.
            Map<String, Object> tuning = TestJson.object(d.get("kernel_tuning"));
            assertTrue(List.of(4L, 8L, 16L).contains(TestJson.asLong(tuning.get("vectorWidth"))), label + ": " + tuning);
            assertTrue(List.of("defaults", "normcl tune").contains(d.get("kernel_tuning_source")), label);
            List<Object> extensions = TestJson.array(d.get("extensions"));
            assertEquals(TestJson.bool(d.get("fp64")), extensions.contains("cl_khr_fp64"),
                    label + ": fp64 agrees with cl_khr_fp64");

            assertTrue(TestJson.bool(d.get("self_test_passed")), label + ": self_test_passed\n" + r.out());
            List<Object> tests = TestJson.array(d.get("self_test"));
            List<String> ops = new ArrayList<>();
            for (Object o : tests) {
                Map<String, Object> t = TestJson.object(o);
                String op = TestJson.string(t.get("op"));
                ops.add(op);
                assertTrue(TestJson.bool(t.get("pass")), label + ": self-test " + op + " failed: " + t);
                double err = TestJson.asDouble(t.get("max_error"));
                assertTrue(err >= 0 && err < 1e-4, label + ": self-test " + op + " max_error " + err);
            }
            for (String op : OPS) {
                assertTrue(ops.contains(op), label + ": no self-test of " + op + " in " + ops);
            }
            if (TestJson.string(d.get("platform")).toLowerCase(Locale.ROOT).contains("portable computing language")) {
                pocl = d;
            }
        }
        if (pocl == null) {
            if (CliTestSupport.inCi()) {
                fail("CI=true but probe lists no PoCL device (scripts/test installs pocl-opencl-icd):\n" + r.out());
            }
            Assumptions.abort("no PoCL device on this machine: the PoCL-specific checks are skipped");
        }
        assertEquals("CPU", pocl.get("type"), "PoCL's pthread device is a CPU");
        assertTrue(TestJson.bool(pocl.get("fp64")), "PoCL CPU devices support fp64");
    }

    @Test
    void textReportPrintsPassForEverySelfTest() {
        CliTestSupport.Result r = CliTestSupport.run("probe").assertOk().assertNoStackTrace();
        if (NormEngine.devices().isEmpty()) {
            assertTrue(r.out().contains("OpenCL: not available"), r::toString);
            CliTestSupport.requireOpenCl();
        }
        for (DeviceInfo d : NormEngine.devices()) {
            assertTrue(r.out().contains(d.name()), r::toString);
        }
        assertEquals(NormEngine.devices().size(), r.out().lines().filter(l -> l.contains("kernel tuning: vectorWidth="))
                .count(), () -> "one kernel tuning line per device: " + r);
        assertTrue(r.out().contains("PASS"), r::toString);
        assertFalse(r.out().contains("FAIL"), r::toString);
        for (String op : OPS) {
            assertTrue(r.out().lines().anyMatch(l -> l.contains(op) && l.contains("PASS")), () -> op + "\n" + r);
        }
    }

    @Test
    void noSelfTestListsDevicesOnly() {
        CliTestSupport.Result r = CliTestSupport.run("probe", "--json", "--no-self-test").assertOk();
        Map<String, Object> report = TestJson.object(TestJson.parse(r.out()));
        assertEquals(NormEngine.devices().size(), TestJson.array(report.get("devices")).size());
        for (Object o : TestJson.array(report.get("devices"))) {
            assertNull(TestJson.object(o).get("self_test"), "--no-self-test still ran the self-test");
        }
    }

    @Test
    void unknownOptionIsAUsageError() {
        CliTestSupport.Result r = CliTestSupport.run("probe", "--bogus");
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains("--bogus"), r::toString);
        r.assertNoStackTrace();
    }

    /**
     * Without OpenCL (a child JVM whose ICD loader finds no driver): probe explains why and exits 0;
     * apply falls back to Java under AUTO, and an explicit {@code --backend opencl} is a runtime
     * failure (exit 1) that leaves no output.
     */
    @Test
    void withoutOpenClProbeSaysWhyAndApplyFallsBack() {
        Map<String, String> env = Map.of("OCL_ICD_VENDORS", dir.resolve("no-vendors").toString(),
                "OCL_ICD_FILENAMES", "");
        CliTestSupport.Result json = CliTestSupport.runInChildJvm(env, "probe", "--json");
        json.assertOk().assertNoStackTrace();
        Map<String, Object> report = TestJson.object(TestJson.parse(json.out()));
        Assumptions.assumeFalse(TestJson.bool(report.get("opencl_available")),
                "this ICD loader ignores OCL_ICD_VENDORS: cannot hide OpenCL from a child JVM here");
        assertTrue(TestJson.array(report.get("devices")).isEmpty());
        String reason = TestJson.string(report.get("opencl_unavailable_reason"));
        assertFalse(reason.isBlank());
        assertTrue(reason.contains("apt-get install"), "the reason names what to install: " + reason);
        assertTrue(TestJson.string(report.get("fallback")).contains("Java"));

        CliTestSupport.Result text = CliTestSupport.runInChildJvm(env, "probe");
        text.assertOk().assertNoStackTrace();
        assertTrue(text.out().contains("OpenCL: not available"), text::toString);
        assertTrue(text.out().contains("Java backend will be used"), text::toString);

        float[] x = CliTestSupport.gaussian(7, 12, 0, 1);
        TestNpy.writeFloat32(dir.resolve("x.npy"), new long[] {3, 4}, x);
        String in = dir.resolve("x.npy").toString();
        String out = dir.resolve("y.npy").toString();
        CliTestSupport.Result explicit = CliTestSupport.runInChildJvm(env, "apply", "layer-norm", "--input", in,
                "--output", out, "--backend", "opencl");
        assertEquals(1, explicit.code(), explicit::toString);
        explicit.assertNoStackTrace();
        assertTrue(explicit.err().contains("OpenCL is not available"), explicit::toString);
        assertFalse(Files.exists(dir.resolve("y.npy")), "a failed run left its output");

        CliTestSupport.runInChildJvm(env, "apply", "layer-norm", "--input", in, "--output", out).assertOk();
        assertEquals(12, TestNpy.readFloat32(dir.resolve("y.npy")).data().length);
    }
}
