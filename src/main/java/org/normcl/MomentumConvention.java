package org.normcl;

/**
 * How training-mode batch normalization updates its running statistics. The two frameworks
 * define {@code momentum} in opposite directions and disagree on the variance estimator.
 */
public enum MomentumConvention {
    /**
     * ONNX BatchNormalization (opset 15), default momentum 0.9:
     * <pre>
     *   running_mean = running_mean * momentum + batch_mean * (1 - momentum)
     *   running_var  = running_var  * momentum + batch_var  * (1 - momentum)   (biased batch_var)
     * </pre>
     */
    ONNX(0.9f),
    /**
     * PyTorch {@code BatchNorm*d}, default momentum 0.1:
     * <pre>
     *   running_mean = (1 - momentum) * running_mean + momentum * batch_mean
     *   running_var  = (1 - momentum) * running_var  + momentum * batch_var * n / (n - 1)   (unbiased)
     * </pre>
     */
    PYTORCH(0.1f);

    private final float defaultMomentum;

    MomentumConvention(float defaultMomentum) {
        this.defaultMomentum = defaultMomentum;
    }

    /** @return the framework's default momentum */
    public float defaultMomentum() {
        return defaultMomentum;
    }

    /** @return the weight given to the new batch statistic */
    float batchWeight(float momentum) {
        return this == ONNX ? 1f - momentum : momentum;
    }

    /** @return whether the running variance takes the unbiased (n - 1) estimate */
    boolean unbiasedRunningVariance() {
        return this == PYTORCH;
    }
}
