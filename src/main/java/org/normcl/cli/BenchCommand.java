package org.normcl.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

import org.normcl.DType;
import org.normcl.EngineOptions;
import org.normcl.NormEngine;
import org.normcl.opencl.ClRuntime;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code normcl bench}: GB/s of each operator on each backend, against a copy of the same bytes on
 * the same device in the same run. See {@link BenchRunner} for what is timed and
 * {@code docs/performance.md} for how to read the numbers.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measure operator throughput (GB/s: the fewest bytes each operator must move, over its median"
                + " time) against a copy of the same bytes on the same device, in the same run.",
            "Progress goes to stderr; the table to stdout; --json and --plot write files."})
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--ops", split = ",", paramLabel = "OP",
            description = "Operators: layer-norm, rms-norm, batch-norm, group-norm, instance-norm."
                    + " Default: layer-norm,rms-norm.")
    List<String> ops;

    @Option(names = "--shapes", split = ",", paramLabel = "DxDx...",
            description = "Shapes such as 8192x1024 (trailing axis normalized by layer/RMS norm; N, C, ... for the"
                    + " others). Default: 8192x1024,65536x128,1024x8192,512x65536 for layer/RMS norm,"
                    + " 32x64x56x56,8x128x64x64,4x32x256x256 for group/instance norm, and"
                    + " 32x64x56x56,8x128x64x64,8192x1024 for batch norm.")
    List<String> shapes;

    @Option(names = "--backends", split = ",", paramLabel = "java|opencl",
            description = "Backends to measure. Default: java, and opencl when a device exists.")
    List<String> backends;

    @Option(names = "--device", paramLabel = "INDEX|NAME",
            description = "OpenCL device: an index from 'normcl probe' or part of a device or platform name.")
    String device;

    @Option(names = "--dtype", split = ",", paramLabel = "TYPE", defaultValue = "float32",
            description = "Element types: float32, float16, bfloat16, float64 (a type a backend or device lacks is"
                    + " reported as unsupported). Default: ${DEFAULT-VALUE}.")
    List<String> dtypes;

    @Option(names = "--backward", description = "Also time the backward passes (dX, dScale, dBias from saved statistics), through"
            + " NormEngine on device tensors; not with --no-engine.")
    boolean backward;

    @Option(names = "--json", paramLabel = "FILE", description = "Write the records as JSON ('-' for stdout).")
    String json;

    @Option(names = "--plot", paramLabel = "FILE.png", description = "Draw GB/s against shape per backend.")
    Path plot;

    /** The most calls --warmup and --iterations take: a median of more is no better, and runs for days. */
    static final int MAX_CALLS = 1_000_000;
    /** The longest --warmup-ms. */
    static final long MAX_WARMUP_MS = 3_600_000;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "3",
            description = "Untimed calls first; 0: no warm-up at all (--warmup-ms then does not apply)."
                    + " Default: ${DEFAULT-VALUE}.")
    int warmup;

    // 500 ms left the first shape's Java median at 2.4-6.6 ms instead of 1.7 (layer norm 8192x1024):
    // C2 had not finished compiling the Vector API kernels; 2000 ms gave 1.69-1.78 in every run.
    @Option(names = "--warmup-ms", paramLabel = "MS", defaultValue = "2000",
            description = "Keep warming up for at least this long (the JIT compiles the Java kernels meanwhile)."
                    + " Default: ${DEFAULT-VALUE}.")
    long warmupMs;

    @Option(names = "--iterations", paramLabel = "N", defaultValue = "21",
            description = "Timed calls; the median is reported. Default: ${DEFAULT-VALUE}.")
    int iterations;

    @Option(names = "--threads", paramLabel = "N",
            description = "Java backend threads (and copy threads). Default: all processors.")
    Integer threads;

    @Option(names = "--groups", paramLabel = "G", defaultValue = "32",
            description = "Group norm groups (the largest divisor of C up to G). Default: ${DEFAULT-VALUE}.")
    int groups;

    @Option(names = "--no-engine", description = "Skip the timing through the public NormEngine API.")
    boolean noEngine;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        BenchRunner.Config config = config(err);
        List<Map<String, Object>> records = new BenchRunner(config, err).run();
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("normcl_version", Main.version());
        report.put("java_version", System.getProperty("java.version"));
        report.put("available_processors", Runtime.getRuntime().availableProcessors());
        report.put("cpu", cpu());
        report.put("warmup", config.warmup());
        report.put("warmup_ms", config.warmupMs());
        report.put("iterations", config.iterations());
        report.put("records", records);
        boolean failed = records.stream().anyMatch(r -> "error".equals(r.get("status")));
        if (plot != null && records.stream().noneMatch(r -> "ok".equals(r.get("status")))) {
            if (json == null || !json.equals("-")) {
                printTable(out, records);
            }
            out.flush();
            throw new IllegalStateException("--plot " + plot + ": nothing to plot: no measurement succeeded (each"
                    + " record's note says why); no file written");
        }
        OperatorOptions.writeAll(Arrays.asList(
                json == null || json.equals("-") ? null : OperatorOptions.OutputFile.of("--json", Path.of(json),
                        o -> o.write(Json.write(report).getBytes(StandardCharsets.UTF_8))),
                plot == null ? null : OperatorOptions.OutputFile.of("--plot", plot, o -> BenchPlot.write(records, o))));
        if (json != null && json.equals("-")) {
            out.print(Json.write(report));
        }
        if (json == null || !json.equals("-")) {
            printTable(out, records);
        }
        out.flush();
        return failed ? ExitCodes.FAILURE : ExitCodes.OK;
    }

    private BenchRunner.Config config(PrintWriter err) {
        List<String> opList = ops == null ? List.of("layer-norm", "rms-norm") : nonEmpty("--ops", normalized(ops),
                "an operator such as layer-norm");
        for (String op : opList) {
            if (!BenchRunner.OPS.contains(op)) {
                throw new UserInputException("--ops: unknown operator '" + op + "': expected one of "
                        + String.join(", ", BenchRunner.OPS));
            }
        }
        List<long[]> shapeList = null;
        if (shapes != null) {
            shapeList = new ArrayList<>();
            for (String s : shapes) {
                shapeList.add(parseShape(s));
            }
            nonEmpty("--shapes", shapeList, "a shape such as 8192x1024");
            for (String op : opList) {
                if (!op.equals("layer-norm") && !op.equals("rms-norm")) {
                    for (long[] sh : shapeList) {
                        if (sh.length < 2) {
                            throw new UserInputException("--shapes: " + op + " needs shapes of rank >= 2 (N, C, ...):"
                                    + " got " + BenchRunner.shapeLabel(sh));
                        }
                    }
                }
            }
        }
        List<String> backendList;
        if (backends == null) {
            backendList = new ArrayList<>(List.of("java"));
            if (NormEngine.openClUnavailableReason().isEmpty() && !NormEngine.devices().isEmpty()) {
                backendList.add("opencl");
            } else {
                err.println("bench: OpenCL: not available ("
                        + NormEngine.openClUnavailableReason().orElse("no device") + "); measuring java only");
            }
        } else {
            backendList = nonEmpty("--backends", normalized(backends), "java, opencl or both");
            for (String b : backendList) {
                if (!b.equals("java") && !b.equals("opencl")) {
                    throw new UserInputException("--backends: unknown backend '" + b + "': expected java or opencl");
                }
            }
        }
        if (device != null && !backendList.contains("opencl")) {
            throw new UserInputException(backends == null
                    ? "--device " + device + ": OpenCL is not available ("
                            + NormEngine.openClUnavailableReason().orElse("no device") + "): drop --device"
                    : "--device applies to OpenCL: add opencl to --backends or drop --device");
        }
        if (backendList.contains("opencl")) {
            // Before the Java records (minutes) are taken, not after them. (The default list has
            // opencl only where it is available.)
            if (NormEngine.openClUnavailableReason().isPresent()) {
                throw new UserInputException("--backends opencl: OpenCL is not available ("
                        + NormEngine.openClUnavailableReason().get() + "): expected java, or a machine with OpenCL"
                        + " (normcl probe)");
            }
            try {
                ClRuntime.device(device);
            } catch (IllegalArgumentException e) {
                throw new UserInputException("--device: " + e.getMessage());
            } catch (NoSuchElementException e) {
                throw new UserInputException("--backends opencl: OpenCL has no device ('normcl probe' lists what"
                        + " it finds): expected java");
            }
        }
        if (backward && noEngine) {
            throw new UserInputException("--backward times the passes through NormEngine: drop --no-engine");
        }
        List<DType> dtypeList = new ArrayList<>();
        for (String d : nonEmpty("--dtype", normalized(dtypes), "a type such as float32")) {
            try {
                dtypeList.add(DType.valueOf(d.toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException e) {
                throw new UserInputException("--dtype: unknown type '" + d + "': expected float32, float16, bfloat16"
                        + " or float64");
            }
        }
        if (warmup < 0 || warmup > MAX_CALLS) {
            throw new UserInputException("--warmup = " + warmup + ": expected 0 to " + MAX_CALLS);
        }
        if (warmupMs < 0 || warmupMs > MAX_WARMUP_MS) {
            throw new UserInputException("--warmup-ms = " + warmupMs + ": expected 0 to " + MAX_WARMUP_MS
                    + " (an hour)");
        }
        if (iterations < 1 || iterations > MAX_CALLS) {
            throw new UserInputException("--iterations = " + iterations + ": expected 1 to " + MAX_CALLS);
        }
        if (threads != null && (threads < 1 || threads > EngineOptions.MAX_THREADS)) {
            throw new UserInputException("--threads = " + threads + ": expected 1 to " + EngineOptions.MAX_THREADS);
        }
        if (groups < 1) {
            throw new UserInputException("--groups = " + groups + ": expected 1 or more");
        }
        if (plot != null && (plot.getFileName() == null
                || !plot.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".png"))) {
            throw new UserInputException("--plot " + plot + ": expected a .png file name");
        }
        // Before measuring (which may take minutes), as apply checks its outputs before computing.
        OperatorOptions.checkOutputPaths(new String[] {"--json", "--plot"},
                new Path[] {json == null || json.equals("-") ? null : Path.of(json), plot});
        int t = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        return new BenchRunner.Config(opList, shapeList, backendList, device, dtypeList, backward, warmup, warmupMs,
                iterations, t, groups, !noEngine);
    }

    /** @return {@code values}, or a usage error naming the option when a list such as "," left none */
    static <T> List<T> nonEmpty(String option, List<T> values, String expected) {
        if (values.isEmpty()) {
            throw new UserInputException(option + ": the list is empty: expected " + expected);
        }
        return values;
    }

    private static List<String> normalized(List<String> values) {
        List<String> out = new ArrayList<>();
        for (String v : values) {
            String s = v.trim().toLowerCase(Locale.ROOT);
            if (!s.isEmpty() && !out.contains(s)) {
                out.add(s);
            }
        }
        return out;
    }

    static long[] parseShape(String s) {
        String[] parts = s.trim().toLowerCase(Locale.ROOT).split("x", -1); // -1: "8192x" has an empty last part
        long[] dims = new long[parts.length];
        long size = 1;
        for (int i = 0; i < parts.length; i++) {
            try {
                dims[i] = Long.parseLong(parts[i].trim());
            } catch (NumberFormatException e) {
                dims[i] = -1;
            }
            if (dims[i] < 1) {
                throw new UserInputException("--shapes: '" + s + "': expected dimensions >= 1 joined by 'x', such as"
                        + " 8192x1024");
            }
            if (size >= 0) {
                try {
                    size = Math.multiplyExact(size, dims[i]);
                } catch (ArithmeticException e) {
                    size = -1; // more than a long holds; the other dimensions are still checked
                }
            }
        }
        if (size < 0 || size > Integer.MAX_VALUE - 8) {
            throw new UserInputException("--shapes: '" + s + "' has " + (size < 0 ? "more than 2^63 - 1"
                    : Long.toString(size)) + " elements: expected at most " + (Integer.MAX_VALUE - 8)
                    + " (the Java backend's limit per tensor)");
        }
        return dims;
    }

    private static void printTable(PrintWriter out, List<Map<String, Object>> records) {
        out.printf("%-14s %-8s %-8s %-14s %-7s %9s %8s %9s %6s %10s %10s%n", "op", "pass", "dtype", "shape", "backend",
                "ms", "GB/s", "copy GB/s", "ratio", "xfer ms", "engine ms");
        for (Map<String, Object> r : records) {
            @SuppressWarnings("unchecked")
            List<Long> shape = (List<Long>) r.get("shape");
            String sh = BenchRunner.shapeLabel(shape.stream().mapToLong(Long::longValue).toArray());
            if (!"ok".equals(r.get("status"))) {
                out.printf("%-14s %-8s %-8s %-14s %-7s %s: %s%n", r.get("op"), r.get("pass"), r.get("dtype"), sh,
                        r.get("backend"), r.get("status"), r.get("note"));
                continue;
            }
            out.printf(Locale.ROOT, "%-14s %-8s %-8s %-14s %-7s %9.3f %8.1f %9.1f %6.2f %10s %10s%n", r.get("op"),
                    r.get("pass"), r.get("dtype"), sh, r.get("backend"), r.get("median_ms"), r.get("gbps"), r.get("copy_gbps"),
                    r.get("ratio"), r.get("transfer_ms") == null ? "-" : String.format(Locale.ROOT, "%.3f",
                            r.get("transfer_ms")),
                    r.get("engine_median_ms") == null ? "-"
                            : String.format(Locale.ROOT, "%.3f", r.get("engine_median_ms")));
        }
        if (!records.isEmpty()) {
            records.stream().map(r -> r.get("backend") + ": " + r.get("device")).distinct()
                    .forEach(d -> out.println("device " + d));
        }
        out.println("GB/s: the fewest bytes the operator must move over the median time; copy: the same bytes copied"
                + " on the same device in the same loop; ratio = GB/s / copy GB/s; engine ms: through NormEngine"
                + " (outputs allocated per call).");
    }

    /**
     * The processor, for the report: the copy ratios depend on it (the same build measured 0.85-0.96
     * of the copy for 8192x1024 layer norm on an Intel host and 0.61-0.77 on an AMD Zen 5 one).
     *
     * @return {@link #cpu(Iterator)} of /proc/cpuinfo, or {@code os.arch} where that names nothing
     */
    static String cpu() {
        // Read lazily: the first processor's block is enough, and a large host lists hundreds.
        try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"), StandardCharsets.UTF_8)) {
            String cpu = cpu(lines.iterator());
            if (cpu != null) {
                return cpu;
            }
        } catch (IOException | UncheckedIOException e) {
            // fall through: the architecture is better than nothing
        }
        return System.getProperty("os.arch");
    }

    /**
     * @param cpuinfo the lines of /proc/cpuinfo
     * @return the first processor's non-empty {@code model name} with its {@code cpu family} and
     *     {@code model} numbers (a virtual machine may show only "AMD EPYC"), or null where it has
     *     none (ARM and others name the processor differently)
     */
    static String cpu(Iterator<String> cpuinfo) {
        String name = null;
        String family = null;
        String model = null;
        while (cpuinfo.hasNext()) {
            String line = cpuinfo.next();
            int colon = line.indexOf(':');
            if (colon < 0) {
                if (line.isBlank() && (name != null || family != null || model != null)) {
                    break; // the end of the first processor's block
                }
                continue;
            }
            String key = line.substring(0, colon).trim();
            String value = line.substring(colon + 1).trim();
            if (key.equals("model name") && name == null && !value.isEmpty()) {
                name = value;
            } else if (key.equals("cpu family") && family == null) {
                family = value;
            } else if (key.equals("model") && model == null) {
                model = value;
            }
        }
        if (name == null) {
            return null;
        }
        return family != null && model != null ? name + " (family " + family + ", model " + model + ")" : name;
    }
}
