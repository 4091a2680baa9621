package org.normcl.jvm;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/** Splits index ranges over a fork-join pool; the only place the Java backend decides task sizes. */
final class Parallel {
    /** Elements below which a task is not split further: splitting costs more than it saves. */
    static final long MIN_ELEMENTS_PER_TASK = 1 << 15;

    /** A body run over {@code [from, to)}. */
    @FunctionalInterface
    interface RangeBody {
        void run(long from, long to);
    }

    private final ForkJoinPool pool;
    private final int threads;

    Parallel(int threads) {
        this.threads = threads;
        this.pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over {@code [0, n)} in contiguous pieces, each covering work of about
     * {@code costPerIndex * (to - from)} elements and at least {@link #MIN_ELEMENTS_PER_TASK}.
     */
    void forRange(long n, long costPerIndex, RangeBody body) {
        if (n <= 0) {
            return;
        }
        long total = Math.max(1, costPerIndex) * n;
        int pieces = (int) Math.min(Math.min(n, 4L * threads), Math.max(1, total / MIN_ELEMENTS_PER_TASK));
        if (pool == null || pieces <= 1) {
            body.run(0, n);
            return;
        }
        List<RecursiveAction> tasks = new ArrayList<>(pieces);
        for (int p = 0; p < pieces; p++) {
            long from = n * p / pieces;
            long to = n * (p + 1) / pieces;
            tasks.add(new RecursiveAction() {
                @Override
                protected void compute() {
                    body.run(from, to);
                }
            });
        }
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) {
            ForkJoinTask.invokeAll(tasks);
        } else {
            pool.submit(() -> ForkJoinTask.invokeAll(tasks)).join();
        }
    }

    void shutdown() {
        if (pool != null) {
            pool.shutdown();
        }
    }
}
