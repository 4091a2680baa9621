package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DeviceTensor;
import org.normcl.NormEngine;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;

/**
 * An engine is thread-safe: one engine per backend (Java, and each OpenCL device with both kernel
 * families) shared by {@value #THREADS} threads running {@value #OPS_PER_THREAD} mixed operations
 * each (layer, RMS, group, instance norm, batch norm inference and training, MVN; host inputs,
 * device inputs, and device tensors shared by all threads at once) gives bitwise the same results
 * as the same operation run alone on one thread.
 */
class ConcurrencyStressTest {
    static final int THREADS = 8;
    static final int OPS_PER_THREAD = 1000;
    /** Distinct operations; each thread draws from them at random, so each runs ~125 times. */
    static final int DISTINCT = 64;

    static Stream<Backends.Named> backends() {
        return Backends.all().stream();
    }

    /** One operation, and whether it runs on host or device inputs (or on the shared tensors). */
    private record Task(Op op, int mode) {
        static final int HOST = 0;
        static final int DEVICE = 1;
        static final int SHARED = 2;

        @Override
        public String toString() {
            return op + (mode == HOST ? " host" : mode == DEVICE ? " device" : " shared-device");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void sharedEngineGivesSingleThreadResults(Backends.Named backend) throws Exception {
        NormEngine engine = backend.engine();
        List<Task> tasks = tasks();
        // Shared weights: uploaded once, used by every thread at once, as an application would.
        Map<float[], DeviceTensor> shared = new IdentityHashMap<>();
        try {
            for (Task t : tasks) {
                if (t.mode() == Task.SHARED) {
                    for (float[] a : new float[][] {t.op().scale(), t.op().bias(), t.op().mean(), t.op().var()}) {
                        if (a != null && !shared.containsKey(a)) {
                            long[] dims = t.op().kind() == Op.Kind.LAYER || t.op().kind() == Op.Kind.RMS
                                    ? t.op().affineDims() : new long[] {a.length};
                            shared.put(a, engine.upload(a, dims));
                        }
                    }
                }
            }
            // The single-thread results.
            List<Op.Out> expected = new ArrayList<>();
            for (Task t : tasks) {
                expected.add(run(engine, t, shared));
            }

            ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
            AtomicInteger done = new AtomicInteger();
            CountDownLatch start = new CountDownLatch(1);
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            long t0 = System.nanoTime();
            try {
                List<Future<?>> futures = new ArrayList<>();
                for (int th = 0; th < THREADS; th++) {
                    int thread = th;
                    futures.add(pool.submit(() -> {
                        SplittableRandom rnd = new SplittableRandom(1000 + thread);
                        start.await();
                        for (int i = 0; i < OPS_PER_THREAD; i++) {
                            int k = rnd.nextInt(tasks.size());
                            Task t = tasks.get(k);
                            try {
                                Op.Out out = run(engine, t, shared);
                                if (!out.bitwiseEquals(expected.get(k))) {
                                    problems.add("thread " + thread + " op " + i + ": " + t + " differs from its"
                                            + " single-thread result");
                                }
                            } catch (RuntimeException e) {
                                problems.add("thread " + thread + " op " + i + ": " + t + " threw " + e);
                            }
                            done.incrementAndGet();
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : futures) {
                    f.get();
                }
            } finally {
                pool.shutdownNow();
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            System.out.printf("ConcurrencyStressTest %s: %d threads x %d ops = %d operations in %.1f s,"
                    + " %d mismatches%n", backend, THREADS, OPS_PER_THREAD, done.get(), seconds, problems.size());
            assertEquals(THREADS * OPS_PER_THREAD, done.get(), "operations run");
            assertTrue(problems.isEmpty(), () -> problems.size() + " problems, the first: "
                    + problems.stream().limit(10).toList());
        } finally {
            shared.values().forEach(DeviceTensor::close);
        }
    }

    private static Op.Out run(NormEngine engine, Task t, Map<float[], DeviceTensor> shared) {
        return t.op().run(engine, t.mode() != Task.HOST, t.mode() == Task.SHARED ? shared : Map.of());
    }

    /** {@value #DISTINCT} operations on small random shapes, every operator, every input mode. */
    private static List<Task> tasks() {
        SplittableRandom rnd = new SplittableRandom(42);
        List<Task> tasks = new ArrayList<>();
        for (int i = 0; i < DISTINCT; i++) {
            String seed = "stress " + i;
            int n = 1 + rnd.nextInt(4);
            int c = new int[] {1, 2, 3, 4, 6}[rnd.nextInt(5)];
            int h = 1 + rnd.nextInt(9);
            int w = 1 + rnd.nextInt(33);
            long[] nchw = {n, c, h, w};
            int size = Data.size(nchw);
            float[] x = Data.gaussian(seed, size, rnd.nextInt(3) == 0 ? 100 : 0, 1 + rnd.nextInt(3));
            float[] sc = Data.gaussian(seed + "w", c, 1, 0.5);
            float[] bc = Data.gaussian(seed + "b", c, 0, 0.5);
            Op op;
            switch (i % 7) {
                case 0: {
                    long[] d = {n * c * h, w};
                    op = Op.layer(d, -1, 1e-5, x, Data.gaussian(seed + "lw", w, 1, .5), Data.gaussian(seed + "lb", w,
                            0, .5));
                    break;
                }
                case 1:
                    op = Op.rms(new long[] {n * c, h * w}, -1, 1e-6, x, Data.gaussian(seed + "rw", h * w, 1, .5));
                    break;
                case 2: {
                    int g = c % 2 == 0 ? 2 : 1;
                    boolean perGroup = rnd.nextBoolean();
                    op = Op.group(nchw, g, perGroup, 1e-5, x, perGroup ? Data.gaussian(seed + "gw", g, 1, .5) : sc,
                            perGroup ? Data.gaussian(seed + "gb", g, 0, .5) : bc);
                    break;
                }
                case 3:
                    op = Op.instance(nchw, 1e-5, x, sc, bc);
                    break;
                case 4:
                    op = Op.batchInference(nchw, 1e-5, x, sc, bc, Data.gaussian(seed + "m", c, 0, 1),
                            Data.uniform(seed + "v", c, 0.5, 2));
                    break;
                case 5:
                    if (n * h * w < 2) {
                        nchw[0] = 2;
                        x = Data.gaussian(seed, Data.size(nchw), 0, 1);
                    }
                    op = Op.batchTraining(nchw, 1e-5, rnd.nextBoolean(), x, sc, bc, Data.gaussian(seed + "m", c, 0, 1),
                            Data.uniform(seed + "v", c, 0.5, 2));
                    break;
                default:
                    op = Op.mvn(nchw, rnd.nextBoolean() ? new int[] {0, 2, 3} : new int[] {2, 3}, 1e-9, x);
                    break;
            }
            int mode = op.kind() == Op.Kind.MVN ? rnd.nextInt(2) : rnd.nextInt(3);
            tasks.add(new Task(op, mode));
        }
        return tasks;
    }
}
