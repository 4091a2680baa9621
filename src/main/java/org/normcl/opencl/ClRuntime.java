package org.normcl.opencl;

import static org.jocl.CL.CL_DEVICE_TYPE_ALL;
import static org.jocl.CL.CL_SUCCESS;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

import org.jocl.CL;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;
import org.normcl.DeviceInfo;
import org.normcl.NormException;
import org.normcl.backend.Backend;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds the OpenCL library, platforms and devices (once per process) and opens backends on them.
 *
 * <p>JOCL loads {@code libOpenCL.so} by that exact name. When it is missing, or no platform is
 * installed, {@link #unavailableReason()} says so in words a user can act on (which Debian
 * package to install), and the rest of NormCL uses the Java backend.
 */
public final class ClRuntime {
    private static final Logger LOG = LoggerFactory.getLogger(ClRuntime.class);

    private ClRuntime() {
    }

    /** A device found by the scan, with its JOCL handles. */
    record Found(DeviceInfo info, cl_platform_id platform, cl_device_id device) {
    }

    private record Scan(List<Found> devices, String unavailableReason) {
    }

    private static final class Holder {
        static final Scan SCAN = scan();
    }

    /** @return every device of every platform, in index order; empty when OpenCL is unavailable */
    public static List<DeviceInfo> devices() {
        return Holder.SCAN.devices().stream().map(Found::info).toList();
    }

    /** @return why OpenCL cannot be used, or empty when at least one device exists */
    public static Optional<String> unavailableReason() {
        return Optional.ofNullable(Holder.SCAN.unavailableReason());
    }

    /**
     * Opens a backend on a device.
     *
     * @param selector a device index, a case-insensitive part of a device or platform name, or null
     *     for the best device (GPU, then accelerator, then CPU; more compute units first)
     * @return the backend
     * @throws NormException if OpenCL is unavailable or the device cannot be used
     * @throws IllegalArgumentException if the selector matches no device
     */
    public static Backend open(String selector) {
        return new ClBackend(find(selector));
    }

    /** Opens a backend with an explicit program cache (empty for none): how tests control it. */
    static ClBackend open(String selector, Optional<ProgramCache> programCache) {
        Found f = find(selector);
        return new ClBackend(f, programCache, Tuning.defaults());
    }

    /**
     * Opens a backend with explicit launch parameters instead of the device's stored ones: how
     * {@code normcl tune} times its candidates.
     *
     * @param selector as for {@link #open(String)}
     * @param tuning the parameters
     * @return the backend
     * @throws NormException if OpenCL is unavailable or the device cannot be used
     * @throws IllegalArgumentException if the selector matches no device
     */
    public static Backend open(String selector, Tuning tuning) {
        Found f = find(selector);
        return new ClBackend(f, ProgramCache.forDevice(f.info()), tuning);
    }

    /**
     * @param selector as for {@link #open(String)}
     * @return the device {@link #open(String)} would open
     * @throws NormException if OpenCL is unavailable
     * @throws IllegalArgumentException if the selector matches no device
     */
    public static DeviceInfo device(String selector) {
        return find(selector).info();
    }

    /** Opens a backend with an explicit host-transfer mode and staging chunk: how tests exercise both. */
    static ClBackend open(String selector, HostTransfers.Mode transfers, int stagingChunkBytes) {
        return new ClBackend(find(selector), Optional.empty(), Tuning.defaults(), transfers, stagingChunkBytes);
    }

    private static Found find(String selector) {
        Scan scan = Holder.SCAN;
        if (scan.unavailableReason() != null) {
            throw new NormException("OpenCL is not available: " + scan.unavailableReason());
        }
        return select(scan.devices(), selector);
    }

    static Found select(List<Found> all, String selector) {
        if (selector == null || selector.isBlank()) {
            return all.stream().min(Comparator.comparingInt((Found f) -> typeRank(f.info().type()))
                    .thenComparingInt(f -> -f.info().computeUnits() * Math.max(1, f.info().maxClockMHz()))
                    .thenComparingInt(f -> f.info().index())).orElseThrow();
        }
        String s = selector.trim();
        if (s.chars().allMatch(Character::isDigit)) {
            int idx;
            try {
                idx = Integer.parseInt(s);
            } catch (NumberFormatException e) {
                idx = -1;
            }
            for (Found f : all) {
                if (f.info().index() == idx) {
                    return f;
                }
            }
        } else {
            String needle = s.toLowerCase(Locale.ROOT);
            for (Found f : all) {
                if (f.info().name().toLowerCase(Locale.ROOT).contains(needle)
                        || f.info().platformName().toLowerCase(Locale.ROOT).contains(needle)) {
                    return f;
                }
            }
        }
        StringBuilder sb = new StringBuilder();
        for (Found f : all) {
            sb.append("\n  ").append(f.info().label());
        }
        throw new IllegalArgumentException("device '" + selector + "' matches no OpenCL device: expected an index"
                + " or part of a name among:" + sb);
    }

    private static int typeRank(String type) {
        switch (type) {
            case "GPU":
                return 0;
            case "ACCELERATOR":
                return 1;
            case "CPU":
                return 2;
            default:
                return 3;
        }
    }

    private static Scan scan() {
        try {
            CL.setExceptionsEnabled(false);
            int[] n = new int[1];
            int err = CL.clGetPlatformIDs(0, null, n);
            if (err == -1001 || (err == CL_SUCCESS && n[0] == 0)) {
                return new Scan(List.of(), "no OpenCL platform is installed (the ICD loader found no driver in"
                        + " /etc/OpenCL/vendors): install one, e.g. 'apt-get install pocl-opencl-icd' for CPUs or"
                        + " your GPU vendor's OpenCL driver");
            }
            ClErrors.check(err, "clGetPlatformIDs");
            cl_platform_id[] platforms = new cl_platform_id[n[0]];
            ClErrors.check(CL.clGetPlatformIDs(n[0], platforms, null), "clGetPlatformIDs");
            List<Found> found = new ArrayList<>();
            for (cl_platform_id p : platforms) {
                int[] nd = new int[1];
                int e = CL.clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, null, nd);
                if (e == CL.CL_DEVICE_NOT_FOUND || nd[0] == 0) {
                    continue;
                }
                ClErrors.check(e, "clGetDeviceIDs");
                cl_device_id[] ds = new cl_device_id[nd[0]];
                ClErrors.check(CL.clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, nd[0], ds, null), "clGetDeviceIDs");
                for (cl_device_id d : ds) {
                    found.add(new Found(ClInfo.describe(found.size(), p, d), p, d));
                }
            }
            if (found.isEmpty()) {
                return new Scan(List.of(), "OpenCL platforms exist but report no device");
            }
            SignalChaining.advice(found.stream().map(Found::info).toList(), SignalChaining.libjsigLoaded())
                    .ifPresent(advice -> LOG.warn("{}", advice));
            return new Scan(List.copyOf(found), null);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
            String reason = missingLibraryReason();
            LOG.debug("OpenCL library could not be loaded: {}", e.toString());
            return new Scan(List.of(), reason);
        } catch (RuntimeException e) {
            return new Scan(List.of(), "OpenCL platform query failed: " + e.getMessage());
        }
    }

    /** Explains a failure to load libOpenCL.so in terms of the files present and the package to install. */
    static String missingLibraryReason() {
        String[] dirs = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib"};
        for (String dir : dirs) {
            if (Files.exists(Path.of(dir, "libOpenCL.so.1")) && !Files.exists(Path.of(dir, "libOpenCL.so"))) {
                return "libOpenCL.so was not found (only " + dir + "/libOpenCL.so.1 is installed, and JOCL loads"
                        + " libOpenCL.so by that exact name): install the Debian package ocl-icd-opencl-dev"
                        + " ('apt-get install ocl-icd-opencl-dev')";
            }
        }
        return "libOpenCL.so was not found: install an OpenCL ICD loader and a driver, e.g. 'apt-get install"
                + " ocl-icd-opencl-dev pocl-opencl-icd' on Debian/Ubuntu (pocl-opencl-icd runs on the CPU)";
    }
}
