package org.normcl.opencl;

import static org.jocl.CL.CL_MEM_OBJECT_ALLOCATION_FAILURE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.backend.Buffer;

/**
 * The backend's buffer cache: released buffers of hundreds of MiB are kept for the next call (a
 * new one costs page faults on a CPU driver), the cap follows the device's memory, and an
 * allocation the device refuses gives the cached buffers back and tries once more.
 */
class BufferCacheTest {
    private static final long MIB = 1L << 20;
    private DeviceInfo device;

    @BeforeEach
    void needDevice() {
        device = ClTestDevices.firstNonSimulator();
    }

    @AfterEach
    void noFaults() {
        FaultInjection.reset();
    }

    @Test
    void capIsAnEighthOfDeviceMemoryBetween64MiBAnd2GiB() {
        assertEquals(64 * MIB, ClBackend.BufferCache.capFor(withMemory(device, 256 * MIB)));
        assertEquals(1024 * MIB, ClBackend.BufferCache.capFor(withMemory(device, 8192 * MIB)));
        assertEquals(2048 * MIB, ClBackend.BufferCache.capFor(withMemory(device, 80L * 1024 * MIB)));
    }

    @Test
    void aLargeReleasedBufferIsReusedByTheNextAllocationOfItsSize() {
        assumeMemory(1024 * MIB);
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), Optional.empty())) {
            long elements = 128 * MIB / Float.BYTES;
            be.allocate(DType.FLOAT32, elements).close();
            assertEquals(128 * MIB, be.cachedBytes(), "a 128 MiB output is kept for the next call");
            try (Buffer again = be.allocate(DType.FLOAT32, elements)) {
                assertEquals(0, be.cachedBytes(), "and taken by it");
            }
        }
    }

    @Test
    void aRefusedAllocationReleasesTheCacheAndTriesOnceMore() {
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), Optional.empty())) {
            be.allocate(DType.FLOAT32, MIB / Float.BYTES).close();
            assertEquals(MIB, be.cachedBytes());
            AtomicInteger tries = new AtomicInteger();
            FaultInjection.failAllocation(bytes -> bytes == 2 * MIB && tries.getAndIncrement() == 0
                    ? CL_MEM_OBJECT_ALLOCATION_FAILURE : 0);
            try (Buffer b = be.allocate(DType.FLOAT32, 2 * MIB / Float.BYTES)) {
                assertEquals(2, tries.get(), "refused once, then created");
                assertEquals(0, be.cachedBytes(), "the cached buffer was given back first");
            }
            // A device that keeps refusing: the error names the call and the code; the backend works on.
            FaultInjection.failAllocation(bytes -> bytes == 4 * MIB ? CL_MEM_OBJECT_ALLOCATION_FAILURE : 0);
            ClException e = assertThrows(ClException.class, () -> be.allocate(DType.FLOAT32, 4 * MIB / Float.BYTES));
            assertTrue(e.getMessage().contains("clCreateBuffer") && e.getMessage().contains(
                    "CL_MEM_OBJECT_ALLOCATION_FAILURE"), e.getMessage());
            be.allocate(DType.FLOAT32, 16).close();
        }
    }

    private void assumeMemory(long bytes) {
        assumeTrue(ClBackend.BufferCache.capFor(device) >= bytes / 8,
                "device reports too little memory for a 128 MiB cache entry");
    }

    private static DeviceInfo withMemory(DeviceInfo d, long bytes) {
        return new DeviceInfo(d.index(), d.platformName(), d.platformVendor(), d.platformVersion(), d.name(),
                d.vendor(), d.type(), d.deviceVersion(), d.driverVersion(), d.openclCVersion(), d.computeUnits(),
                d.maxClockMHz(), bytes, d.localMemBytes(), d.maxAllocBytes(), d.maxWorkGroupSize(), d.extensions(),
                d.fp16(), d.fp64(), d.preferredVectorWidthFloat(), d.preferredVectorWidthHalf(),
                d.preferredVectorWidthDouble());
    }
}
