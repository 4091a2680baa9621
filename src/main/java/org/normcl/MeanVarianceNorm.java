package org.normcl;

import java.util.Arrays;

/**
 * MeanVarianceNormalization, as ONNX defines it (opset 13):
 * {@code Y = (X - mean) / (sqrt(var) + epsilon)} with mean and population variance taken over
 * {@code axes} (default [0, 2, 3]: per channel of an NCHW tensor) and epsilon 1e-9 added
 * <em>outside</em> the square root.
 *
 * <p>The kept (non-reduced) dimensions must be consecutive, which covers every use in practice:
 * [0, 2, 3] on NCHW, trailing axes (per row), or all axes. Other axis sets are rejected with a
 * message.
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class MeanVarianceNorm {
    private static final MeanVarianceNorm DEFAULTS = new MeanVarianceNorm(new int[] {0, 2, 3}, 1e-9f);

    private final int[] axes;
    private final float epsilon;

    private MeanVarianceNorm(int[] axes, float epsilon) {
        this.axes = axes;
        this.epsilon = epsilon;
    }

    /** @return axes [0, 2, 3], epsilon 1e-9 */
    public static MeanVarianceNorm defaults() {
        return DEFAULTS;
    }

    /**
     * @param axes the reduced dimensions; negative values count from the end
     * @return a copy with these axes
     */
    public MeanVarianceNorm withAxes(int... axes) {
        if (axes == null || axes.length == 0) {
            throw new IllegalArgumentException("axes must name at least one dimension");
        }
        return new MeanVarianceNorm(axes.clone(), epsilon);
    }

    /**
     * @param epsilon added to the standard deviation; rounded to float32
     * @return a copy with this epsilon
     */
    public MeanVarianceNorm withEpsilon(double epsilon) {
        return new MeanVarianceNorm(axes, Validation.epsilon("epsilon", epsilon));
    }

    /** @return a copy of the reduced axes, as given */
    public int[] axes() {
        return axes.clone();
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    @Override
    public String toString() {
        return "MeanVarianceNorm{axes=" + Arrays.toString(axes) + ", epsilon=" + epsilon + "}";
    }
}
