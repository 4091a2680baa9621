package org.normcl.opencl;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;
import java.util.function.BiPredicate;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import java.util.function.Predicate;

import org.normcl.DeviceInfo;
import org.normcl.backend.Backend;

/**
 * The search behind {@code normcl tune}: one {@link Tuning} parameter at a time (coordinate
 * descent, each parameter starting from the winners so far), a few candidates each, every
 * candidate timed on every workload that parameter affects. The candidates of a parameter run on
 * backends open side by side and take turns in short blocks of calls (the order rotating), so a
 * burst of load from elsewhere slows them all alike instead of deciding the winner: on a 2-core machine shared with other work, back-to-back timing of one
 * candidate after another gave the same parameters scores from 0.77 to 1.38. A candidate's time
 * on a workload is the median of its calls; its score is the mean of its times over the
 * incumbent's (1.0: as fast) on the workloads it changes (a pipelining threshold changes only the
 * rows between it and the incumbent's; averaged in, the others only dilute a real difference with
 * noise). A control, the incumbent's parameters on a second backend, measures the run's own noise:
 * on that machine two identical configurations scored from 0.92 to 1.15 against each other. A
 * candidate replaces the incumbent only when it scores at most {@code 1 - max(margin, 2 |1 -
 * control|)}, the control scored on the same workloads, and again when timed a second time, on
 * those workloads, with a fresh control. What is timed is the caller's
 * {@link Workbench}: the search only opens backends with candidate parameters.
 *
 * <p>The parameters tried depend on the kernel family the device gets: the vector width always;
 * on CPU drivers (one work-item per row) the work-group cap of those kernels and, when layer or
 * RMS norm rows are among the workloads, the row size from which rows are pipelined and the
 * pipelined kernel's work-items per compute unit; on GPUs the work-group kernels' group cap.
 */
public final class Tuner {
    /** Sets a workload up on a backend; the search never looks inside. */
    @FunctionalInterface
    public interface Workbench {
        /**
         * @param backend a backend opened with the candidate's parameters
         * @param workload what to run
         * @return one call of the workload on buffers allocated once, and their release
         */
        Prepared prepare(Backend backend, Workload workload);
    }

    /**
     * A workload ready to run.
     *
     * @param call one call; returns when the device is done
     * @param release frees what {@link Workbench#prepare} allocated
     */
    public record Prepared(Runnable call, Runnable release) {
    }

    /**
     * One operator on one shape.
     *
     * @param op the operator, as {@code normcl bench} names it
     * @param shape its input shape
     * @param rowBytes bytes of one normalized row for layer and RMS norm (the pipelining
     *     parameters apply to those only), 0 for the channel operators
     */
    public record Workload(String op, long[] shape, long rowBytes) {
        /** @return e.g. {@code layer-norm 8192x1024} */
        public String label() {
            StringBuilder sb = new StringBuilder(op).append(' ');
            for (int i = 0; i < shape.length; i++) {
                sb.append(i == 0 ? "" : "x").append(shape[i]);
            }
            return sb.toString();
        }
    }

    /**
     * One timed candidate.
     *
     * @param parameter the parameter's name (a {@link Tuning} component)
     * @param value the candidate value, as the table shows it
     * @param incumbent whether this is the value the parameter had when its turn came
     * @param workloads the workloads timed, in order
     * @param ms the time of each workload
     * @param score mean of this candidate's time over the incumbent's, over the workloads it changes
     *     (all of them, except for a pipelining threshold); a control's and a second look's, over the
     *     workloads timed
     * @param note "chosen", "kept", "confirm", "control: bar B" (the incumbent on a second backend, and
     *     the score a candidate that changes every workload had to reach), "bar B over N of M
     *     workloads" (a candidate that changes only some workloads: its score and bar are over those;
     *     after "chosen, " where it won) or empty
     */
    public record Trial(String parameter, String value, boolean incumbent, List<String> workloads, List<Double> ms,
            double score, String note) {
    }

    /**
     * What a search found.
     *
     * @param device the device
     * @param serial whether the device runs the one-work-item-per-row kernels
     * @param defaults the untuned parameters, vector width resolved
     * @param tuning the winners (the defaults where nothing beat them)
     * @param trials every timed candidate, in order
     * @param notes parameters not tried, and why
     */
    public record Result(DeviceInfo device, boolean serial, Tuning defaults, Tuning tuning, List<Trial> trials,
            List<String> notes) {
    }

    private final String selector;
    private final DeviceInfo device;
    private final Workbench bench;
    private final int warmup;
    private final int iterations;
    private final double margin;
    private final long deadline;
    private final Consumer<String> progress;
    private final List<Trial> trials = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();

    private Tuner(String selector, Workbench bench, int warmup, int iterations, double margin, double budgetSeconds,
            Consumer<String> progress) {
        this.selector = selector;
        this.device = ClRuntime.device(selector);
        this.bench = bench;
        this.warmup = warmup;
        this.iterations = iterations;
        this.margin = margin;
        this.deadline = System.nanoTime() + (long) (budgetSeconds * 1e9);
        this.progress = progress;
    }

    /**
     * Runs the search.
     *
     * @param selector the device, as for {@link ClRuntime#open(String)}
     * @param workloads what to time (at least one)
     * @param bench sets a workload up on a backend
     * @param warmup untimed calls of each candidate on each workload first
     * @param iterations timed calls of each candidate on each workload (the median counts)
     * @param margin how much faster (a fraction, e.g. 0.03) a candidate must be to replace the incumbent
     * @param budgetSeconds when this is spent, no further parameter starts; those not reached
     *     keep their defaults (and the result's notes say so)
     * @param progress receives one line per timed candidate
     * @return the winners and every trial
     */
    public static Result run(String selector, List<Workload> workloads, Workbench bench, int warmup, int iterations,
            double margin, double budgetSeconds, Consumer<String> progress) {
        if (workloads.isEmpty()) {
            throw new IllegalArgumentException("no workload to tune on");
        }
        return new Tuner(selector, bench, warmup, iterations, margin, budgetSeconds, progress).search(workloads);
    }

    private Result search(List<Workload> all) {
        boolean serial = new WorkSizing(device, 0, Tuning.defaults()).serial();
        Tuning defaults = Tuning.defaults().resolvedFor(device);
        Tuning best = defaults;
        best = tune("vectorWidth", all, best, new int[] {4, 8, 16}, best.vectorWidth(), best::withVectorWidth);
        if (serial) {
            Tuning b = best;
            best = tune("serialGroupCap", all, best, new int[] {8, 16, 32, 64, 128, 256}, best.serialGroupCap(),
                    b::withSerialGroupCap);
            List<Workload> rows = all.stream().filter(w -> w.rowBytes() > 0).toList();
            if (rows.isEmpty()) {
                notes.add("pipelineMinRowBytes, pipelineItemsPerUnit: no layer-norm or rms-norm workload");
            } else {
                best = tuneThreshold(rows, best);
                long from = best.pipelineMinRowBytes();
                List<Workload> piped = rows.stream().filter(w -> w.rowBytes() >= from).toList();
                if (piped.isEmpty()) {
                    notes.add("pipelineItemsPerUnit: no workload's rows are pipelined");
                } else {
                    Tuning c = best;
                    best = tune("pipelineItemsPerUnit", piped, best, new int[] {2, 4, 8, 16, 32},
                            best.pipelineItemsPerUnit(), c::withPipelineItemsPerUnit);
                }
            }
        } else {
            List<Integer> sizes = new ArrayList<>();
            for (int g = 32; g <= 1024 && g <= device.maxWorkGroupSize(); g *= 2) {
                sizes.add(g);
            }
            Tuning b = best;
            best = tune("maxGroupSize", all, best, sizes.stream().mapToInt(Integer::intValue).toArray(),
                    best.maxGroupSize(), b::withMaxGroupSize);
        }
        return new Result(device, serial, defaults, best, List.copyOf(trials), List.copyOf(notes));
    }

    /** The pipelining threshold: candidates are the row sizes of the workloads, and never. */
    private Tuning tuneThreshold(List<Workload> rows, Tuning best) {
        TreeSet<Long> sizes = new TreeSet<>();
        rows.forEach(w -> sizes.add(w.rowBytes()));
        List<Long> candidates = new ArrayList<>();
        candidates.add(best.pipelineMinRowBytes());
        for (long s : sizes) {
            // A threshold equivalent to the incumbent's on these workloads would only time noise.
            if (pipelined(sizes, s) != pipelined(sizes, best.pipelineMinRowBytes())) {
                candidates.add(s);
            }
        }
        if (pipelined(sizes, Tuning.NEVER) != pipelined(sizes, best.pipelineMinRowBytes())) {
            candidates.add(Tuning.NEVER);
        }
        long[] values = candidates.stream().mapToLong(Long::longValue).toArray();
        int[] index = new int[values.length];
        for (int i = 0; i < index.length; i++) {
            index[i] = i;
        }
        Tuning b = best;
        // A threshold changes the kernel of the rows between it and the incumbent's, no other.
        return tune("pipelineMinRowBytes", rows, best, index, 0, i -> b.withPipelineMinRowBytes(values[i]),
                i -> values[i] == Tuning.NEVER ? "never" : Long.toString(values[i]),
                (i, w) -> (w.rowBytes() >= values[i]) != (w.rowBytes() >= values[0]));
    }

    private static long pipelined(TreeSet<Long> sizes, long threshold) {
        return sizes.stream().filter(s -> s >= threshold).count();
    }

    private Tuning tune(String parameter, List<Workload> workloads, Tuning incumbent, int[] candidates, int current,
            IntFunction<Tuning> with) {
        return tune(parameter, workloads, incumbent, candidates, current, with, Integer::toString, (v, w) -> true);
    }

    /**
     * Times the incumbent, a second backend with the incumbent's parameters (the control) and
     * every other candidate together. The control's score says how far two identical
     * configurations drift apart in this run; a candidate must beat the incumbent by twice that,
     * and by at least the margin, and again on a second look with a fresh control. Scores and bars
     * are taken over the workloads that {@code changes} (candidate value, workload) says the
     * candidate runs differently from the incumbent.
     */
    private Tuning tune(String parameter, List<Workload> workloads, Tuning incumbent, int[] candidates, int current,
            IntFunction<Tuning> with, IntFunction<String> label, BiPredicate<Integer, Workload> changes) {
        if (expired()) {
            notes.add(parameter + ": not tuned (budget spent)");
            return incumbent;
        }
        List<Integer> values = new ArrayList<>(List.of(current, current));
        for (int c : candidates) {
            if (c != current) {
                values.add(c);
            }
        }
        List<Tuning> configs = new ArrayList<>(List.of(incumbent, incumbent));
        values.subList(2, values.size()).forEach(v -> configs.add(with.apply(v)));
        double[][] ms = time(configs, workloads);
        Trial baseTrial = record(parameter, label.apply(current), true, workloads, ms[0], 1.0, "");
        bar(parameter, workloads, label.apply(current), ms);
        int best = 0;
        double bestScore = 1.0;
        double bestBar = 1.0;
        double bestGain = 0;
        Trial bestTrial = null;
        for (int k = 2; k < values.size(); k++) {
            int value = values.get(k);
            boolean[] changed = changed(workloads, w -> changes.test(value, w));
            double score = score(ms[k], ms[0], changed);
            double bar = bar(score(ms[1], ms[0], changed));
            int count = count(changed);
            Trial t = record(parameter, label.apply(value), false, workloads, ms[k], score,
                    count == workloads.size() ? "" : String.format(Locale.ROOT, "bar %.3f over %d of %d workloads",
                            bar, count, workloads.size()));
            // Of those that pass their own bar, the one that saves the most over all the workloads (the
            // unchanged counting 1.0): means over different workloads do not compare, and the lowest
            // would prefer a threshold that unpipelines one row size 20% faster to one that does it
            // for that size and two more.
            double gain = (1 - score) * count;
            if (score <= bar && gain > bestGain) {
                bestScore = score;
                bestGain = gain;
                bestBar = bar;
                best = k;
                bestTrial = t;
            }
        }
        if (best == 0) {
            mark(baseTrial, "kept");
            return incumbent;
        }
        // A second look, on the workloads the winner changes: one lucky run must not move the default.
        int winnerValue = values.get(best);
        List<Workload> changedLoads = workloads.stream().filter(w -> changes.test(winnerValue, w)).toList();
        double[][] again = time(List.of(incumbent, incumbent, configs.get(best)), changedLoads);
        double bar2 = bar(parameter, changedLoads, label.apply(current), again);
        double second = score(again[2], again[0], null);
        String winner = label.apply(winnerValue);
        record(parameter, winner, false, changedLoads, again[2], second, "confirm");
        if (second > bar2) {
            notes.add(String.format(Locale.ROOT, "%s: %s scored %.3f (bar %.3f), then %.3f (bar %.3f) on a second"
                    + " look: kept %s", parameter, winner, bestScore, bestBar, second, bar2, label.apply(current)));
            mark(baseTrial, "kept");
            return incumbent;
        }
        mark(bestTrial, "chosen");
        return configs.get(best);
    }

    private static boolean[] changed(List<Workload> workloads, Predicate<Workload> changes) {
        boolean[] c = new boolean[workloads.size()];
        for (int i = 0; i < c.length; i++) {
            c[i] = changes.test(workloads.get(i));
        }
        return c;
    }

    private static int count(boolean[] mask) {
        int n = 0;
        for (boolean b : mask) {
            n += b ? 1 : 0;
        }
        return n;
    }

    /**
     * Records the control (row 1 of {@code ms}, the incumbent timed on a second backend) and
     * returns the score a candidate must reach: {@code 1 - max(margin, 2 |1 - control score|)}.
     */
    private double bar(String parameter, List<Workload> workloads, String value, double[][] ms) {
        double control = score(ms[1], ms[0], null);
        double bar = bar(control);
        record(parameter, value, true, workloads, ms[1], control, String.format(Locale.ROOT, "control: bar %.3f",
                bar));
        return bar;
    }

    /** @return the score a candidate must reach where the control scored {@code control} */
    private double bar(double control) {
        return 1 - Math.max(margin, 2 * Math.abs(1 - control));
    }

    /** Puts {@code note} before the trial's own, which says what its score and bar are over. */
    private void mark(Trial trial, String note) {
        int i = trials.indexOf(trial);
        trials.set(i, new Trial(trial.parameter(), trial.value(), trial.incumbent(), trial.workloads(), trial.ms(),
                trial.score(), trial.note().isEmpty() ? note : note + ", " + trial.note()));
    }

    /**
     * @param mask the workloads to score over, or null for all
     * @return the mean over those of {@code ms / base}; 1.0 where the mask is empty
     */
    private static double score(double[] ms, double[] base, boolean[] mask) {
        double sum = 0;
        int n = 0;
        for (int i = 0; i < ms.length; i++) {
            if (mask == null || mask[i]) {
                sum += ms[i] / base[i];
                n++;
            }
        }
        return n == 0 ? 1.0 : sum / n;
    }

    private Trial record(String parameter, String value, boolean incumbent, List<Workload> workloads, double[] ms,
            double score, String note) {
        List<Double> list = new ArrayList<>();
        for (double m : ms) {
            list.add(m);
        }
        Trial t = new Trial(parameter, value, incumbent, workloads.stream().map(Workload::label).toList(), list, score,
                note);
        trials.add(t);
        progress.accept(String.format(Locale.ROOT, "%s=%s%s: %s", parameter, value, incumbent ? " (incumbent)" : "",
                describe(workloads, ms, score)));
        return t;
    }

    private static String describe(List<Workload> workloads, double[] ms, double score) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ms.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(workloads.get(i).label())
                    .append(String.format(Locale.ROOT, " %.3f ms", ms[i]));
        }
        return sb.append(String.format(Locale.ROOT, "; score %.3f", score)).toString();
    }

    /**
     * Calls timed back to back on one backend before the next takes over. One call at a time per
     * backend was fair but not faithful: on PoCL each call then ran after another context's, and
     * LayerNorm 8192x1024 took 2.4 to 3.2 ms instead of the 1.8 ms {@code normcl bench} measures.
     */
    static final int BLOCK = 3;

    /**
     * @return the median ms of each configuration (first index) on each workload (second): all
     *     configurations' backends open at once, taking turns in blocks of {@link #BLOCK} timed
     *     calls after one untimed call, the order rotating each round
     */
    private double[][] time(List<Tuning> configs, List<Workload> workloads) {
        int n = configs.size();
        double[][] ms = new double[n][workloads.size()];
        List<Backend> backends = new ArrayList<>();
        try {
            for (Tuning t : configs) {
                backends.add(ClRuntime.open(selector, t));
            }
            for (int w = 0; w < workloads.size(); w++) {
                List<Prepared> calls = new ArrayList<>();
                try {
                    for (Backend be : backends) {
                        calls.add(bench.prepare(be, workloads.get(w)));
                    }
                    for (int i = 0; i < warmup; i++) {
                        calls.forEach(c -> c.call().run());
                    }
                    double[][] samples = new double[n][iterations];
                    for (int i = 0, round = 0; i < iterations; i += BLOCK, round++) {
                        for (int j = 0; j < n; j++) {
                            int k = (round + j) % n;
                            Runnable call = calls.get(k).call();
                            call.run(); // untimed: the switch from another backend's queue
                            for (int b = i; b < Math.min(iterations, i + BLOCK); b++) {
                                long t0 = System.nanoTime();
                                call.run();
                                samples[k][b] = (System.nanoTime() - t0) / 1e6;
                            }
                        }
                    }
                    for (int k = 0; k < n; k++) {
                        ms[k][w] = median(samples[k]);
                    }
                } finally {
                    calls.forEach(c -> c.release().run());
                }
            }
        } finally {
            backends.forEach(Backend::close);
        }
        return ms;
    }

    private static double median(double[] a) {
        double[] s = a.clone();
        java.util.Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private boolean expired() {
        return System.nanoTime() - deadline > 0;
    }
}
