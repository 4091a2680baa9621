package org.normcl.backend;

/** Which statistic a normalization takes and where epsilon goes. */
public enum StatMode {
    /** Mean and population variance; {@code invStd = 1 / sqrt(var + eps)}; {@code y = (x - mean) * invStd}. */
    MEAN_VAR,
    /** Mean square only; {@code invStd = 1 / sqrt(mean(x^2) + eps)}; {@code y = x * invStd}. */
    RMS,
    /** Mean and population variance; {@code invStd = 1 / (sqrt(var) + eps)} (ONNX MeanVarianceNormalization). */
    MEAN_VAR_EPS_OUTSIDE
}
