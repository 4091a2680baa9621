package org.normcl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/** {@link NormEngine#submit}: same results as direct calls, in order, errors delivered, no hang on close. */
class AsyncSubmitTest {
    private static HostTensor input(int seed) {
        float[] x = new float[16 * 32];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(seed * 31 + i * 0.7) * (1 + seed);
        }
        return HostTensor.of(x, 16, 32);
    }

    @Test
    void submittedCallsGiveTheDirectResultsInOrder() {
        try (NormEngine engine = NormEngine.create(EngineOptions.auto())) {
            List<CompletableFuture<NormResult>> futures = new ArrayList<>();
            List<Integer> order = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int i = 0; i < 50; i++) {
                int seed = i;
                futures.add(engine.submit(e -> {
                    order.add(seed);
                    return e.layerNorm(input(seed), null, null);
                }));
            }
            for (int i = 0; i < futures.size(); i++) {
                try (NormResult async = futures.get(i).join();
                        NormResult direct = engine.layerNorm(input(i), null, null)) {
                    assertArrayEquals(direct.y().toHost().data(), async.y().toHost().data(), "call " + i);
                }
            }
            for (int i = 0; i < order.size(); i++) {
                assertEquals(i, order.get(i), "calls run in submission order");
            }
        }
    }

    @Test
    void badInputFailsTheFutureNotTheThread() {
        try (NormEngine engine = NormEngine.create(EngineOptions.java())) {
            CompletableFuture<NormResult> bad = engine.submit(e -> e.layerNorm(input(0), HostTensor.of(new float[3], 3),
                    null));
            CompletionException ex = assertThrows(CompletionException.class, bad::join);
            assertInstanceOf(IllegalArgumentException.class, ex.getCause());
            assertTrue(ex.getCause().getMessage().contains("scale"), ex.getCause().getMessage());
            try (NormResult ok = engine.submit(e -> e.layerNorm(input(1), null, null)).join()) {
                assertEquals(16 * 32, ok.y().toHost().data().length, "the thread survives a failed call");
            }
            assertThrows(IllegalArgumentException.class, () -> engine.submit(null));
        }
    }

    @Test
    void closeWaitsForTheRunningCallAndFailsTheQueuedOnes() throws Exception {
        NormEngine engine = NormEngine.create(EngineOptions.java());
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<String> running = engine.submit(e -> {
            started.countDown();
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            }
            return "done";
        });
        CompletableFuture<NormResult> queued = engine.submit(e -> e.layerNorm(input(2), null, null));
        assertTrue(started.await(10, TimeUnit.SECONDS));
        Thread closer = new Thread(engine::close);
        closer.start();
        Thread.sleep(100);
        assertTrue(closer.isAlive(), "close waits for the running call");
        release.countDown();
        closer.join(10_000);
        assertTrue(!closer.isAlive(), "close returns once the running call is done");
        assertEquals("done", running.join());
        CompletionException ex = assertThrows(CompletionException.class, queued::join);
        assertInstanceOf(IllegalStateException.class, ex.getCause());
        assertThrows(IllegalStateException.class, () -> engine.submit(e -> 1));
    }

    @Test
    void closeFromInsideASubmittedCallDoesNotDeadlock() {
        NormEngine engine = NormEngine.create(EngineOptions.java());
        CompletableFuture<Boolean> f = engine.submit(e -> {
            e.close();
            return true;
        });
        assertTrue(f.orTimeout(10, TimeUnit.SECONDS).join());
    }
}
