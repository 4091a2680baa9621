package org.normcl;

import java.util.List;

/**
 * What an OpenCL device reports about itself, as read by {@link NormEngine#devices()}.
 *
 * @param index position in the list of all devices of all platforms (what {@code --device N} takes)
 * @param platformName the platform's name
 * @param platformVendor the platform's vendor
 * @param platformVersion the platform's OpenCL version string
 * @param name the device name
 * @param vendor the device vendor
 * @param type GPU, CPU, ACCELERATOR or OTHER
 * @param deviceVersion the device's OpenCL version string
 * @param driverVersion the driver version
 * @param openclCVersion the highest OpenCL C version the compiler accepts
 * @param computeUnits compute units
 * @param maxClockMHz maximum clock frequency in MHz
 * @param globalMemBytes global memory size
 * @param localMemBytes local memory per work-group
 * @param maxAllocBytes largest single buffer ({@code CL_DEVICE_MAX_MEM_ALLOC_SIZE})
 * @param maxWorkGroupSize largest work-group
 * @param extensions the extension names
 * @param fp16 whether {@code cl_khr_fp16} is present
 * @param fp64 whether {@code cl_khr_fp64} (or double support) is present
 * @param preferredVectorWidthFloat preferred float vector width
 * @param preferredVectorWidthHalf preferred half vector width (0 without fp16)
 * @param preferredVectorWidthDouble preferred double vector width (0 without fp64)
 */
public record DeviceInfo(int index, String platformName, String platformVendor, String platformVersion, String name,
        String vendor, String type, String deviceVersion, String driverVersion, String openclCVersion,
        int computeUnits, int maxClockMHz, long globalMemBytes, long localMemBytes, long maxAllocBytes,
        long maxWorkGroupSize, List<String> extensions, boolean fp16, boolean fp64, int preferredVectorWidthFloat,
        int preferredVectorWidthHalf, int preferredVectorWidthDouble) {

    /** @return whether this is a GPU */
    public boolean isGpu() {
        return "GPU".equals(type);
    }

    /** @return whether this is a CPU */
    public boolean isCpu() {
        return "CPU".equals(type);
    }

    /** @return {@code "#index name (platform)"} */
    public String label() {
        return "#" + index + " " + name + " (" + platformName + ")";
    }
}
