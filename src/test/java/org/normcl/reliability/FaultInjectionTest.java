package org.normcl.reliability;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.DeviceTensor;
import org.normcl.EngineOptions;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.opencl.ClException;
import org.normcl.opencl.DeviceLostException;
import org.normcl.opencl.FaultInjection;
import org.normcl.reference.Reference64;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.Tolerances;

/**
 * Faults a driver can produce, injected through {@link FaultInjection}: a kernel build failure,
 * CL_OUT_OF_RESOURCES from a launch, CL_MEM_OBJECT_ALLOCATION_FAILURE, and a lost device. With AUTO
 * the engine logs once and continues on the Java backend with correct results; an explicit OpenCL
 * engine throws a clear exception and stays usable after a transient fault, or refuses every
 * further call clearly after losing its device.
 */
class FaultInjectionTest {
    private static final int CL_OUT_OF_RESOURCES = -5;
    private static final int CL_MEM_OBJECT_ALLOCATION_FAILURE = -4;
    private static final int CL_DEVICE_NOT_AVAILABLE = -2;
    private static final long[] DIMS = {12, 40};
    private final float[] xs = Data.gaussian("faults", 12 * 40, 1, 2);
    private final float[] ws = Data.gaussian("faults w", 40, 1, 0.3);
    private final HostTensor x = HostTensor.of(xs, DIMS);
    private final HostTensor w = HostTensor.of(ws, 40);
    /**
     * The Java backend's Y: after a failover the results are the Java backend's own, so those are
     * compared bit for bit. It is itself checked against the float64 oracle first, so a failover
     * result equal to it is right, not merely consistent.
     */
    private float[] expected;

    @BeforeEach
    void needsOpenCl() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        assumeFalse(devices.isEmpty(), "no OpenCL device");
        try (NormEngine java = NormEngine.create(EngineOptions.java());
                NormResult r = java.layerNorm(LayerNorm.defaults(), x, w, null)) {
            expected = r.y().toHost().data().clone();
        }
        assertMatchesReference(expected, "the Java backend's Y");
    }

    /**
     * Asserts Y of layer norm (default epsilon) of x and w against the float64 oracle, within the
     * per-element bound of {@link Tolerances#element} (docs/tolerances.md): what the device must
     * still compute after a transient fault, independently of the Java backend.
     */
    private void assertMatchesReference(float[] y, String what) {
        Reference64.Normalized ref = Reference64.layerNorm(xs, DIMS, -1, 1e-5f, ws, null);
        int cols = (int) DIMS[1];
        double[] bound = new double[xs.length];
        for (int i = 0; i < xs.length; i++) {
            int row = i / cols;
            double inv = ref.invStd()[row];
            bound[i] = Tolerances.element((xs[i] - ref.mean()[row]) * inv, Math.abs(ref.mean()[row]) * inv,
                    ws[i % cols], 0, ref.y()[i]);
        }
        Tolerances.assertWithin(what, y, ref.y(), bound);
    }

    @AfterEach
    void reset() {
        FaultInjection.reset();
    }

    private static NormEngine opencl() {
        return NormEngine.create(EngineOptions.opencl("0"));
    }

    private static NormEngine auto() {
        return NormEngine.create(EngineOptions.auto().withDevice("0"));
    }

    private float[] run(NormEngine e) {
        try (NormResult r = e.layerNorm(LayerNorm.defaults(), x, w, null)) {
            return r.y().toHost().data().clone();
        }
    }

    private static float[] javaResult(HostTensor in) {
        try (NormEngine java = NormEngine.create(EngineOptions.java());
                NormResult r = java.groupNorm(GroupNorm.of(2), in, null, null)) {
            return r.y().toHost().toFloats();
        }
    }

    @Test
    void buildFailureAtCreation() {
        FaultInjection.failBuild(t -> true);
        ClException e = assertThrows(ClException.class, FaultInjectionTest::opencl);
        assertTrue(e.getMessage().contains("clBuildProgram") && e.getMessage().contains("CL_BUILD_PROGRAM_FAILURE")
                && e.getMessage().contains("build log"), e.getMessage());
        try (NormEngine a = auto()) {
            assertEquals(BackendKind.JAVA, a.backendKind(), "AUTO falls back when the kernels do not build");
            assertTrue(a.selectionReason().contains("CL_BUILD_PROGRAM_FAILURE"), a.selectionReason());
            assertArrayEquals(expected, run(a));
        }
    }

    @Test
    void buildFailureOfALaterTypeProgram() {
        HostTensor x16 = HostTensor.convert(Data.gaussian("f16", 2 * 4 * 9, 0, 1), DType.FLOAT16, 2, 4, 9);
        FaultInjection.failBuild(t -> t == DType.FLOAT16);
        try (NormEngine cl = opencl()) {
            ClException e = assertThrows(ClException.class, () -> cl.groupNorm(GroupNorm.of(2), x16, null, null));
            assertTrue(e.getMessage().contains("DTYPE_F16"), "the options of the failing build: " + e.getMessage());
            assertMatchesReference(run(cl), "float32 still runs on the device");
        }
        try (NormEngine a = auto(); NormResult r = a.groupNorm(GroupNorm.of(2), x16, null, null)) {
            assertTrue(a.isDegraded(), "AUTO continued on Java");
            assertArrayEquals(javaResult(x16), r.y().toHost().toFloats());
        }
    }

    @Test
    void outOfResourcesOnALaunch() {
        try (NormEngine cl = opencl(); NormEngine a = auto()) {
            FaultInjection.failLaunch(k -> k.startsWith("row_norm") ? CL_OUT_OF_RESOURCES : 0);
            ClException e = assertThrows(ClException.class, () -> run(cl));
            assertTrue(e.getMessage().contains("clEnqueueNDRangeKernel(row_norm_") && e.getMessage().contains(
                    "CL_OUT_OF_RESOURCES (-5)"), e.getMessage());
            assertEquals(-5, e.errorCode());
            assertArrayEquals(expected, run(a), "AUTO: the call is redone on Java");
            assertTrue(a.isDegraded());
            FaultInjection.reset();
            assertMatchesReference(run(cl), "the explicit engine stays usable after a transient fault");
            assertArrayEquals(expected, run(a), "AUTO stays on Java");
        }
    }

    @Test
    void allocationFailure() {
        try (NormEngine cl = opencl(); NormEngine a = auto()) {
            FaultInjection.failAllocation(bytes -> bytes == 12 * 40 * 4 ? CL_MEM_OBJECT_ALLOCATION_FAILURE : 0);
            ClException e = assertThrows(ClException.class, () -> run(cl));
            assertTrue(e.getMessage().contains("clCreateBuffer") && e.getMessage().contains(
                    "CL_MEM_OBJECT_ALLOCATION_FAILURE"), e.getMessage());
            assertArrayEquals(expected, run(a));
            assertTrue(a.isDegraded());
            FaultInjection.reset();
            assertMatchesReference(run(cl), "the device after a failed allocation");
            assertEquals(0, cl.liveBuffers(), "nothing leaked by the failed call");
        }
    }

    @Test
    void lostDevice() {
        try (NormEngine cl = opencl(); NormEngine a = auto()) {
            DeviceTensor onDevice = cl.upload(x);
            DeviceTensor autoTensor = a.upload(x);
            FaultInjection.failLaunch(k -> CL_DEVICE_NOT_AVAILABLE);
            assertThrows(ClException.class, () -> run(cl));
            FaultInjection.reset();
            // The device stays lost: every later call says so, and what to do.
            DeviceLostException lost = assertThrows(DeviceLostException.class, () -> run(cl));
            assertTrue(lost.getMessage().contains("is lost") && lost.getMessage().contains("create a new engine"),
                    lost.getMessage());
            assertThrows(DeviceLostException.class, onDevice::toHost);
            // AUTO: host calls continue on Java; the tensor it had on the device is gone, and says so.
            FaultInjection.failLaunch(k -> CL_DEVICE_NOT_AVAILABLE);
            assertArrayEquals(expected, run(a));
            FaultInjection.reset();
            assertTrue(a.isDegraded());
            assertArrayEquals(expected, run(a));
            assertThrows(DeviceLostException.class, () -> a.layerNorm(LayerNorm.defaults(), autoTensor, w, null));
            try (DeviceTensor fresh = a.upload(x); NormResult r = a.layerNorm(LayerNorm.defaults(), fresh, w, null)) {
                assertArrayEquals(expected, r.y().toHost().data(), "new tensors of a degraded AUTO engine live on Java");
            }
            assertFalse(onDevice.isClosed());
        }
    }
}
