package org.normcl.opencl;

import org.normcl.NormException;

/**
 * The OpenCL device stopped answering (the driver reported it unavailable, or a kernel fault
 * killed the context). The engine refuses further work on it; its device tensors are gone.
 */
public final class DeviceLostException extends NormException {
    private static final long serialVersionUID = 1L;

    DeviceLostException(String message) {
        super(message);
    }
}
