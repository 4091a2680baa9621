package org.normcl;

/**
 * BatchNormalization on {@code X} of shape (N, C, D1, ..., Dk), k &ge; 0, with per-channel
 * statistics over N and the spatial dimensions.
 *
 * <ul>
 *   <li><b>Inference</b> ({@link #training()} false, the default): uses the given running mean and
 *       variance: {@code Y = (X - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + bias[c]}.
 *   <li><b>Training</b>: uses the batch mean and biased batch variance, returns them as the saved
 *       statistics ({@link NormResult#mean()}, {@link NormResult#invStdDev()}) and, when running
 *       statistics are given, their update under the chosen {@link MomentumConvention}
 *       ({@link NormResult#runningMean()}, {@link NormResult#runningVar()}). Training with a single
 *       value per channel (N &times; D1 &times; ... = 1) is an error, as in PyTorch.
 * </ul>
 *
 * <p>Immutable; the {@code with} methods return a modified copy.
 */
public final class BatchNorm {
    private static final BatchNorm DEFAULTS = new BatchNorm(1e-5f, false, MomentumConvention.ONNX, Float.NaN);

    private final float epsilon;
    private final boolean training;
    private final MomentumConvention convention;
    private final float momentum; // NaN: the convention's default

    private BatchNorm(float epsilon, boolean training, MomentumConvention convention, float momentum) {
        this.epsilon = epsilon;
        this.training = training;
        this.convention = convention;
        this.momentum = momentum;
    }

    /** @return inference mode, epsilon 1e-5, ONNX convention with momentum 0.9 */
    public static BatchNorm defaults() {
        return DEFAULTS;
    }

    /**
     * @param epsilon added to the variance; rounded to float32
     * @return a copy with this epsilon
     * @throws IllegalArgumentException unless epsilon is finite and greater than zero
     */
    public BatchNorm withEpsilon(double epsilon) {
        return new BatchNorm(Validation.epsilon("epsilon", epsilon), training, convention, momentum);
    }

    /**
     * @param training true for batch statistics and running-statistic updates
     * @return a copy in that mode
     */
    public BatchNorm withTraining(boolean training) {
        return new BatchNorm(epsilon, training, convention, momentum);
    }

    /**
     * @param convention how momentum is read; also sets the default momentum unless one was given
     * @return a copy with this convention
     */
    public BatchNorm withConvention(MomentumConvention convention) {
        if (convention == null) {
            throw new IllegalArgumentException("convention must not be null: expected ONNX or PYTORCH");
        }
        return new BatchNorm(epsilon, training, convention, momentum);
    }

    /**
     * @param momentum in [0, 1], read as the {@link #convention()} defines it
     * @return a copy with this momentum
     */
    public BatchNorm withMomentum(double momentum) {
        return new BatchNorm(epsilon, training, convention, Validation.momentum(momentum));
    }

    /** @return the epsilon */
    public float epsilon() {
        return epsilon;
    }

    /** @return whether this is training mode */
    public boolean training() {
        return training;
    }

    /** @return the momentum convention */
    public MomentumConvention convention() {
        return convention;
    }

    /** @return the momentum: the one given, else the convention's default */
    public float momentum() {
        return Float.isNaN(momentum) ? convention.defaultMomentum() : momentum;
    }

    @Override
    public String toString() {
        return "BatchNorm{epsilon=" + epsilon + ", training=" + training + ", convention=" + convention
                + ", momentum=" + momentum() + "}";
    }
}
