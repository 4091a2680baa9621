package org.normcl;

/**
 * Element types a tensor can hold.
 *
 * <p>This release computes in {@link #FLOAT32} only; the other constants exist so that the API
 * does not change when reduced and double precision arrive. Passing one of them today gets an
 * {@link IllegalArgumentException} that says which types are supported.
 */
public enum DType {
    /** IEEE 754 binary32, the type every operator supports. */
    FLOAT32(4, "<f4"),
    /** IEEE 754 binary16 (not yet supported by the operators). */
    FLOAT16(2, "<f2"),
    /** bfloat16: the upper 16 bits of a binary32 (not yet supported by the operators). */
    BFLOAT16(2, "<u2"),
    /** IEEE 754 binary64 (not yet supported by the operators). */
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

    /** @return the NumPy {@code descr} string used for this type in {@code .npy} files */
    public String npyDescr() {
        return npyDescr;
    }
}
