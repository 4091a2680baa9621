package org.normcl.backend;

/**
 * A tensor viewed as (outer, channels, inner) with statistics per channel over the outer and inner
 * dimensions: batch normalization (outer = N, inner = D1*...*Dk) and mean-variance normalization
 * over all but one block of consecutive dimensions.
 *
 * @param outer product of the dimensions before the channel block
 * @param channels product of the kept (channel) dimensions
 * @param inner product of the dimensions after the channel block
 * @param mode {@link StatMode#MEAN_VAR} or {@link StatMode#MEAN_VAR_EPS_OUTSIDE}
 * @param epsilon the epsilon
 */
public record ChannelPlan(long outer, long channels, long inner, StatMode mode, float epsilon) {

    /**
     * Creates the plan, checking its extents and mode.
     *
     * @param outer product of the dimensions before the channel block
     * @param channels product of the kept (channel) dimensions
     * @param inner product of the dimensions after the channel block
     * @param mode {@link StatMode#MEAN_VAR} or {@link StatMode#MEAN_VAR_EPS_OUTSIDE}
     * @param epsilon the epsilon
     * @throws IllegalArgumentException if {@code outer} or {@code inner} is negative, if
     *     {@code channels} is less than 1, or if {@code mode} is {@link StatMode#RMS}
     */
    public ChannelPlan {
        if (outer < 0 || channels < 1 || inner < 0 || mode == StatMode.RMS) {
            throw new IllegalArgumentException("inconsistent channel plan: outer=" + outer + " channels=" + channels
                    + " inner=" + inner + " mode=" + mode);
        }
    }

    /** @return values per channel (outer * inner) */
    public long perChannel() {
        return outer * inner;
    }

    /** @return total elements */
    public long elements() {
        return outer * channels * inner;
    }
}
