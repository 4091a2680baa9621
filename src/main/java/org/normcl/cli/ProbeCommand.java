package org.normcl.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

import org.normcl.DeviceInfo;
import org.normcl.EngineOptions;
import org.normcl.NormEngine;
import org.normcl.opencl.Tuning;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code normcl probe}: every OpenCL platform and device with its capabilities, then a self-test
 * of each operator on each device against the Java backend. Without OpenCL it says why and that
 * the Java backend will be used, and exits 0.
 */
@Command(name = "probe", mixinStandardHelpOptions = true,
        description = {"List OpenCL platforms and devices and self-test every operator on each against the Java"
                + " backend.",
            "Exit 0 also when a self-test fails: FAIL lines (\"all_self_tests_passed\": false with --json) say so."})
final class ProbeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Option(names = "--no-self-test", description = "Only list devices.")
    boolean noSelfTest;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        Optional<String> unavailable = NormEngine.openClUnavailableReason();
        List<DeviceInfo> devices = NormEngine.devices();
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("normcl_version", Main.version());
        report.put("opencl_available", unavailable.isEmpty());
        report.put("opencl_unavailable_reason", unavailable.orElse(null));
        List<Map<String, Object>> devs = new ArrayList<>();
        boolean allPassed = true;
        try (NormEngine java = NormEngine.create(EngineOptions.java())) {
            for (DeviceInfo d : devices) {
                Map<String, Object> m = describe(d);
                if (!noSelfTest) {
                    List<Map<String, Object>> results = new ArrayList<>();
                    boolean passed = true;
                    try (NormEngine e = NormEngine.create(EngineOptions.opencl(Integer.toString(d.index())))) {
                        for (SelfTest.Outcome o : SelfTest.run(e, java, SelfTest.probeCases(), 1)) {
                            results.add(o.toJson());
                            passed &= o.passed();
                        }
                    } catch (RuntimeException ex) {
                        Map<String, Object> err = new LinkedHashMap<>();
                        err.put("op", "engine");
                        err.put("pass", false);
                        err.put("error", ExitCodes.message(ex));
                        results.add(err);
                        passed = false;
                    }
                    m.put("self_test_passed", passed);
                    m.put("self_test", results);
                    allPassed &= passed;
                }
                devs.add(m);
            }
        }
        report.put("devices", devs);
        report.put("fallback", devices.isEmpty() ? "the Java backend will be used" : null);
        if (!noSelfTest) {
            report.put("all_self_tests_passed", allPassed);
        }
        if (json) {
            out.print(Json.write(report));
        } else {
            printText(out, unavailable, devices, devs);
        }
        out.flush();
        return ExitCodes.OK;
    }

    private static Map<String, Object> describe(DeviceInfo d) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("index", d.index());
        m.put("platform", d.platformName());
        m.put("platform_vendor", d.platformVendor());
        m.put("platform_version", d.platformVersion());
        m.put("name", d.name());
        m.put("vendor", d.vendor());
        m.put("type", d.type());
        m.put("device_version", d.deviceVersion());
        m.put("driver_version", d.driverVersion());
        m.put("opencl_c_version", d.openclCVersion());
        m.put("compute_units", d.computeUnits());
        m.put("max_clock_mhz", d.maxClockMHz());
        m.put("global_mem_bytes", d.globalMemBytes());
        m.put("local_mem_bytes", d.localMemBytes());
        m.put("max_alloc_bytes", d.maxAllocBytes());
        m.put("max_work_group_size", d.maxWorkGroupSize());
        m.put("fp16", d.fp16());
        m.put("fp64", d.fp64());
        Map<String, Object> widths = new LinkedHashMap<>();
        widths.put("float", d.preferredVectorWidthFloat());
        widths.put("half", d.preferredVectorWidthHalf());
        widths.put("double", d.preferredVectorWidthDouble());
        m.put("preferred_vector_width", widths);
        m.put("extensions", d.extensions());
        // The launch parameters an engine on this device will use: normcl tune's file changes them
        // (8-wide vectors on PoCL on a Zen 5 host: 0.7 of the copy in 10 of 12 records, not 7).
        Optional<Tuning> stored = Tuning.stored(d);
        m.put("kernel_tuning", TuneCommand.numbers(stored.orElse(Tuning.defaults()).resolvedFor(d).parameters()));
        m.put("kernel_tuning_source", stored.isPresent() ? "normcl tune" : "defaults");
        return m;
    }

    private static void printText(PrintWriter out, Optional<String> unavailable, List<DeviceInfo> devices,
            List<Map<String, Object>> devs) {
        if (unavailable.isPresent()) {
            out.println("OpenCL: not available: " + unavailable.get());
            out.println("The Java backend will be used.");
            return;
        }
        String platform = null;
        for (int i = 0; i < devices.size(); i++) {
            DeviceInfo d = devices.get(i);
            if (!d.platformName().equals(platform)) {
                platform = d.platformName();
                out.printf("Platform: %s (%s) %s%n", d.platformName(), d.platformVendor(), d.platformVersion());
            }
            out.printf("  Device #%d: %s [%s] vendor %s%n", d.index(), d.name(), d.type(), d.vendor());
            out.printf("    version %s, driver %s, %s%n", d.deviceVersion(), d.driverVersion(), d.openclCVersion());
            out.printf("    %d compute units @ %d MHz; global %s, local %s, max alloc %s; max work-group %d%n",
                    d.computeUnits(), d.maxClockMHz(), bytes(d.globalMemBytes()), bytes(d.localMemBytes()),
                    bytes(d.maxAllocBytes()), d.maxWorkGroupSize());
            out.printf("    fp16 %s, fp64 %s; preferred vector width float %d, half %d, double %d%n",
                    d.fp16() ? "yes" : "no", d.fp64() ? "yes" : "no", d.preferredVectorWidthFloat(),
                    d.preferredVectorWidthHalf(), d.preferredVectorWidthDouble());
            out.printf("    extensions: %s%n", String.join(" ", d.extensions()));
            Map<String, Object> dev = devs.get(i);
            StringBuilder tuning = new StringBuilder();
            ((Map<?, ?>) dev.get("kernel_tuning")).forEach((k, v) -> tuning.append(k).append('=').append(v).append(' '));
            out.printf("    kernel tuning: %s(%s)%n", tuning, "defaults".equals(dev.get("kernel_tuning_source"))
                    ? "defaults; 'normcl tune' measures this device" : "from normcl tune's file");
            Object tests = devs.get(i).get("self_test");
            if (tests instanceof List<?> l) {
                out.printf("    self-test against the Java backend (tolerance %.0e):%n", SelfTest.TOLERANCE);
                for (Object o : l) {
                    Map<?, ?> r = (Map<?, ?>) o;
                    out.printf("      %-14s %-18s %s  max error %-10s %s%n", r.get("op"),
                            r.get("shape") == null ? "" : r.get("shape"),
                            Boolean.TRUE.equals(r.get("pass")) ? "PASS" : "FAIL",
                            r.get("max_error") == null ? "-" : String.format("%.2e", (Double) r.get("max_error")),
                            r.get("error") != null ? r.get("error")
                                    : r.get("time_ms") == null ? "" : r.get("time_ms") + " ms");
                }
            }
        }
    }

    static String bytes(long b) {
        if (b >= 1L << 30) {
            return String.format("%.1f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format("%.1f MiB", b / (double) (1L << 20));
        }
        return String.format("%d KiB", b >> 10);
    }
}
