package org.normcl.opencl;

import java.util.List;
import java.util.Optional;

import org.normcl.DeviceInfo;
import org.normcl.NormException;
import org.normcl.backend.Backend;

/** Stub: replaced by the OpenCL runtime. */
public final class ClRuntime {
    private ClRuntime() {
    }

    public static List<DeviceInfo> devices() {
        return List.of();
    }

    public static Optional<String> unavailableReason() {
        return Optional.of("not implemented");
    }

    public static Backend open(String selector) {
        throw new NormException("OpenCL not implemented yet");
    }
}
