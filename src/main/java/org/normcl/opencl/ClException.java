package org.normcl.opencl;

import org.normcl.NormException;

/**
 * An OpenCL call failed. The message names the call and the error, for example
 * {@code clEnqueueNDRangeKernel(row_norm_group) failed: CL_OUT_OF_RESOURCES (-5)}; build failures
 * carry the compiler's log.
 */
public final class ClException extends NormException {
    private static final long serialVersionUID = 1L;
    private final int errorCode;

    ClException(String call, int errorCode, String detail) {
        super(call + " failed: " + ClErrors.name(errorCode) + " (" + errorCode + ")"
                + (detail == null || detail.isEmpty() ? "" : "\n" + detail));
        this.errorCode = errorCode;
    }

    /** @return the OpenCL error code, such as -5 for CL_OUT_OF_RESOURCES */
    public int errorCode() {
        return errorCode;
    }
}
