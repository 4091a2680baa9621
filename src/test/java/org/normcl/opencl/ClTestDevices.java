package org.normcl.opencl;

import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.util.List;

import org.normcl.DeviceInfo;
import org.normcl.testing.Backends;

/** The OpenCL device the opencl package's tests run on. */
final class ClTestDevices {
    private ClTestDevices() {
    }

    /**
     * @return the first device that is not the Oclgrind simulator (which skips the program cache
     *     and takes minutes for timing loops); the test is skipped when there is none, and fails
     *     under CI when there is no device at all
     */
    static DeviceInfo firstNonSimulator() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        assumeFalse(devices.isEmpty(), "no OpenCL device");
        DeviceInfo device = devices.stream().filter(d -> !ClInfo.isSimulator(d)).findFirst()
                .orElse(null);
        assumeFalse(device == null, "only Oclgrind");
        return device;
    }

    /**
     * Opens a backend on {@code device} with a kernel family forced ({@code serial}, {@code group},
     * {@code pipelined}): the family is read when the backend is created, so the property is set
     * only for that moment.
     */
    static ClBackend openWithKernels(DeviceInfo device, String family) {
        String old = System.getProperty(WorkSizing.STRATEGY_PROPERTY);
        System.setProperty(WorkSizing.STRATEGY_PROPERTY, family);
        try {
            return ClRuntime.open(Integer.toString(device.index()), java.util.Optional.empty());
        } finally {
            if (old == null) {
                System.clearProperty(WorkSizing.STRATEGY_PROPERTY);
            } else {
                System.setProperty(WorkSizing.STRATEGY_PROPERTY, old);
            }
        }
    }
}
