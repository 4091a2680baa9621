package org.normcl;

/**
 * Element types a tensor can hold. X, Y, dY and dX may be any of them; scale, bias and running
 * statistics are {@link #FLOAT32} or X's type. Statistics are computed in float32 (float64 for
 * float64 data), and the saved statistics are stored in that type.
 *
 * <p>On OpenCL, float16 needs no {@code cl_khr_fp16} (it goes through {@code vload_half}); float64
 * needs {@code cl_khr_fp64}: an explicit OpenCL engine on a device without it refuses float64
 * with a clear message, and an AUTO engine runs those calls on the Java backend.
 */
public enum DType {
    /** IEEE 754 binary32, the type every operator supports. */
    FLOAT32(4, "<f4"),
    /** IEEE 754 binary16, stored as 16-bit patterns; computed in float32. */
    FLOAT16(2, "<f2"),
    /** bfloat16 (the upper 16 bits of a binary32), stored as 16-bit patterns; computed in float32. */
    BFLOAT16(2, "<u2"),
    /** IEEE 754 binary64; computed in float64. */
    FLOAT64(8, "<f8");

    private final int byteSize;
    private final String npyDescr;

    DType(int byteSize, String npyDescr) {
        this.byteSize = byteSize;
        this.npyDescr = npyDescr;
    }

    /** @return bytes per element */
    public int byteSize() {
        return byteSize;
    }

    /** @return the type statistics are computed and saved in for data of this type */
    public DType statistics() {
        return this == FLOAT64 ? FLOAT64 : FLOAT32;
    }

    /** @return the NumPy {@code descr} string used for this type in {@code .npy} files */
    public String npyDescr() {
        return npyDescr;
    }
}
