package org.normcl.opencl;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import org.normcl.DeviceInfo;

/**
 * Whether the JVM is protected from OpenCL drivers that take over its signal handlers.
 *
 * <p>PoCL compiles kernels with LLVM inside the process, and LLVM installs its own one-shot
 * handlers for SIGSEGV, SIGBUS, SIGILL and SIGUSR2 (PoCL adds SIGFPE) over the JVM's. HotSpot
 * uses those signals itself (safepoint polls, implicit null checks, thread suspension): when two
 * threads fault at once while LLVM's handler is installed, the second gets the default action and
 * the process dies with SIGSEGV, without an hs_err file. Seen here about once in seven full test
 * runs, in the 8-thread stress test. The cure is HotSpot's signal chaining library, preloaded so
 * that a driver's handlers are chained behind the JVM's instead of replacing them:
 * {@code LD_PRELOAD=$JAVA_HOME/lib/libjsig.so} (scripts/normcl and the test configuration set it).
 */
final class SignalChaining {
    private SignalChaining() {
    }

    /** @return whether libjsig is mapped into this process (read from /proc/self/maps; false elsewhere) */
    static boolean libjsigLoaded() {
        return mapsMentionLibjsig(Path.of("/proc/self/maps"));
    }

    static boolean mapsMentionLibjsig(Path maps) {
        try {
            return Files.isReadable(maps) && Files.readString(maps).contains("libjsig");
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * @param devices the OpenCL devices found
     * @param chained whether libjsig is loaded
     * @return advice to log when a driver known to replace the JVM's handlers is present and the
     *     handlers are not chained; empty otherwise
     */
    static Optional<String> advice(List<DeviceInfo> devices, boolean chained) {
        if (chained) {
            return Optional.empty();
        }
        return devices.stream().map(DeviceInfo::platformName)
                .filter(p -> p.contains("Portable Computing Language") || p.contains("Oclgrind")).findFirst()
                .map(p -> "the OpenCL platform '" + p + "' compiles kernels with LLVM in this process, which"
                        + " replaces the JVM's signal handlers and can kill the JVM (SIGSEGV, no hs_err file) when"
                        + " several threads run: start Java with LD_PRELOAD=" + System.getProperty("java.home")
                        + "/lib/libjsig.so (scripts/normcl does)");
    }
}
