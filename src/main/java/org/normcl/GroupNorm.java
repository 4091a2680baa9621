package org.normcl;

/**
 * GroupNormalization on {@code X} of shape (N, C, D1, ..., Dk): the C channels are split into
 * {@code numGroups} groups of C / numGroups consecutive channels, and each (sample, group) is
 * normalized over its channels and spatial positions (population variance). The saved statistics
 * have shape (N, numGroups).
 *
 * <p>The affine transform is per channel (scale and bias of shape [C]: ONNX opset 21, PyTorch) by
 * default, or per group (shape [numGroups]: ONNX opset 18) with {@link Affine#PER_GROUP}.
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class GroupNorm {

    /** Which index the scale and bias are taken by. */
    public enum Affine {
        /** Scale and bias of shape [C] (ONNX opset 21, PyTorch {@code nn.GroupNorm}). */
        PER_CHANNEL,
        /** Scale and bias of shape [numGroups] (ONNX opset 18). */
        PER_GROUP
    }

    private final int numGroups;
    private final float epsilon;
    private final Affine affine;
    private final Layout layout;

    private GroupNorm(int numGroups, float epsilon, Affine affine, Layout layout) {
        this.numGroups = numGroups;
        this.epsilon = epsilon;
        this.affine = affine;
        this.layout = layout;
    }

    /**
     * @param numGroups the number of groups; must divide C
     * @return a per-channel group norm with epsilon 1e-5
     * @throws IllegalArgumentException unless numGroups &ge; 1
     */
    public static GroupNorm of(int numGroups) {
        if (numGroups < 1) {
            throw new IllegalArgumentException("numGroups = " + numGroups + ": expected a value >= 1 that divides C");
        }
        return new GroupNorm(numGroups, 1e-5f, Affine.PER_CHANNEL, Layout.CHANNELS_FIRST);
    }

    /**
     * @param epsilon added to the variance; rounded to float32
     * @return a copy with this epsilon
     */
    public GroupNorm withEpsilon(double epsilon) {
        return new GroupNorm(numGroups, Validation.epsilon("epsilon", epsilon), affine, layout);
    }

    /**
     * @param affine per channel (opset 21) or per group (opset 18)
     * @return a copy with this affine layout
     */
    public GroupNorm withAffine(Affine affine) {
        if (affine == null) {
            throw new IllegalArgumentException("affine must not be null: expected PER_CHANNEL or PER_GROUP");
        }
        return new GroupNorm(numGroups, epsilon, affine, layout);
    }

    /**
     * @param layout channels-first (N, C, D...) or channels-last (N, D..., C)
     * @return a copy for that layout
     */
    public GroupNorm withLayout(Layout layout) {
        return new GroupNorm(numGroups, epsilon, affine, Validation.layout(layout));
    }

    /** @return the memory layout */
    public Layout layout() {
        return layout;
    }

    /** @return the number of groups */
    public int numGroups() {
        return numGroups;
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    /** @return the affine layout */
    public Affine affine() {
        return affine;
    }

    @Override
    public String toString() {
        return "GroupNorm{numGroups=" + numGroups + ", epsilon=" + epsilon + ", affine=" + affine + ", layout=" + layout
                + "}";
    }
}
