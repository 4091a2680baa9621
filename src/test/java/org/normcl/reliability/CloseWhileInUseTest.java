package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DeviceInfo;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.HostTensor;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;

/**
 * Closing an engine while other threads use it: the calls in flight finish, the ones that start
 * after it throw {@link IllegalStateException}, and nothing else happens. Before the engine waited
 * for its calls, PoCL aborted the JVM here ({@code can_run_command: Assertion pocl_refcount > 0
 * failed}): the close released the context and queue under a running call. A crash kills the test
 * JVM, which fails the build.
 */
class CloseWhileInUseTest {
    private static final int ROUNDS = 20;
    private static final int THREADS = 3;

    static Stream<EngineOptions> engines() {
        List<EngineOptions> l = new ArrayList<>();
        l.add(EngineOptions.java());
        for (DeviceInfo d : Backends.requireDevicesInCi()) {
            l.add(EngineOptions.opencl(Integer.toString(d.index())));
        }
        return l.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("engines")
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void callsInFlightFinishAndLaterOnesSayTheEngineIsClosed(EngineOptions options) throws Exception {
        HostTensor x = HostTensor.of(Data.gaussian("close race", 64 * 256, 0, 1), 64, 256);
        int closedSeen = 0;
        for (int round = 0; round < ROUNDS; round++) {
            NormEngine e = NormEngine.create(options);
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            try {
                List<Future<?>> work = new ArrayList<>();
                for (int t = 0; t < THREADS; t++) {
                    work.add(pool.submit(() -> {
                        for (int i = 0; i < 10_000; i++) {
                            try (DeviceTensor d = e.upload(x);
                                    NormResult r = e.layerNorm(LayerNorm.defaults(), d, null, null)) {
                                r.y().toHost();
                            }
                        }
                        return null;
                    }));
                }
                Thread.sleep(2 + round % 7);
                e.close();
                for (Future<?> f : work) {
                    try {
                        f.get();
                    } catch (ExecutionException ex) {
                        Throwable c = ex.getCause();
                        if (!(c instanceof IllegalStateException) || !String.valueOf(c.getMessage()).contains("closed")) {
                            fail("a call racing close() failed with something other than 'closed'", c);
                        }
                        closedSeen++;
                    }
                }
            } finally {
                pool.shutdownNow();
                e.close();
            }
        }
        assertTrue(closedSeen > 0, "some calls started after close() and were refused");
    }
}
