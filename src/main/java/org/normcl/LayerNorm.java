package org.normcl;

/**
 * LayerNormalization, as ONNX defines it (opset 17): for each index of the leading dimensions
 * {@code X.shape[:axis]}, normalize the trailing block {@code X.shape[axis:]}:
 * <pre>
 *   Mean      = mean(X[i, ...])
 *   InvStdDev = 1 / sqrt(var(X[i, ...]) + epsilon)       (population variance)
 *   Y         = (X - Mean) * InvStdDev * Scale + Bias     (Scale, Bias optional, shape X.shape[axis:])
 * </pre>
 * The saved statistics {@code Mean} and {@code InvStdDev} have shape
 * {@code X.shape[:axis] + [1] * (rank - axis)}.
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class LayerNorm {
    private static final LayerNorm DEFAULTS = new LayerNorm(-1, 1e-5f);

    private final int axis;
    private final float epsilon;

    private LayerNorm(int axis, float epsilon) {
        this.axis = axis;
        this.epsilon = epsilon;
    }

    /** @return axis -1, epsilon 1e-5 */
    public static LayerNorm defaults() {
        return DEFAULTS;
    }

    /**
     * @param axis the first normalized dimension; negative counts from the end
     * @return a copy with this axis
     */
    public LayerNorm withAxis(int axis) {
        return new LayerNorm(axis, epsilon);
    }

    /**
     * @param epsilon added to the variance; rounded to float32
     * @return a copy with this epsilon
     * @throws IllegalArgumentException unless epsilon is finite and greater than zero
     */
    public LayerNorm withEpsilon(double epsilon) {
        return new LayerNorm(axis, Validation.epsilon("epsilon", epsilon));
    }

    /** @return the first normalized dimension, as given (possibly negative) */
    public int axis() {
        return axis;
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    @Override
    public String toString() {
        return "LayerNorm{axis=" + axis + ", epsilon=" + epsilon + "}";
    }
}
