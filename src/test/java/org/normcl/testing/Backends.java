package org.normcl.testing;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.normcl.DeviceInfo;
import org.normcl.EngineOptions;
import org.normcl.NormEngine;

/**
 * The engines every operator test runs on: the Java backend, and each OpenCL device twice, once
 * with each kernel family (serial: one work-item per row, as chosen for CPUs; group: one
 * work-group per row with local-memory reductions, as chosen for GPUs), so a CPU driver in CI
 * exercises the GPU kernels too.
 *
 * <p>Engines are created once per test JVM and closed at exit. Without an OpenCL device the list
 * holds only the Java backend and a loud warning is printed; under {@code CI=true} that is an
 * error instead, because CI must run the OpenCL tests.
 */
public final class Backends {
    /** A named engine. */
    public record Named(String name, NormEngine engine) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static final Map<String, NormEngine> ENGINES = Collections.synchronizedMap(new LinkedHashMap<>());
    private static volatile List<Named> all;

    private Backends() {
    }

    /** @return whether the tests run under CI, where OpenCL is mandatory */
    public static boolean inCi() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /**
     * @return the Java engine plus three engines per OpenCL device (serial, pipelined, group kernels)
     * @throws IllegalStateException under CI when no OpenCL device exists
     */
    public static synchronized List<Named> all() {
        if (all == null) {
            List<Named> list = new ArrayList<>();
            list.add(new Named("java", engine("java", EngineOptions.java())));
            list.addAll(openCl());
            all = List.copyOf(list);
        }
        return all;
    }

    /** @return three engines per OpenCL device, one per kernel family (empty, with a warning, when there is none outside CI) */
    public static synchronized List<Named> openCl() {
        List<DeviceInfo> devices = requireDevicesInCi();
        List<Named> list = new ArrayList<>();
        for (DeviceInfo d : devices) {
            for (String family : new String[] {"serial", "pipelined", "group"}) {
                String name = "opencl#" + d.index() + "-" + family;
                list.add(new Named(name, engine(name, EngineOptions.opencl(Integer.toString(d.index())), family)));
            }
        }
        return list;
    }

    /**
     * @return the OpenCL devices
     * @throws IllegalStateException under CI when there is none
     */
    public static List<DeviceInfo> requireDevicesInCi() {
        List<DeviceInfo> devices = NormEngine.devices();
        if (devices.isEmpty()) {
            String reason = NormEngine.openClUnavailableReason().orElse("no device");
            if (inCi()) {
                throw new IllegalStateException("CI=true but no OpenCL device is available (" + reason
                        + "): the OpenCL tests must run in CI");
            }
            warnOnce(reason);
        }
        return devices;
    }

    private static boolean warned;

    private static synchronized void warnOnce(String reason) {
        if (!warned) {
            warned = true;
            System.err.println("\n**********************************************************************");
            System.err.println("* WARNING: OpenCL tests are SKIPPED: " + reason);
            System.err.println("* Only the Java backend is tested. Install OpenCL (scripts/test does it as root).");
            System.err.println("**********************************************************************\n");
        }
    }

    private static NormEngine engine(String name, EngineOptions options) {
        return engine(name, options, null);
    }

    private static NormEngine engine(String name, EngineOptions options, String family) {
        return ENGINES.computeIfAbsent(name, k -> {
            String previous = System.getProperty("normcl.kernels");
            try {
                if (family != null) {
                    System.setProperty("normcl.kernels", family);
                }
                return NormEngine.create(options);
            } finally {
                if (previous == null) {
                    System.clearProperty("normcl.kernels");
                } else {
                    System.setProperty("normcl.kernels", previous);
                }
            }
        });
    }

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> ENGINES.values().forEach(NormEngine::close)));
    }
}
