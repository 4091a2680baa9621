package org.normcl.npy;

import java.util.Arrays;

import org.normcl.DType;
import org.normcl.Shape;

/**
 * An array read from a {@code .npy} file by {@link Npy#read}: its type string, shape and
 * elements. Immutable: {@link #shape()} and {@link #data()} return copies. Use
 * {@link Npy#readTensor} to get the elements without the copy.
 *
 * <p>This release decodes float32 only, so {@link #dtype()} is always {@link DType#FLOAT32};
 * {@link #descr()} still says how the file stored it ({@code "<f4"} or, for a big-endian file,
 * {@code ">f4"}); the elements are converted to Java floats either way.
 */
public final class NpyArray {
    private final String descr;
    private final DType dtype;
    private final long[] shape;
    private final float[] data;

    NpyArray(String descr, DType dtype, long[] shape, float[] data) {
        this.descr = descr;
        this.dtype = dtype;
        this.shape = shape;
        this.data = data;
    }

    /** @return the NumPy type string as written in the file, such as {@code "<f4"} or {@code ">f4"} */
    public String descr() {
        return descr;
    }

    /** @return the element type ({@link DType#FLOAT32} in this release) */
    public DType dtype() {
        return dtype;
    }

    /** @return a copy of the shape, outermost dimension first; empty for a scalar (shape {@code ()}) */
    public long[] shape() {
        return shape.clone();
    }

    /** @return the shape as a {@link Shape} */
    public Shape toShape() {
        return Shape.of(shape);
    }

    /** @return the number of elements: the product of the shape, 1 for a scalar */
    public int size() {
        return data.length;
    }

    /** @return a copy of the elements, in row-major (C) order */
    public float[] data() {
        return data.clone();
    }

    /** The elements without a copy, for {@link Npy#readTensor}. */
    float[] dataNoCopy() {
        return data;
    }

    /** @return {@code NpyArray[<descr>, [d0, d1, ...]]} */
    @Override
    public String toString() {
        return "NpyArray[" + descr + ", " + Arrays.toString(shape) + "]";
    }
}
