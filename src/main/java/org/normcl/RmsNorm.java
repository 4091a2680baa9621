package org.normcl;

/**
 * RMSNormalization, as ONNX defines it (opset 23): for each index of {@code X.shape[:axis]},
 * <pre>
 *   InvRms = 1 / sqrt(mean(X[i, ...]^2) + epsilon)
 *   Y      = X * InvRms * Scale                           (Scale optional, shape X.shape[axis:])
 * </pre>
 * The result's {@link NormResult#invStdDev()} holds {@code InvRms} (shape
 * {@code X.shape[:axis] + [1] * (rank - axis)}); its {@link NormResult#mean()} is null.
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class RmsNorm {
    private static final RmsNorm DEFAULTS = new RmsNorm(-1, 1e-5f);

    private final int axis;
    private final float epsilon;

    private RmsNorm(int axis, float epsilon) {
        this.axis = axis;
        this.epsilon = epsilon;
    }

    /** @return axis -1, epsilon 1e-5 */
    public static RmsNorm defaults() {
        return DEFAULTS;
    }

    /**
     * @param axis the first normalized dimension; negative counts from the end
     * @return a copy with this axis
     */
    public RmsNorm withAxis(int axis) {
        return new RmsNorm(axis, epsilon);
    }

    /**
     * @param epsilon added to the mean square; rounded to float32
     * @return a copy with this epsilon
     * @throws IllegalArgumentException unless epsilon is finite and greater than zero
     */
    public RmsNorm withEpsilon(double epsilon) {
        return new RmsNorm(axis, Validation.epsilon("epsilon", epsilon));
    }

    /** @return the first normalized dimension, as given */
    public int axis() {
        return axis;
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    @Override
    public String toString() {
        return "RmsNorm{axis=" + axis + ", epsilon=" + epsilon + "}";
    }
}
