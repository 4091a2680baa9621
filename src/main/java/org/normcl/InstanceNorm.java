package org.normcl;

/**
 * InstanceNormalization on {@code X} of shape (N, C, D1, ..., Dk): each (sample, channel) is
 * normalized over its spatial positions (population variance), then scaled and shifted per
 * channel (scale and bias of shape [C], optional here though required by ONNX). The saved
 * statistics have shape (N, C).
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class InstanceNorm {
    private static final InstanceNorm DEFAULTS = new InstanceNorm(1e-5f, Layout.CHANNELS_FIRST);

    private final float epsilon;
    private final Layout layout;

    private InstanceNorm(float epsilon, Layout layout) {
        this.epsilon = epsilon;
        this.layout = layout;
    }

    /** @return epsilon 1e-5 */
    public static InstanceNorm defaults() {
        return DEFAULTS;
    }

    /**
     * @param epsilon added to the variance; rounded to float32
     * @return a copy with this epsilon
     */
    public InstanceNorm withEpsilon(double epsilon) {
        return new InstanceNorm(Validation.epsilon("epsilon", epsilon), layout);
    }

    /**
     * @param layout channels-first (N, C, D...) or channels-last (N, D..., C)
     * @return a copy for that layout
     */
    public InstanceNorm withLayout(Layout layout) {
        return new InstanceNorm(epsilon, Validation.layout(layout));
    }

    /** @return the memory layout */
    public Layout layout() {
        return layout;
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    @Override
    public String toString() {
        return "InstanceNorm{epsilon=" + epsilon + ", layout=" + layout + "}";
    }
}
