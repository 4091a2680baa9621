package org.normcl;

/** Which backend an engine runs on. */
public enum BackendKind {
    /** The best OpenCL device (GPU, then accelerator, then CPU), else the Java backend. */
    AUTO,
    /** A given OpenCL device; failure to find or use it is an error, never a silent fallback. */
    OPENCL,
    /** The multi-threaded pure-Java backend. */
    JAVA
}
