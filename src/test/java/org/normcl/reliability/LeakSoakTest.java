package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.DeviceInfo;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.Tensor;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.slf4j.LoggerFactory;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;

/**
 * Leaks: engines and device tensors created and closed thousands of times leave the process's
 * resident memory flat, device allocations return to zero, closing an engine closes its tensors,
 * and a tensor nobody closed is released by the Cleaner with a warning.
 *
 * <p>Memory is the process's resident set ({@code VmRSS} of /proc/self/status), sampled after a
 * {@code System.gc()}. The first quarter of each soak is warm-up (JIT, the driver's caches, the
 * heap growing to its working size); the check is that RSS grows by less than
 * {@value #RSS_SLACK_MB} MiB over the second half, net of the Java heap's committed size (which the
 * collector sizes as it likes). Each cycle here allocates at least one 1 MiB device tensor (written,
 * so its pages are resident) and an engine or a program, so a leak of any of them grows RSS by
 * more than 100 MiB over the second half of every soak: far above the slack, which covers the
 * allocator's and the JIT's drift.
 */
class LeakSoakTest {
    static final int JAVA_ENGINE_CYCLES = 2000;
    static final int OPENCL_ENGINE_CYCLES = 200;
    static final int TENSOR_CYCLES = 2000;
    static final long RSS_SLACK_MB = 48;
    /** Elements of the tensors each cycle uploads: 1 MiB of float32. */
    static final int ELEMENTS = 256 * 1024;

    static List<Backends.Named> backends() {
        return Backends.all();
    }

    // ------------------------------------------------------------------ soaks

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void javaEnginesCreatedAndClosedLeaveMemoryAndThreadsFlat() {
        int threadsBefore = ManagementFactory.getThreadMXBean().getThreadCount();
        float[] x = Data.gaussian("soak java", ELEMENTS, 0, 1);
        soak("Java engine create/upload/run/close", JAVA_ENGINE_CYCLES, i -> {
            try (NormEngine e = NormEngine.create(EngineOptions.java().withThreads(2));
                    DeviceTensor dx = e.upload(x, 256, 1024);
                    NormResult r = e.layerNorm(LayerNorm.defaults(), dx, null, null)) {
                touch(r);
            }
        });
        waitForThreads(threadsBefore);
    }

    @ParameterizedTest(name = "{0}", allowZeroInvocations = true)
    @MethodSource("openClDevices")
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void openClEnginesCreatedAndClosedLeaveMemoryFlatAndCloseTheirTensors(DeviceInfo device) {
        float[] x = Data.gaussian("soak cl", ELEMENTS, 0, 1);
        List<String> notClosed = new ArrayList<>();
        soak("OpenCL engine create/upload/run/close on " + device.label(), OPENCL_ENGINE_CYCLES, i -> {
            NormEngine e = NormEngine.create(EngineOptions.opencl(Integer.toString(device.index())));
            DeviceTensor dx = e.upload(x, 256, 1024);
            NormResult r = e.layerNorm(LayerNorm.defaults(), dx, null, null);
            touch(r);
            // Neither the input nor the results are closed: closing the engine must release them.
            e.close();
            for (Tensor t : new Tensor[] {dx, r.y(), r.mean(), r.invStdDev()}) {
                if (!((DeviceTensor) t).isClosed()) {
                    notClosed.add("cycle " + i + ": " + t);
                }
            }
            liveBuffers(e).ifPresent(n -> {
                if (n > 0) {
                    notClosed.add("cycle " + i + ": " + n + " device buffers still allocated after close");
                }
            });
        });
        assertTrue(notClosed.isEmpty(), () -> notClosed.size() + " tensors survived their engine: "
                + notClosed.subList(0, Math.min(5, notClosed.size())));
    }

    static List<DeviceInfo> openClDevices() {
        return Backends.requireDevicesInCi();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void deviceTensorsCreatedAndClosedLeaveMemoryFlatAndAllocationsAtZero(Backends.Named backend) {
        NormEngine e = backend.engine();
        float[] x = Data.gaussian("soak tensors", ELEMENTS, 3, 2);
        OptionalInt before = liveBuffers(e);
        soak("device tensors upload/run/close on " + backend, TENSOR_CYCLES, i -> {
            try (DeviceTensor dx = e.upload(x, 512, 512);
                    NormResult r = e.layerNorm(LayerNorm.defaults(), dx, null, null)) {
                touch(r);
            }
        });
        OptionalInt after = liveBuffers(e);
        System.out.println("  live device buffers of " + backend + ": before " + describe(before) + ", after "
                + describe(after));
        assertEquals(before, after, "device buffers allocated before and after " + TENSOR_CYCLES + " cycles");
    }

    // ------------------------------------------------------------------ closing and the Cleaner

    /**
     * Closing an engine must close the tensors it still owns ({@link DeviceTensor#isClosed()}, "or
     * released with its engine"; NormEngine#close: "Releases the backend and every tensor this
     * engine still owns"). The OpenCL backend does (checked in the soak above); this checks it for
     * every backend.
     */
    @ParameterizedTest(name = "{0}", allowZeroInvocations = true)
    @MethodSource("freshEngines")
    void closingAnEngineClosesItsTensors(String name, EngineOptions options, String family) {
        NormEngine e = create(options, family);
        DeviceTensor dx = e.upload(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        DeviceTensor full = e.full(org.normcl.Shape.of(4), 1f);
        NormResult r = e.layerNorm(LayerNorm.defaults(), dx, null, null);
        e.close();
        for (Tensor t : new Tensor[] {dx, full, r.y(), r.mean(), r.invStdDev()}) {
            assertTrue(((DeviceTensor) t).isClosed(), name + ": " + t + " is not closed after its engine was closed");
        }
    }

    static List<org.junit.jupiter.params.provider.Arguments> freshEngines() {
        List<org.junit.jupiter.params.provider.Arguments> l = new ArrayList<>();
        for (DeviceInfo d : Backends.requireDevicesInCi()) {
            l.add(org.junit.jupiter.params.provider.Arguments.of("opencl#" + d.index(),
                    EngineOptions.opencl(Integer.toString(d.index())), null));
        }
        return l;
    }

    /** The Java backend's half of {@link #closingAnEngineClosesItsTensors}. */
    @Test
    void closingAJavaEngineClosesItsTensors() {
        closingAnEngineClosesItsTensors("java", EngineOptions.java(), null);
    }

    /**
     * Tensors dropped without being closed are released by the Cleaner, which logs a warning naming
     * the shape. A fresh engine per backend, so that its device-buffer count is this test's alone;
     * the shape [13, 17] is this test's alone too.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("cleanerEngines")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void unclosedTensorsAreReleasedByTheCleanerWithAWarning(String name, EngineOptions options) {
        Logger logger = (Logger) LoggerFactory.getLogger(DeviceTensor.class);
        ListAppender<ILoggingEvent> appender = new ListAppender<>();
        appender.start();
        logger.addAppender(appender);
        try (NormEngine e = NormEngine.create(options)) {
            OptionalInt before = liveBuffers(e);
            int dropped = 40;
            dropTensors(e, dropped);
            if (before.isPresent()) {
                assertEquals(before.getAsInt() + 3 * dropped, liveBuffers(e).getAsInt(), "buffers while referenced");
            }
            boolean released = gcUntil(() -> count(appender, "DeviceTensor[13, 17] was not closed") >= 2 * dropped
                    && count(appender, "DeviceTensor[13, 1] was not closed") >= dropped
                    && (before.isEmpty() || liveBuffers(e).getAsInt() == before.getAsInt()), 20_000);
            int big = count(appender, "DeviceTensor[13, 17] was not closed; released by the cleaner");
            int small = count(appender, "DeviceTensor[13, 1] was not closed; released by the cleaner");
            System.out.println("  Cleaner on " + name + ": " + (big + small) + " warnings for " + 3 * dropped
                    + " dropped tensors; device buffers before " + describe(before) + ", after "
                    + describe(liveBuffers(e)));
            assertTrue(released, name + ": after System.gc(), warnings for " + big + " + " + small + " of "
                    + 2 * dropped + " + " + dropped + " dropped tensors; device buffers " + describe(liveBuffers(e))
                    + " (before " + describe(before) + ")");
        } finally {
            logger.detachAppender(appender);
        }
    }

    static List<org.junit.jupiter.params.provider.Arguments> cleanerEngines() {
        List<org.junit.jupiter.params.provider.Arguments> l = new ArrayList<>();
        l.add(org.junit.jupiter.params.provider.Arguments.of("java", EngineOptions.java()));
        l.addAll(freshEngines().stream().map(a -> org.junit.jupiter.params.provider.Arguments.of(a.get()[0],
                a.get()[1])).toList());
        return l;
    }

    /**
     * Per iteration: uploads X [13, 17] and runs a layer norm on it; drops X, the detached Y [13, 17]
     * and InvStdDev [13, 1] unclosed (closing only Mean).
     */
    private static void dropTensors(NormEngine e, int n) {
        for (int i = 0; i < n; i++) {
            DeviceTensor x = e.upload(new float[13 * 17], 13, 17);
            NormResult r = e.layerNorm(LayerNorm.defaults(), x, null, null);
            r.detachY();
            ((DeviceTensor) r.mean()).close();
        }
    }

    private static int count(ListAppender<ILoggingEvent> appender, String prefix) {
        synchronized (appender) {
            return (int) appender.list.stream().filter(ev -> ev.getLevel() == ch.qos.logback.classic.Level.WARN
                    && ev.getFormattedMessage().startsWith(prefix)).count();
        }
    }

    // ------------------------------------------------------------------ helpers

    /** A memory sample: the process's resident set, split into the Java heap's mapping and the rest. */
    record Memory(long rssKb, long heapRssKb, long heapUsedKb) {
        long nativeKb() {
            return rssKb - heapRssKb;
        }

        static Memory sample() {
            System.gc();
            long[] heap = heapRange();
            long rss = 0;
            long heapRss = 0;
            long from = 0;
            long to = 0;
            try {
                for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                    if (!line.isEmpty() && Character.digit(line.charAt(0), 16) >= 0 && line.indexOf('-') > 0
                            && line.indexOf(' ') > line.indexOf('-')) {
                        // A mapping's header: "start-end perms offset dev inode path".
                        String[] range = line.substring(0, line.indexOf(' ')).split("-");
                        from = Long.parseUnsignedLong(range[0], 16);
                        to = Long.parseUnsignedLong(range[1], 16);
                    } else if (line.startsWith("Rss:")) {
                        long r = kb(line);
                        rss += r;
                        if (heap != null && from >= heap[0] && to <= heap[1]) {
                            heapRss += r;
                        }
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            long used = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed() / 1024;
            return new Memory(rss, heapRss, used);
        }

        /**
         * The Java heap's reserved address range, from the GC.heap_info diagnostic command
         * ("... [0x0000000680000000, 0x0000000800000000)"), or null if it cannot be read. The heap's
         * pages become resident as the collector first uses them, whatever the code under test does,
         * so they are counted apart.
         */
        private static long[] heapRange() {
            try {
                Object info = ManagementFactory.getPlatformMBeanServer().invoke(
                        new javax.management.ObjectName("com.sun.management:type=DiagnosticCommand"), "gcHeapInfo",
                        new Object[] {null}, new String[] {String[].class.getName()});
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\[0x([0-9a-f]+), 0x([0-9a-f]+)\\)")
                        .matcher(String.valueOf(info));
                return m.find() ? new long[] {Long.parseUnsignedLong(m.group(1), 16),
                    Long.parseUnsignedLong(m.group(2), 16)} : null;
            } catch (javax.management.JMException | RuntimeException e) {
                return null;
            }
        }

        private static long kb(String line) {
            return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "RSS %d MiB (Java heap %d MiB resident, %d MiB live; other %d MiB)",
                    rssKb / 1024, heapRssKb / 1024, heapUsedKb / 1024, nativeKb() / 1024);
        }
    }

    /**
     * Runs {@code cycles} cycles, sampling memory after a GC at 1/4 (end of warm-up), 1/2 and the
     * end; asserts that over the second half the memory outside the Java heap (native: driver,
     * device buffers, thread stacks, JIT) and the heap's live data each grow by less than
     * {@link #RSS_SLACK_MB}.
     */
    private static void soak(String what, int cycles, IntConsumer cycle) {
        Memory start = Memory.sample();
        long t0 = System.nanoTime();
        Memory[] at = new Memory[3];
        int[] marks = {cycles / 4, cycles / 2, cycles};
        int m = 0;
        for (int i = 0; i < cycles; i++) {
            cycle.accept(i);
            if (i + 1 == marks[m]) {
                at[m++] = Memory.sample();
            }
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        long nativeGrowth = at[2].nativeKb() - at[1].nativeKb();
        long liveGrowth = at[2].heapUsedKb() - at[1].heapUsedKb();
        System.out.printf(Locale.ROOT, "LeakSoakTest %s: %d cycles in %.1f s (%.2f ms each)%n  before: %s%n"
                + "  after warm-up (%d cycles): %s%n  at half: %s%n  at the end: %s%n"
                + "  second half: native %+d KiB, live heap %+d KiB (allowed %d MiB each)%n", what, cycles, seconds,
                seconds * 1000 / cycles, start, marks[0], at[0], at[1], at[2], nativeGrowth, liveGrowth, RSS_SLACK_MB);
        assertTrue(nativeGrowth < RSS_SLACK_MB * 1024, what + ": memory outside the Java heap grew by "
                + nativeGrowth / 1024 + " MiB over the second half of " + cycles + " cycles");
        assertTrue(liveGrowth < RSS_SLACK_MB * 1024, what + ": live Java heap grew by " + liveGrowth / 1024
                + " MiB over the second half of " + cycles + " cycles");
    }

    /** Reads the statistics back, so the work has really been done (and a lazy driver has allocated). */
    private static void touch(NormResult r) {
        assertTrue(r.invStdDev().toHost().data().length > 0);
    }

    private static NormEngine create(EngineOptions options, String family) {
        if (family == null) {
            return NormEngine.create(options);
        }
        String previous = System.getProperty("normcl.kernels");
        System.setProperty("normcl.kernels", family);
        try {
            return NormEngine.create(options);
        } finally {
            if (previous == null) {
                System.clearProperty("normcl.kernels");
            } else {
                System.setProperty("normcl.kernels", previous);
            }
        }
    }

    private static void waitForThreads(int before) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        int now = ManagementFactory.getThreadMXBean().getThreadCount();
        while (now > before + 2 && System.nanoTime() < deadline) {
            sleep(50);
            now = ManagementFactory.getThreadMXBean().getThreadCount();
        }
        System.out.println("  threads before " + before + ", after " + now);
        assertTrue(now <= before + 2, "threads: " + before + " before, " + now + " after the Java engine soak");
    }

    /** Runs System.gc() until the condition holds or the time is up; returns whether it holds. */
    private static boolean gcUntil(java.util.function.BooleanSupplier done, long millis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        do {
            System.gc();
            sleep(20);
            if (done.getAsBoolean()) {
                return true;
            }
        } while (System.nanoTime() < deadline);
        return done.getAsBoolean();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** The number of buffers the engine holds that have not been closed ({@link NormEngine#liveBuffers()}). */
    static OptionalInt liveBuffers(NormEngine e) {
        return OptionalInt.of(e.liveBuffers());
    }

    private static String describe(OptionalInt n) {
        return n.isPresent() ? Integer.toString(n.getAsInt()) : "(not counted by this backend)";
    }
}
