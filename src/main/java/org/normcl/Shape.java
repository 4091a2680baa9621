package org.normcl;

import java.util.Arrays;

/**
 * An immutable tensor shape in row-major (C) order.
 *
 * <p>Dimensions are {@code long} so that device tensors may exceed 2<sup>31</sup> elements; a
 * dimension may be zero (an empty tensor) but never negative, and the product of the nonzero
 * dimensions fits a {@code long} (so does every product of a range of dimensions).
 */
public final class Shape {
    private final long[] dims;
    private final long size;

    private Shape(long[] dims) {
        // The product of the nonzero dimensions must fit a long too: an empty tensor's other
        // dimensions still make sub-products (a slice, the extent after an axis) that callers take.
        long nonzero = 1;
        boolean empty = false;
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] < 0) {
                throw new IllegalArgumentException(
                        "shape: dimension " + i + " is " + dims[i] + ", expected >= 0 in " + Arrays.toString(dims));
            }
            empty |= dims[i] == 0;
            try {
                nonzero = Math.multiplyExact(nonzero, Math.max(1, dims[i]));
            } catch (ArithmeticException e) {
                boolean hasZero = Arrays.stream(dims).anyMatch(d -> d == 0);
                throw new IllegalArgumentException("shape: " + Arrays.toString(dims) + " has more than 2^63 elements"
                        + (hasZero ? " in its nonzero dimensions" : ""));
            }
        }
        this.dims = dims;
        this.size = empty ? 0 : nonzero;
    }

    /**
     * @param dims the dimensions, outermost first
     * @return the shape
     * @throws IllegalArgumentException if a dimension is negative or the product of the nonzero
     *     dimensions overflows a {@code long}
     */
    public static Shape of(long... dims) {
        return new Shape(Validation.notNull(dims, "dims", "the dimensions, outermost first").clone());
    }

    /**
     * @param dims the dimensions, outermost first
     * @return the shape
     */
    public static Shape of(int... dims) {
        Validation.notNull(dims, "dims", "the dimensions, outermost first");
        long[] d = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            d[i] = dims[i];
        }
        return new Shape(d);
    }

    /** @return the number of dimensions */
    public int rank() {
        return dims.length;
    }

    /**
     * @param i the dimension index; negative counts from the end
     * @return the extent of dimension {@code i}
     */
    public long dim(int i) {
        return dims[i < 0 ? i + dims.length : i];
    }

    /** @return a copy of the dimensions */
    public long[] dims() {
        return dims.clone();
    }

    /** @return the number of elements (the product of the dimensions; 1 for rank 0) */
    public long size() {
        return size;
    }

    /** @return the product of dimensions {@code [from, to)} */
    public long product(int from, int to) {
        long n = 1;
        for (int i = from; i < to; i++) {
            n *= dims[i];
        }
        return n;
    }

    /** @return the shape made of dimensions {@code [from, to)} */
    public Shape slice(int from, int to) {
        return new Shape(Arrays.copyOfRange(dims, from, to));
    }

    /**
     * Resolves a possibly negative axis against this shape's rank.
     *
     * @param axis the axis, in {@code [-rank, rank)}
     * @param parameter the parameter name used in the error message
     * @return the axis in {@code [0, rank)}
     * @throws IllegalArgumentException naming {@code parameter} if the axis is out of range
     */
    public int normalizeAxis(int axis, String parameter) {
        int r = dims.length;
        if (axis < -r || axis >= r) {
            throw new IllegalArgumentException(parameter + " = " + axis + " is out of range for input of rank " + r
                    + " " + this + ": expected a value in [" + (-r) + ", " + (r - 1) + "]");
        }
        return axis < 0 ? axis + r : axis;
    }

    /**
     * @return the size as an {@code int}, for host arrays
     * @throws IllegalArgumentException if the shape has more than {@code Integer.MAX_VALUE - 8} elements
     */
    public int intSize() {
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("shape " + this + " has " + size
                    + " elements, more than a Java array holds; keep it on the device");
        }
        return (int) size;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && Arrays.equals(dims, s.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    /** @return the shape as {@code [d0, d1, ...]} */
    @Override
    public String toString() {
        return Arrays.toString(dims);
    }
}
