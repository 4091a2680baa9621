package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.DeviceInfo;
import org.normcl.testing.Backends;

/**
 * PoCL's in-process LLVM replaces the JVM's signal handlers, which killed the test JVM (SIGSEGV, no
 * hs_err) about once in seven full runs: the tests run with libjsig preloaded, and users without
 * it are told how to fix it.
 */
class SignalChainingTest {
    @TempDir
    Path dir;

    private static DeviceInfo on(String platform) {
        return new DeviceInfo(0, platform, "vendor", "OpenCL 3.0", "device", "vendor", "CPU", "OpenCL 3.0", "1.0",
                "OpenCL C 1.2", 2, 2000, 1L << 30, 1L << 16, 1L << 28, 1024, List.of(), false, true, 16, 0, 8);
    }

    @Test
    void adviceNamesTheFixForLlvmDriversWithoutChaining() {
        String advice = SignalChaining.advice(List.of(on("Portable Computing Language")), false).orElseThrow();
        assertTrue(advice.contains("LD_PRELOAD=") && advice.contains("libjsig.so"), advice);
        assertTrue(SignalChaining.advice(List.of(on("Portable Computing Language")), true).isEmpty(),
                "chained: nothing to say");
        assertTrue(SignalChaining.advice(List.of(on("NVIDIA CUDA")), false).isEmpty(), "not a driver known to do it");
    }

    @Test
    void readsTheProcessMaps() throws IOException {
        Path with = dir.resolve("with");
        Files.writeString(with, "7f00-7f01 r-xp 00000000 08:01 42 /usr/lib/jvm/x/lib/libjsig.so\n");
        Path without = dir.resolve("without");
        Files.writeString(without, "7f00-7f01 r-xp 00000000 08:01 42 /usr/lib/jvm/x/lib/server/libjvm.so\n");
        assertTrue(SignalChaining.mapsMentionLibjsig(with));
        assertFalse(SignalChaining.mapsMentionLibjsig(without));
        assertFalse(SignalChaining.mapsMentionLibjsig(dir.resolve("missing")));
    }

    @Test
    void theTestJvmChainsSignalsUnderCi() {
        assumeTrue(Backends.inCi() && Files.isReadable(Path.of("/proc/self/maps")), "CI on Linux only");
        assertTrue(SignalChaining.libjsigLoaded(), "the surefire configuration preloads libjsig (pom.xml, LD_PRELOAD):"
                + " without it PoCL's LLVM can kill the test JVM");
    }
}
