package org.normcl.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.NormEngine;
import org.normcl.opencl.ClRuntime;
import org.normcl.opencl.Tuner;
import org.normcl.opencl.Tuning;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code normcl tune}: measures the OpenCL kernels' launch parameters ({@link Tuning}) on one
 * device and stores the fastest in the device's tuning file, which every engine on that device,
 * driver and kernel source then reads. See {@link Tuner} for the search and {@code docs/tuning.md}
 * for what each parameter does.
 */
@Command(name = "tune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Time a few candidates of each OpenCL launch parameter (vector width, work-group caps,"
                + " row pipelining) on representative shapes and store the fastest for this device and driver;"
                + " engines on it use them from then on (-Dnormcl.tuning=off ignores them).",
            "A candidate replaces the default only when it is faster by --margin, twice. Progress goes to stderr;"
                + " the table to stdout."})
final class TuneCommand implements Callable<Integer> {
    /** Operators timed when --ops is not given. */
    static final List<String> DEFAULT_OPS = List.of("layer-norm", "rms-norm", "batch-norm");
    /** Layer/RMS norm rows of 4, 16, 32 and 256 KiB: both sides of the pipelining threshold. */
    static final List<long[]> ROW_SHAPES = List.of(new long[] {8192, 1024}, new long[] {2048, 4096},
            new long[] {1024, 8192}, new long[] {128, 65536});
    /** Batch norm: NCHW (the channel kernels) and a 1-D batch norm's (N, C) (the column kernels). */
    static final List<long[]> CHANNEL_SHAPES = List.of(new long[] {32, 64, 56, 56}, new long[] {8192, 1024});
    /** Untimed calls of each candidate on each workload before the timed ones (drivers set up lazily). */
    private static final int WARMUP = 3;

    @Spec
    CommandSpec spec;

    @Option(names = "--device", paramLabel = "INDEX|NAME",
            description = "OpenCL device: an index from 'normcl probe' or part of a device or platform name."
                    + " Default: the device engines pick.")
    String device;

    @Option(names = "--ops", split = ",", paramLabel = "OP",
            description = "Operators to time: layer-norm, rms-norm, batch-norm, group-norm, instance-norm."
                    + " Default: layer-norm,rms-norm,batch-norm.")
    List<String> ops;

    @Option(names = "--shapes", split = ",", paramLabel = "DxDx...",
            description = "Shapes for every operator. Default: 8192x1024,2048x4096,1024x8192,128x65536 for"
                    + " layer/RMS norm; 32x64x56x56,8192x1024 for the others.")
    List<String> shapes;

    @Option(names = "--budget-s", paramLabel = "N", defaultValue = "300",
            description = "Start no parameter after this many seconds; those not reached keep their defaults."
                    + " Default: ${DEFAULT-VALUE}.")
    double budgetS;

    @Option(names = "--margin", paramLabel = "PERCENT", defaultValue = "3",
            description = "How much faster a candidate must be than the default to replace it."
                    + " Default: ${DEFAULT-VALUE}.")
    double marginPercent;

    @Option(names = "--iterations", paramLabel = "N", defaultValue = "21",
            description = "Timed calls per shape and candidate, interleaved with the other candidates'; the median"
                    + " counts. Default: ${DEFAULT-VALUE}.")
    int iterations;

    @Option(names = "--dry-run", description = "Measure and print, but write no tuning file.")
    boolean dryRun;

    @Option(names = "--json", paramLabel = "FILE", arity = "0..1", fallbackValue = "-",
            description = "Write the trials and the result as JSON to FILE, or to stdout (no table) when no FILE"
                    + " is given.")
    String json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<Tuner.Workload> workloads = workloads();
        checkNumbers();
        // Before measuring (minutes), as apply checks its outputs before computing.
        OperatorOptions.checkOutputPaths(new String[] {"--json"},
                new Path[] {json == null || json.equals("-") ? null : Path.of(json)});
        if (NormEngine.openClUnavailableReason().isPresent()) {
            throw new IllegalStateException("OpenCL is not available ("
                    + NormEngine.openClUnavailableReason().get() + "): there is nothing to tune");
        }
        DeviceInfo info;
        try {
            info = ClRuntime.device(device);
        } catch (IllegalArgumentException e) {
            throw new UserInputException("--device: " + e.getMessage());
        }
        Optional<Path> dir = Tuning.directory();
        if (!dryRun && dir.isEmpty()) {
            throw new UserInputException("nothing to store the result in: the cache directory is off"
                    + " (normcl.cacheDir / NORMCL_CACHE_DIR): set one, or add --dry-run");
        }
        String selector = Integer.toString(info.index());
        BenchRunner runner = new BenchRunner(new BenchRunner.Config(List.of(), null, List.of("opencl"), selector,
                List.of(DType.FLOAT32), false, 0, 0, iterations, 1, 32, false), err);
        err.println("tune: " + info.label() + ": " + workloads.size() + " workloads, budget " + budgetS + " s");
        err.flush();
        Tuner.Result result = Tuner.run(selector, workloads, (be, w) -> runner.prepareForward(be, w.op(), w.shape()),
                WARMUP, iterations, marginPercent / 100, budgetS, line -> {
                    err.println("tune: " + line);
                    err.flush();
                });
        Path file = dir.map(d -> Tuning.file(d, info)).orElse(null);
        Map<String, Object> report = report(result, file);
        // The tuning file and --json FILE together or neither: a failure leaves the cache as it was.
        if (!dryRun) {
            try {
                Files.createDirectories(file.getParent());
            } catch (IOException e) {
                throw new UncheckedIOException("the tuning file: cannot create the directory " + file.getParent()
                        + ": " + e, e);
            }
        }
        String comment = "Measured by normcl " + Main.version() + " tune on "
                + Instant.now().truncatedTo(ChronoUnit.SECONDS) + " over " + labels(workloads) + ".";
        OperatorOptions.writeAll(Arrays.asList(
                json == null || json.equals("-") ? null : OperatorOptions.OutputFile.of("--json", Path.of(json),
                        o -> o.write(Json.write(report).getBytes(StandardCharsets.UTF_8))),
                dryRun ? null : OperatorOptions.OutputFile.of("the tuning file", file,
                        o -> o.write(result.tuning().text(info, comment).getBytes(StandardCharsets.UTF_8)))));
        if (json != null && json.equals("-")) {
            out.print(Json.write(report));
        }
        if (json == null || !json.equals("-")) {
            printTable(out, result, workloads, file);
        }
        out.flush();
        return ExitCodes.OK;
    }

    private List<Tuner.Workload> workloads() {
        List<String> opList = new ArrayList<>();
        for (String o : ops == null ? DEFAULT_OPS : ops) {
            String s = o.trim().toLowerCase(Locale.ROOT);
            if (!BenchRunner.OPS.contains(s)) {
                throw new UserInputException("--ops: unknown operator '" + o + "': expected one of "
                        + String.join(", ", BenchRunner.OPS));
            }
            if (!opList.contains(s)) {
                opList.add(s);
            }
        }
        List<long[]> given = null;
        if (shapes != null) {
            given = new ArrayList<>();
            for (String s : shapes) {
                given.add(BenchCommand.parseShape(s));
            }
        }
        List<Tuner.Workload> list = new ArrayList<>();
        for (String op : opList) {
            boolean rows = op.equals("layer-norm") || op.equals("rms-norm");
            for (long[] shape : given != null ? given : rows ? ROW_SHAPES : CHANNEL_SHAPES) {
                if (!rows && shape.length < 2) {
                    throw new UserInputException("--shapes: " + op + " needs shapes of rank >= 2 (N, C, ...): got "
                            + BenchRunner.shapeLabel(shape));
                }
                long rowBytes = rows ? shape[shape.length - 1] * DType.FLOAT32.byteSize() : 0;
                list.add(new Tuner.Workload(op, shape, rowBytes));
            }
        }
        if (given != null) {
            BenchCommand.nonEmpty("--shapes", given, "a shape such as 8192x1024");
        }
        if (list.isEmpty()) {
            throw new UserInputException("--ops: the list is empty: expected an operator such as layer-norm");
        }
        return list;
    }

    private void checkNumbers() {
        if (!(budgetS > 0)) {
            throw new UserInputException("--budget-s = " + budgetS + ": expected a number of seconds > 0");
        }
        if (!(marginPercent >= 0 && marginPercent < 100)) {
            throw new UserInputException("--margin = " + marginPercent + ": expected a percentage in [0, 100)");
        }
        if (iterations < 1) {
            throw new UserInputException("--iterations = " + iterations + ": expected 1 or more");
        }
    }

    private static String labels(List<Tuner.Workload> workloads) {
        return String.join(", ", workloads.stream().map(Tuner.Workload::label).toList());
    }

    private Map<String, Object> report(Tuner.Result r, Path file) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("normcl_version", Main.version());
        m.put("device", r.device().label());
        m.put("driver", r.device().driverVersion());
        m.put("kernels", r.serial() ? "serial" : "work-group");
        m.put("iterations", iterations);
        m.put("margin_percent", marginPercent);
        m.put("defaults", numbers(r.defaults()));
        m.put("tuning", numbers(r.tuning()));
        m.put("file", file == null ? null : file.toString());
        m.put("written", !dryRun);
        List<Object> trials = new ArrayList<>();
        for (Tuner.Trial t : r.trials()) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("parameter", t.parameter());
            e.put("value", t.value());
            e.put("incumbent", t.incumbent());
            e.put("score", t.score());
            e.put("note", t.note());
            List<Object> ws = new ArrayList<>();
            for (int i = 0; i < t.workloads().size(); i++) {
                ws.add(Map.of("workload", t.workloads().get(i), "median_ms", t.ms().get(i)));
            }
            e.put("workloads", ws);
            trials.add(e);
        }
        m.put("trials", trials);
        m.put("notes", r.notes());
        return m;
    }

    /** @return the parameters with numbers as JSON numbers ({@code never} stays a string) */
    private static Map<String, Object> numbers(Tuning t) {
        return numbers(t.parameters());
    }

    /**
     * @return the named parameters with the numeric ones as JSON numbers (names such as
     *     {@code never} or a kernel family stay strings): the form of {@code normcl tune --json}
     *     and of {@code normcl bench}'s {@code kernel_parameters}
     */
    static Map<String, Object> numbers(Map<String, String> parameters) {
        Map<String, Object> m = new LinkedHashMap<>();
        parameters.forEach((k, v) -> m.put(k, v.matches("\\d+") ? (Object) Long.valueOf(v) : v));
        return m;
    }

    private void printTable(PrintWriter out, Tuner.Result r, List<Tuner.Workload> workloads, Path file) {
        out.printf("%-22s %-9s %7s %10s  %s%n", "parameter", "value", "score", "total ms", "note");
        for (Tuner.Trial t : r.trials()) {
            double total = t.ms().stream().mapToDouble(Double::doubleValue).sum();
            String note = (t.incumbent() ? "incumbent" : "") + (t.note().isEmpty() ? ""
                    : (t.incumbent() ? ", " : "") + t.note());
            out.printf(Locale.ROOT, "%-22s %-9s %7.3f %10.3f  %s%n", t.parameter(), t.value(), t.score(), total, note);
        }
        for (String n : r.notes()) {
            out.println("note: " + n);
        }
        out.println("device: " + r.device().label() + ", driver " + r.device().driverVersion() + " ("
                + (r.serial() ? "one-work-item-per-row" : "work-group") + " kernels)");
        out.println("workloads: " + labels(workloads));
        out.println("score: mean over the workloads a candidate changes (all but where a note says 'over N of M')"
                + " of its median ms over the incumbent's (lower is faster); total ms: the sum of the medians of"
                + " the workloads timed (a confirm row's: those the candidate changes)");
        out.println("defaults: " + r.defaults());
        out.println("tuned:    " + r.tuning());
        out.println(dryRun ? "dry run: nothing written" + (file == null ? "" : " (would write " + file + ")")
                : "written: " + file);
    }
}
