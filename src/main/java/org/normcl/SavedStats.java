package org.normcl;

/**
 * The statistics a forward pass used, handed to the backward pass so it need not recompute them:
 * the mean (null for RMS normalization) and the inverse standard deviation (inverse RMS), shaped
 * as the forward's {@link NormResult#mean()} and {@link NormResult#invStdDev()}.
 *
 * @param mean the mean per normalized slice, or null for RMS normalization
 * @param invStdDev {@code 1 / sqrt(var + epsilon)} (RMS: {@code 1 / sqrt(mean(x^2) + epsilon)})
 */
public record SavedStats(Tensor mean, Tensor invStdDev) {

    /**
     * @param result a forward result of the same operator and input
     * @return its saved statistics
     */
    public static SavedStats of(NormResult result) {
        return new SavedStats(result.mean(), result.invStdDev());
    }
}
