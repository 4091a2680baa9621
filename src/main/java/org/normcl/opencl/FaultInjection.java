package org.normcl.opencl;

import java.util.function.Predicate;
import java.util.function.ToIntFunction;

import org.normcl.DType;

/**
 * Test hooks that make the OpenCL backend fail as a driver can: a kernel build failure, an error
 * from a kernel launch or a buffer allocation (CL_OUT_OF_RESOURCES,
 * CL_MEM_OBJECT_ALLOCATION_FAILURE), or a lost device. Not part of the API: production code never
 * sets them, and each check costs one volatile read.
 */
public final class FaultInjection {
    private static volatile Predicate<DType> buildFailure;
    private static volatile ToIntFunction<String> launchError;
    private static volatile ToIntFunction<Long> allocationError;
    private static volatile long allocationLimit = Long.MAX_VALUE;

    private FaultInjection() {
    }

    /** @param failsFor which data types' programs fail to build (null: none) */
    public static void failBuild(Predicate<DType> failsFor) {
        buildFailure = failsFor;
    }

    /** @param errorFor the OpenCL error a launch of the named kernel returns (0: success; null: none) */
    public static void failLaunch(ToIntFunction<String> errorFor) {
        launchError = errorFor;
    }

    /** @param errorFor the OpenCL error an allocation of so many bytes returns (0: success; null: none) */
    public static void failAllocation(ToIntFunction<Long> errorFor) {
        allocationError = errorFor;
    }

    /**
     * @param bytes a smaller CL_DEVICE_MAX_MEM_ALLOC_SIZE to pretend, so that tests can exercise
     *     chunked processing with small tensors
     */
    public static void limitAllocation(long bytes) {
        allocationLimit = bytes;
    }

    /** Removes every hook. */
    public static void reset() {
        buildFailure = null;
        launchError = null;
        allocationError = null;
        allocationLimit = Long.MAX_VALUE;
    }

    static long allocationLimit() {
        return allocationLimit;
    }

    static boolean buildFails(DType data) {
        Predicate<DType> f = buildFailure;
        return f != null && f.test(data);
    }

    static int launchError(String kernel) {
        ToIntFunction<String> f = launchError;
        return f == null ? 0 : f.applyAsInt(kernel);
    }

    static int allocationError(long bytes) {
        ToIntFunction<Long> f = allocationError;
        return f == null ? 0 : f.applyAsInt(bytes);
    }
}
