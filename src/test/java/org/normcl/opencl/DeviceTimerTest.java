package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;
import org.normcl.jvm.JavaBackend;

/**
 * The device timer {@code normcl bench} uses: OpenCL's is the span of the recorded commands from
 * profiling events, which must lie within the wall time around them; the Java backend has none.
 */
class DeviceTimerTest {
    @Test
    void spanOfTheRecordedCommandsLiesWithinTheirWallTime() {
        DeviceInfo device = ClTestDevices.firstNonSimulator();
        try (ClBackend be = ClRuntime.open(Integer.toString(device.index()), Optional.empty());
                Buffer x = be.allocate(DType.FLOAT32, 1 << 20);
                Buffer y = be.allocate(DType.FLOAT32, 1 << 20);
                Buffer inv = be.allocate(DType.FLOAT32, 1 << 10)) {
            assertEquals(-1, be.stopDeviceTimer(), "nothing was being recorded");
            assertTrue(be.startDeviceTimer());
            assertEquals(0, be.stopDeviceTimer(), "no command ran");
            be.fill(x, 1f);
            RowNormPlan plan = RowNormPlan.contiguous(1 << 10, 1 << 10, StatMode.RMS, 1e-5f, 1, 1 << 10, 1, false,
                    false);
            for (int i = 0; i < 3; i++) {
                long t0 = System.nanoTime();
                assertTrue(be.startDeviceTimer());
                be.rowNorm(plan, x, null, null, y, null, inv);
                be.copy(x, y);
                long span = be.stopDeviceTimer();
                long wall = System.nanoTime() - t0;
                assertTrue(span > 0 && span <= wall, "device span " + span + " ns within the wall time " + wall);
            }
            assertEquals(-1, be.stopDeviceTimer(), "stopped");
        }
    }

    @Test
    void theJavaBackendRecordsNoDeviceTime() {
        try (JavaBackend be = new JavaBackend(1)) {
            assertFalse(be.startDeviceTimer());
            assertEquals(-1, be.stopDeviceTimer());
        }
    }
}
