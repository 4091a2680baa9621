package org.normcl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.util.List;

import org.junit.jupiter.api.Test;
import org.normcl.testing.Backends;

/** How an engine is chosen: AUTO, OPENCL by index or name, JAVA. */
class EngineSelectionTest {

    @Test
    void javaIsAlwaysAvailable() {
        try (NormEngine e = NormEngine.create(EngineOptions.java().withThreads(3))) {
            assertEquals(BackendKind.JAVA, e.backendKind());
            assertTrue(e.description().contains("3 threads"), e.description());
            assertTrue(e.device().isEmpty());
        }
    }

    @Test
    void autoPrefersOpenClAndSaysWhy() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        try (NormEngine e = NormEngine.create()) {
            if (devices.isEmpty()) {
                assertEquals(BackendKind.JAVA, e.backendKind());
                assertTrue(e.selectionReason().contains("no usable OpenCL device"), e.selectionReason());
            } else {
                assertEquals(BackendKind.OPENCL, e.backendKind());
                assertTrue(e.selectionReason().startsWith("AUTO"), e.selectionReason());
                DeviceInfo best = e.device().orElseThrow();
                boolean anyGpu = devices.stream().anyMatch(DeviceInfo::isGpu);
                assertEquals(anyGpu, best.isGpu(), "GPU before CPU");
            }
        }
    }

    @Test
    void openClByIndexAndByName() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        assumeFalse(devices.isEmpty(), "no OpenCL device");
        DeviceInfo d = devices.get(0);
        try (NormEngine e = NormEngine.create(EngineOptions.opencl("0"))) {
            assertEquals(d, e.device().orElseThrow());
        }
        String part = d.name().substring(0, Math.min(6, d.name().length())).toUpperCase();
        try (NormEngine e = NormEngine.create(EngineOptions.opencl(part))) {
            assertEquals(BackendKind.OPENCL, e.backendKind());
        }
    }

    @Test
    void unknownDeviceIsAnErrorListingTheDevices() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        assumeFalse(devices.isEmpty(), "no OpenCL device");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> NormEngine.create(EngineOptions.opencl("no-such-device-xyz")));
        assertTrue(e.getMessage().contains("no-such-device-xyz") && e.getMessage().contains(devices.get(0).name()),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NormEngine.create(EngineOptions.opencl("99")));
    }

    @Test
    void autoWithAnUnknownDeviceIsAnError() {
        // Naming a device that does not exist is the caller's mistake, not a reason to fall back silently.
        assumeFalse(Backends.requireDevicesInCi().isEmpty(), "no OpenCL device");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> NormEngine.create(EngineOptions.auto().withDevice("no-such-device-xyz")));
        assertTrue(e.getMessage().contains("no-such-device-xyz"), e.getMessage());
    }

    @Test
    void deviceInfoIsComplete() {
        for (DeviceInfo d : Backends.requireDevicesInCi()) {
            assertTrue(d.computeUnits() > 0, "compute units");
            assertTrue(d.maxAllocBytes() > 0 && d.globalMemBytes() >= d.maxAllocBytes(), "memory sizes");
            assertTrue(d.maxWorkGroupSize() > 0, "work-group size");
            assertTrue(d.localMemBytes() > 0, "local memory");
            assertTrue(!d.name().isEmpty() && !d.platformName().isEmpty(), "names");
            assertTrue(d.openclCVersion().contains("OpenCL C"), d.openclCVersion());
        }
    }
}
