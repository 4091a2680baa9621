package org.normcl;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Training-mode batch normalization of one batch split across several engines (every OpenCL
 * device of the process, or engines the caller gives), as SyncBatchNorm does across GPUs: each
 * engine computes the moments of its shard of the batch (split along N), the moments are merged
 * in shard order with {@link ChannelMoments#merge(List)}, and each engine normalizes its shard
 * with the global statistics. The result equals a single-engine run within the rounding of the
 * computation (float32, or float64 for float64 data) and of the stored output.
 *
 * <pre>{@code
 * try (MultiDeviceBatchNorm bn = MultiDeviceBatchNorm.onAllDevices();
 *      NormResult r = bn.forward(BatchNorm.defaults().withTraining(true), x, gamma, beta, runMean, runVar)) {
 *     float[] y = r.y().toHost().data();
 * }
 * }</pre>
 */
public final class MultiDeviceBatchNorm implements AutoCloseable {
    private final List<NormEngine> engines;
    private final boolean ownsEngines;
    private final ExecutorService pool;
    private final AtomicBoolean closed = new AtomicBoolean();

    private MultiDeviceBatchNorm(List<NormEngine> engines, boolean ownsEngines) {
        if (engines.isEmpty()) {
            throw new IllegalArgumentException("engines is empty: expected at least one engine");
        }
        for (int i = 0; i < engines.size(); i++) {
            if (engines.get(i) == null) {
                throw new IllegalArgumentException("engines[" + i + "] is null: expected a NormEngine");
            }
        }
        this.engines = List.copyOf(engines);
        this.ownsEngines = ownsEngines;
        this.pool = Executors.newFixedThreadPool(engines.size(), r -> {
            Thread t = new Thread(r, "normcl-multidevice");
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * One engine per OpenCL device of the process (closed with this object); the Java backend
     * alone when there is no device.
     *
     * @return the helper
     */
    public static MultiDeviceBatchNorm onAllDevices() {
        List<NormEngine> list = new ArrayList<>();
        try {
            for (DeviceInfo d : NormEngine.devices()) {
                list.add(NormEngine.create(EngineOptions.opencl(Integer.toString(d.index()))));
            }
            if (list.isEmpty()) {
                list.add(NormEngine.create(EngineOptions.java()));
            }
        } catch (RuntimeException e) {
            list.forEach(NormEngine::close);
            throw e;
        }
        return new MultiDeviceBatchNorm(list, true);
    }

    /**
     * @param engines the engines to split over, in shard order (the caller keeps and closes them);
     *     at least one, none null
     * @return the helper
     * @throws IllegalArgumentException if engines is null or empty or holds null
     */
    public static MultiDeviceBatchNorm on(List<NormEngine> engines) {
        Validation.notNull(engines, "engines", "a list of engines");
        return new MultiDeviceBatchNorm(engines, false);
    }

    /** @return the engines, in shard order */
    public List<NormEngine> engines() {
        return engines;
    }

    /**
     * Normalizes a batch split along N over the engines.
     *
     * @param spec must be in training mode; its layout says where the channels are
     * @param x the whole batch (N, C, D1, ...) or, channels-last, (N, D1, ..., C), on the host, of
     *     any type single-engine batchNorm takes (FLOAT32, FLOAT16, BFLOAT16, FLOAT64)
     * @param scale shape [C], or null
     * @param bias shape [C], or null
     * @param runningMean shape [C], or null
     * @param runningVar shape [C], or null
     * @return Y (host, X's type), the global mean and inverse standard deviation (the statistics
     *     type: float32, or float64 for float64 data), and the running statistics updated once
     *     from the global moments (in their own type), as single-engine batchNorm returns them
     * @throws IllegalStateException if this helper (or one of its engines) is closed
     */
    public NormResult forward(BatchNorm spec, HostTensor x, HostTensor scale, HostTensor bias, HostTensor runningMean,
            HostTensor runningVar) {
        Validation.notNull(spec, "spec", "a BatchNorm in training mode");
        String form = spec.layout() == Layout.CHANNELS_FIRST ? "(N, C, D1, ...)" : "(N, D1, ..., C)";
        Validation.notNull(x, "X", "a HostTensor " + form);
        if (!spec.training()) {
            throw new IllegalArgumentException("MultiDeviceBatchNorm is for training mode: expected"
                    + " spec.withTraining(true)");
        }
        if (x.shape().rank() < 2) {
            throw new IllegalArgumentException("X has shape " + x.shape() + ": expected rank >= 2 " + form);
        }
        checkOpen();
        long n = x.shape().dim(0);
        int shards = (int) Math.max(1, Math.min(engines.size(), n));
        List<HostTensor> parts = split(x, shards);
        List<ChannelMoments> moments = all(parts, (engine, part) -> engine.batchNormMoments(spec, part));
        ChannelMoments global = ChannelMoments.merge(moments);
        List<NormResult> results = all(parts,
                (engine, part) -> engine.batchNorm(spec, part, scale, bias, runningMean, runningVar, global));
        NormResult first = results.get(0);
        HostTensor y = HostTensor.zeros(first.y().dtype(), x.shape());
        long offset = 0;
        for (NormResult r : results) {
            HostTensor py = r.y().toHost();
            y.copyFrom(py, offset);
            offset += py.shape().size();
        }
        return new NormResult(y, first.mean(), first.invStdDev(), first.runningMean(), first.runningVar());
    }

    /** Splits along N into {@code shards} nearly equal parts, in order. */
    private static List<HostTensor> split(HostTensor x, int shards) {
        long[] dims = x.shape().dims();
        long n = dims[0];
        long perSample = n == 0 ? 0 : x.shape().size() / n;
        List<HostTensor> parts = new ArrayList<>();
        for (int i = 0; i < shards; i++) {
            long from = n * i / shards;
            long to = n * (i + 1) / shards;
            long[] d = dims.clone();
            d[0] = to - from;
            parts.add(x.range(from * perSample, to * perSample, Shape.of(d)));
        }
        return parts;
    }

    private interface ShardWork<T> {
        T run(NormEngine engine, HostTensor part);
    }

    /** Runs one task per shard, each on its engine's thread, and returns the results in shard order. */
    private <T> List<T> all(List<HostTensor> parts, ShardWork<T> work) {
        List<Future<T>> futures = new ArrayList<>();
        for (int i = 0; i < parts.size(); i++) {
            NormEngine e = engines.get(i);
            HostTensor p = parts.get(i);
            try {
                futures.add(pool.submit(() -> work.run(e, p)));
            } catch (RejectedExecutionException closedMeanwhile) {
                futures.forEach(f -> f.cancel(true));
                throw closedError();
            }
        }
        List<T> out = new ArrayList<>();
        for (Future<T> f : futures) {
            try {
                out.add(f.get());
            } catch (CancellationException closedMeanwhile) {
                throw closedError();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new NormException("interrupted while waiting for a shard", e);
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof RuntimeException re) {
                    throw re;
                }
                throw new NormException("shard failed: " + cause, cause);
            }
        }
        return out;
    }

    private void checkOpen() {
        if (closed.get()) {
            throw closedError();
        }
    }

    private static IllegalStateException closedError() {
        return new IllegalStateException("this MultiDeviceBatchNorm is closed");
    }

    /**
     * Stops the worker threads and closes the engines this helper opened; idempotent. A later
     * {@link #forward} throws {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            // Shards queued but not started would leave a running forward() waiting: cancel them.
            for (Runnable queued : pool.shutdownNow()) {
                if (queued instanceof Future<?> f) {
                    f.cancel(false);
                }
            }
            if (ownsEngines) {
                engines.forEach(NormEngine::close);
            }
        }
    }
}
