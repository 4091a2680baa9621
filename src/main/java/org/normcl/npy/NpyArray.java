package org.normcl.npy;

import java.util.Arrays;

import org.normcl.DType;
import org.normcl.HostTensor;
import org.normcl.Shape;

/**
 * An array read from a {@code .npy} file by {@link Npy#read}: its type string, element type, shape
 * and elements. Immutable: {@link #shape()}, {@link #data()} and {@link #toTensor()} return copies.
 * Use {@link Npy#readTensor} to get the elements without the copy.
 *
 * <p>{@link #dtype()} is the element type ({@link DType#FLOAT32}, {@link DType#FLOAT16},
 * {@link DType#FLOAT64}, or {@link DType#BFLOAT16} for a {@code u2} file read as bfloat16);
 * {@link #descr()} says how the file stored it ({@code "<f4"} or, for a big-endian file,
 * {@code ">f4"}); the elements are converted to the platform's order either way.
 */
public final class NpyArray {
    private final String descr;
    private final HostTensor tensor;

    NpyArray(String descr, HostTensor tensor) {
        this.descr = descr;
        this.tensor = tensor;
    }

    /** @return the NumPy type string as written in the file, such as {@code "<f4"} or {@code ">f2"} */
    public String descr() {
        return descr;
    }

    /** @return the element type */
    public DType dtype() {
        return tensor.dtype();
    }

    /** @return a copy of the shape, outermost dimension first; empty for a scalar (shape {@code ()}) */
    public long[] shape() {
        return tensor.shape().dims();
    }

    /** @return the shape as a {@link Shape} */
    public Shape toShape() {
        return tensor.shape();
    }

    /** @return the number of elements: the product of the shape, 1 for a scalar */
    public int size() {
        return tensor.shape().intSize();
    }

    /**
     * @return a copy of the elements as float32 values, in row-major (C) order: the exact values
     *     for float32 (every bit pattern kept), float16 and bfloat16; float64 values rounded to
     *     nearest (use {@link #toTensor()} for them)
     */
    public float[] data() {
        return tensor.toFloats();
    }

    /**
     * @return a copy of the elements as float64 values (exact for every type)
     */
    public double[] toDoubles() {
        return tensor.toDoubles();
    }

    /** @return a tensor of {@link #dtype()} over a copy of the elements */
    public HostTensor toTensor() {
        Object a = tensor.array();
        long[] dims = tensor.shape().dims();
        switch (tensor.dtype()) {
            case FLOAT32:
                return HostTensor.of(((float[]) a).clone(), tensor.shape());
            case FLOAT64:
                return HostTensor.ofDoubles(((double[]) a).clone(), dims);
            default:
                return HostTensor.ofBits(((short[]) a).clone(), tensor.dtype(), dims);
        }
    }

    /** The tensor without a copy, for {@link Npy#readTensor}. */
    HostTensor tensorNoCopy() {
        return tensor;
    }

    /** @return {@code NpyArray[<descr>, [d0, d1, ...]]} */
    @Override
    public String toString() {
        return "NpyArray[" + descr + ", " + Arrays.toString(tensor.shape().dims()) + "]";
    }
}
