package org.normcl;

/**
 * What a normalization returns: the output {@code Y}, the statistics it used and, for
 * training-mode batch normalization, the updated running statistics. Tensors live where the input
 * {@code X} lived (host or device). Closing the result closes its device tensors; a caller that
 * keeps one of them past the result should not close the result, or should {@link #detachY()} it
 * first.
 */
public final class NormResult implements AutoCloseable {
    private final Tensor y;
    private volatile boolean yDetached;
    private final Tensor mean;
    private final Tensor invStdDev;
    private final Tensor runningMean;
    private final Tensor runningVar;

    NormResult(Tensor y, Tensor mean, Tensor invStdDev, Tensor runningMean, Tensor runningVar) {
        this.y = y;
        this.mean = mean;
        this.invStdDev = invStdDev;
        this.runningMean = runningMean;
        this.runningVar = runningVar;
    }

    /** @return the normalized output, same shape as X */
    public Tensor y() {
        return y;
    }

    /**
     * @return the mean used per normalized slice (layer norm: {@code X.shape[:axis] + [1]*k};
     *     group/instance norm: (N, G) / (N, C); batch norm: (C), the batch mean in training and the
     *     running mean in inference), or null for RMS normalization
     */
    public Tensor mean() {
        return mean;
    }

    /**
     * @return {@code 1 / sqrt(var + epsilon)} per normalized slice, same shape as {@link #mean()};
     *     for RMS normalization the inverse root mean square; for MeanVarianceNormalization
     *     {@code 1 / (sqrt(var) + epsilon)}
     */
    public Tensor invStdDev() {
        return invStdDev;
    }

    /** @return the updated running mean (training-mode batch norm with running stats given), else null */
    public Tensor runningMean() {
        return runningMean;
    }

    /** @return the updated running variance (training-mode batch norm with running stats given), else null */
    public Tensor runningVar() {
        return runningVar;
    }

    /**
     * Hands {@code Y} to the caller: closing this result will no longer close it (the caller
     * closes it instead).
     *
     * @return the output tensor
     */
    public Tensor detachY() {
        yDetached = true;
        return y;
    }

    /** Closes every device tensor this result still holds. */
    @Override
    public void close() {
        for (Tensor t : new Tensor[] {yDetached ? null : y, mean, invStdDev, runningMean, runningVar}) {
            if (t instanceof DeviceTensor d) {
                d.close();
            }
        }
    }
}
