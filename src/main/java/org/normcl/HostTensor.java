package org.normcl;

import java.util.Objects;

/**
 * A float32 tensor held in a Java array, in row-major (C) order.
 *
 * <p>The array is used as is, not copied: a host tensor is a view of the caller's data. It holds
 * no native memory and needs no closing.
 */
public final class HostTensor implements Tensor {
    private final float[] data;
    private final Shape shape;

    private HostTensor(float[] data, Shape shape) {
        this.data = data;
        this.shape = shape;
    }

    /**
     * Wraps an array as a tensor of the given shape.
     *
     * @param data the elements in row-major order; not copied
     * @param shape the shape; its element count must equal {@code data.length}
     * @return the tensor
     * @throws IllegalArgumentException if the sizes disagree
     * @throws NullPointerException if an argument is null
     */
    public static HostTensor of(float[] data, Shape shape) {
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(shape, "shape");
        if (shape.size() != data.length) {
            throw new IllegalArgumentException("data has " + data.length + " elements but shape " + shape
                    + " needs " + shape.size());
        }
        return new HostTensor(data, shape);
    }

    /**
     * Wraps an array as a tensor of the given dimensions.
     *
     * @param data the elements in row-major order; not copied
     * @param dims the dimensions, outermost first
     * @return the tensor
     */
    public static HostTensor of(float[] data, long... dims) {
        return of(data, Shape.of(dims));
    }

    /**
     * @param shape the shape
     * @return a tensor of zeros
     */
    public static HostTensor zeros(Shape shape) {
        return new HostTensor(new float[shape.intSize()], shape);
    }

    /** @return the backing array (not a copy) */
    public float[] data() {
        return data;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public DType dtype() {
        return DType.FLOAT32;
    }

    /** @return this tensor */
    @Override
    public HostTensor toHost() {
        return this;
    }

    @Override
    public String toString() {
        return "HostTensor" + shape;
    }
}
