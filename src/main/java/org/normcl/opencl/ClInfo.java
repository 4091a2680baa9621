package org.normcl.opencl;

import static org.jocl.CL.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;
import org.normcl.DeviceInfo;

/** Reads platform and device properties through clGetPlatformInfo / clGetDeviceInfo. */
final class ClInfo {
    private ClInfo() {
    }

    /**
     * @return whether the device is Oclgrind's simulator, which checks kernels rather than runs them
     *     fast: it gets unoptimized builds, and no staging of host transfers (its runtime is not
     *     safe against the event waits JOCL makes from its own thread after a non-blocking copy)
     */
    static boolean isSimulator(DeviceInfo info) {
        return info.platformName().contains("Oclgrind");
    }

    static DeviceInfo describe(int index, cl_platform_id p, cl_device_id d) {
        List<String> ext = Arrays.stream(deviceString(d, CL_DEVICE_EXTENSIONS).split("\\s+"))
                .filter(s -> !s.isEmpty()).toList();
        long type = deviceLong(d, CL_DEVICE_TYPE, 8);
        boolean fp64 = ext.contains("cl_khr_fp64") || deviceLong(d, CL_DEVICE_DOUBLE_FP_CONFIG, 8) != 0;
        return new DeviceInfo(index, platformString(p, CL_PLATFORM_NAME), platformString(p, CL_PLATFORM_VENDOR),
                platformString(p, CL_PLATFORM_VERSION), deviceString(d, CL_DEVICE_NAME),
                deviceString(d, CL_DEVICE_VENDOR), typeName(type), deviceString(d, CL_DEVICE_VERSION),
                deviceString(d, CL_DRIVER_VERSION), deviceString(d, CL_DEVICE_OPENCL_C_VERSION),
                (int) deviceLong(d, CL_DEVICE_MAX_COMPUTE_UNITS, 4), (int) deviceLong(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, 4),
                deviceLong(d, CL_DEVICE_GLOBAL_MEM_SIZE, 8), deviceLong(d, CL_DEVICE_LOCAL_MEM_SIZE, 8),
                deviceLong(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, 8), deviceLong(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, -1),
                ext, ext.contains("cl_khr_fp16"), fp64,
                (int) deviceLong(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, 4),
                (int) deviceLong(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_HALF, 4),
                (int) deviceLong(d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_DOUBLE, 4));
    }

    private static String typeName(long type) {
        if ((type & CL_DEVICE_TYPE_GPU) != 0) {
            return "GPU";
        }
        if ((type & CL_DEVICE_TYPE_ACCELERATOR) != 0) {
            return "ACCELERATOR";
        }
        if ((type & CL_DEVICE_TYPE_CPU) != 0) {
            return "CPU";
        }
        return "OTHER";
    }

    static String platformString(cl_platform_id p, int param) {
        long[] size = new long[1];
        if (CL.clGetPlatformInfo(p, param, 0, null, size) != CL_SUCCESS || size[0] == 0) {
            return "";
        }
        byte[] b = new byte[(int) size[0]];
        CL.clGetPlatformInfo(p, param, b.length, Pointer.to(b), null);
        return cString(b);
    }

    static String deviceString(cl_device_id d, int param) {
        long[] size = new long[1];
        if (CL.clGetDeviceInfo(d, param, 0, null, size) != CL_SUCCESS || size[0] == 0) {
            return "";
        }
        byte[] b = new byte[(int) size[0]];
        CL.clGetDeviceInfo(d, param, b.length, Pointer.to(b), null);
        return cString(b);
    }

    /**
     * Reads an integer property of 4 or 8 bytes; {@code bytes = -1} means size_t. Returns 0 when the
     * device does not answer (an optional property on an old device).
     */
    static long deviceLong(cl_device_id d, int param, int bytes) {
        int n = bytes == -1 ? org.jocl.Sizeof.size_t : bytes;
        byte[] b = new byte[8];
        if (CL.clGetDeviceInfo(d, param, n, Pointer.to(b), null) != CL_SUCCESS) {
            return 0;
        }
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.nativeOrder());
        return n == 4 ? Integer.toUnsignedLong(bb.getInt(0)) : bb.getLong(0);
    }

    private static String cString(byte[] b) {
        int len = 0;
        while (len < b.length && b[len] != 0) {
            len++;
        }
        return new String(b, 0, len, StandardCharsets.UTF_8).trim();
    }
}
