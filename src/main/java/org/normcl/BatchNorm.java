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
    private static final BatchNorm DEFAULTS = new BatchNorm(1e-5f, false, MomentumConvention.ONNX, Float.NaN, 0,
            Layout.CHANNELS_FIRST);

    private final float epsilon;
    private final boolean training;
    private final MomentumConvention convention;
    private final float momentum; // NaN: the convention's default
    private final long batchesTracked; // > 0: PyTorch's cumulative moving average
    private final Layout layout;

    private BatchNorm(float epsilon, boolean training, MomentumConvention convention, float momentum,
            long batchesTracked, Layout layout) {
        this.layout = layout;
        this.epsilon = epsilon;
        this.training = training;
        this.convention = convention;
        this.momentum = momentum;
        this.batchesTracked = batchesTracked;
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
        return new BatchNorm(Validation.epsilon("epsilon", epsilon), training, convention, momentum, batchesTracked,
                layout);
    }

    /**
     * @param training true for batch statistics and running-statistic updates
     * @return a copy in that mode
     */
    public BatchNorm withTraining(boolean training) {
        return new BatchNorm(epsilon, training, convention, momentum, batchesTracked, layout);
    }

    /**
     * @param convention how momentum is read; also sets the default momentum unless one was given
     * @return a copy with this convention
     */
    public BatchNorm withConvention(MomentumConvention convention) {
        if (convention == null) {
            throw new IllegalArgumentException("convention must not be null: expected ONNX or PYTORCH");
        }
        return new BatchNorm(epsilon, training, convention, momentum, 0, layout);
    }

    /**
     * @param momentum in [0, 1], read as the {@link #convention()} defines it
     * @return a copy with this momentum
     */
    public BatchNorm withMomentum(double momentum) {
        return new BatchNorm(epsilon, training, convention, Validation.momentum(momentum), 0, layout);
    }

    /**
     * PyTorch's cumulative moving average ({@code momentum=None}): the running statistics become the
     * plain average of all batches seen,
     * <pre>
     *   running = running * (1 - 1/n) + batch * (1/n)      (unbiased running variance)
     * </pre>
     * where {@code n} is {@code num_batches_tracked} counting this batch (1 for the first batch,
     * which therefore replaces the initial running statistics).
     *
     * @param batchesTracked the number of batches seen including this one, &ge; 1
     * @return a copy using the cumulative average under the PyTorch convention
     */
    public BatchNorm withCumulativeAverage(long batchesTracked) {
        if (batchesTracked < 1) {
            throw new IllegalArgumentException("batchesTracked = " + batchesTracked
                    + ": expected >= 1 (num_batches_tracked including this batch)");
        }
        return new BatchNorm(epsilon, training, MomentumConvention.PYTORCH, Float.NaN, batchesTracked, layout);
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

    /**
     * @param layout channels-first (N, C, D...) or channels-last (N, D..., C)
     * @return a copy for that layout
     */
    public BatchNorm withLayout(Layout layout) {
        return new BatchNorm(epsilon, training, convention, momentum, batchesTracked, Validation.layout(layout));
    }

    /** @return the memory layout */
    public Layout layout() {
        return layout;
    }

    /** @return the batch count of the cumulative average, or 0 when a momentum is used */
    public long batchesTracked() {
        return batchesTracked;
    }

    /** The one place the update rule is decided: the weight of the batch statistic and the estimator. */
    org.normcl.backend.RunningUpdate runningUpdate() {
        if (batchesTracked > 0) {
            return new org.normcl.backend.RunningUpdate((float) (1.0 / batchesTracked), true);
        }
        return new org.normcl.backend.RunningUpdate(convention.batchWeight(momentum()),
                convention.unbiasedRunningVariance());
    }

    @Override
    public String toString() {
        return "BatchNorm{epsilon=" + epsilon + ", training=" + training + ", convention=" + convention
                + (batchesTracked > 0 ? ", cumulative average over " + batchesTracked + " batches"
                        : ", momentum=" + momentum()) + "}";
    }
}
