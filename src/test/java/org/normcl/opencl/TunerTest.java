package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.ToLongFunction;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.normcl.DeviceInfo;

/**
 * The search's decisions, on a workbench whose calls sleep for a time chosen by the backend's
 * launch parameters (so the outcome does not depend on how fast the device is): a clearly faster
 * candidate wins and is confirmed; among equals the incumbent is kept; a spent budget keeps
 * the defaults; the control's noise sets the bar.
 */
class TunerTest {
    private String selector;
    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
        selector = Integer.toString(device.index());
    }

    private static final List<Tuner.Workload> ONE = List.of(new Tuner.Workload("layer-norm", new long[] {8, 64}, 256));

    /** A workbench whose call sleeps {@code micros(sizing)} microseconds. */
    private static Tuner.Workbench sleeping(ToLongFunction<WorkSizing> micros) {
        return (be, w) -> spinning(micros.applyAsLong(((ClBackend) be).sizing()));
    }

    /**
     * A workbench whose call sleeps 1200 microseconds, or {@code micros(workload)} where the
     * workload's rows (64 of them) are pipelined.
     */
    private static Tuner.Workbench pipelining(ToLongFunction<Tuner.Workload> micros) {
        return (be, w) -> spinning(((ClBackend) be).sizing().pipelinedRowsPerItem(64, w.rowBytes()) > 0
                ? micros.applyAsLong(w) : 1200);
    }

    private static Tuner.Prepared spinning(long us) {
        return new Tuner.Prepared(() -> {
            long end = System.nanoTime() + us * 1000;
            while (System.nanoTime() < end) {
                Thread.onSpinWait();
            }
        }, () -> { });
    }

    private Tuner.Result run(Tuner.Workbench bench, double budget) {
        List<String> progress = new ArrayList<>();
        Tuner.Result r = Tuner.run(selector, ONE, bench, 1, 5, 0.03, budget, progress::add);
        assertEquals(r.trials().size(), progress.size(), "one progress line per trial");
        return r;
    }

    @Test
    void aClearlyFasterCandidateWinsAndIsConfirmed() {
        int other = WorkSizing.preferredVectorWidth(device) == 8 ? 4 : 8;
        Tuner.Result r = run(sleeping(s -> s.vectorWidth() == other ? 1000 : 3000), 60);
        assertEquals(other, r.tuning().vectorWidth(), r.trials().toString());
        assertTrue(r.trials().stream().anyMatch(t -> t.parameter().equals("vectorWidth") && t.note().equals("chosen")));
        assertTrue(r.trials().stream().anyMatch(t -> t.parameter().equals("vectorWidth") && t.note().equals("confirm")));
        assertEquals(r.defaults().withVectorWidth(other), r.tuning(), "the other parameters stay");
    }

    @Test
    void amongEqualsTheDefaultsStay() {
        Tuner.Result r = run(sleeping(s -> 1000), 60);
        assertEquals(r.defaults(), r.tuning(), r.trials().toString());
        assertTrue(r.trials().stream().anyMatch(t -> t.note().startsWith("control: bar")), "a control per parameter");
        assertTrue(r.trials().stream().filter(t -> t.incumbent() && t.note().equals("kept")).count() >= 2,
                r.trials().toString());
    }

    /**
     * Nine workloads of 4 KiB rows and one of 32 KiB rows, whose call is 20% faster when its rows
     * are not pipelined: only a threshold above 32 KiB changes anything, and only on that workload.
     * Averaged over all ten it would score about 0.98, inside the 3% margin, and the slow default
     * would stay; scored over the one workload it changes, it wins.
     */
    @Test
    void aThresholdIsScoredOnTheRowsItChanges() {
        // A GPU's kernels never pipeline: nothing to decide, and a pass there would say nothing.
        assumeTrue(new WorkSizing(device, 0, Tuning.defaults()).serial(), "pipelining is tuned on CPU drivers only");
        List<Tuner.Workload> loads = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            loads.add(new Tuner.Workload("layer-norm", new long[] {64, 1024 + i}, 4096));
        }
        Tuner.Workload wide = new Tuner.Workload("rms-norm", new long[] {64, 8192}, 32768);
        loads.add(wide);
        Tuner.Result r = Tuner.run(selector, loads, pipelining(w -> w == wide ? 1500 : 1200), 1, 5, 0.03, 120,
                line -> { });
        assertTrue(r.tuning().pipelineMinRowBytes() > 32768, r.trials().toString());
        Tuner.Trial chosen = r.trials().stream()
                .filter(t -> t.parameter().equals("pipelineMinRowBytes") && t.note().startsWith("chosen"))
                .findFirst().orElseThrow(() -> new AssertionError(r.trials().toString()));
        assertTrue(chosen.score() < 0.9, "scored over the 32 KiB rows alone: " + chosen);
        assertTrue(chosen.note().endsWith(" over 1 of 10 workloads"),
                "the table says what the winner was scored over: " + chosen);
        assertTrue(r.trials().stream().anyMatch(t -> t.parameter().equals("pipelineMinRowBytes")
                && t.note().equals("confirm") && t.workloads().equals(List.of(wide.label()))),
                "the second look times the one workload the winner changes: " + r.trials());
    }

    /**
     * Rows of 4, 16 and 32 KiB; unpipelined, the 16 KiB ones run 25% faster and the 32 KiB ones
     * 14%. 32768 (unpipelining the 16 KiB rows) scores 0.75 over the one workload it changes, never
     * about 0.80 over two: the lower mean would keep the 32 KiB rows on their slower kernel, and
     * never, which saves more over the three, wins.
     */
    @Test
    void theThresholdThatSavesTheMostWins() {
        assumeTrue(new WorkSizing(device, 0, Tuning.defaults()).serial(), "pipelining is tuned on CPU drivers only");
        Tuner.Workload mid = new Tuner.Workload("layer-norm", new long[] {64, 4096}, 16384);
        Tuner.Workload wide = new Tuner.Workload("layer-norm", new long[] {64, 8192}, 32768);
        List<Tuner.Workload> loads = List.of(new Tuner.Workload("layer-norm", new long[] {64, 1024}, 4096), mid,
                wide);
        Tuner.Result r = Tuner.run(selector, loads, pipelining(w -> w == mid ? 1600 : w == wide ? 1400 : 1200), 1,
                5, 0.03, 120, line -> { });
        assertEquals(Tuning.NEVER, r.tuning().pipelineMinRowBytes(), r.trials().toString());
    }

    @Test
    void aSpentBudgetKeepsTheDefaults() {
        Tuner.Result r = run(sleeping(s -> s.vectorWidth() == 4 ? 100 : 3000), 1e-9);
        assertEquals(r.defaults(), r.tuning());
        assertEquals(List.of(), r.trials());
        assertTrue(r.notes().contains("vectorWidth: not tuned (budget spent)"), r.notes().toString());
        assertTrue(r.notes().contains("serialGroupCap: not tuned (budget spent)") || !r.serial(), r.notes().toString());
    }
}
