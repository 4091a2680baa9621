package org.normcl.reference;

import java.util.Arrays;

/**
 * An independent float64 reference ("oracle") for the normalization operators, for tests only.
 *
 * <p>Deliberately independent of NormCL's main code: plain {@code float[]} inputs, {@code long[]}
 * row-major (C order) shapes and {@code double[]} results. Every function uses the textbook
 * two-pass formulas in double precision, written for clarity rather than speed:
 *
 * <pre>
 *   mean = sum(x) / n
 *   var  = sum((x - mean)^2) / n          (population / biased variance)
 *   invStd = 1 / sqrt(var + eps)
 *   y = (x - mean) * invStd * scale + bias
 * </pre>
 *
 * <p>Float32 inputs are widened exactly to double; float attributes (epsilon, momentum) are used as
 * {@code (double) value}, i.e. the float32 value widened exactly. Special values propagate the
 * IEEE way: a NaN (or an Inf, through {@code Inf - Inf}) in one normalization group makes that
 * group's statistics and outputs NaN and leaves the other groups untouched. An empty tensor gives
 * empty results.
 *
 * <p>Shape conventions follow ONNX: layer / RMS norm normalize over dims {@code axis..rank-1}
 * (negative axes count from the end) with scale/bias of shape {@code shape[axis:]}; group,
 * instance and batch norm take {@code (N, C, spatial...)} inputs.
 */
public final class Reference64 {

    private Reference64() {
    }

    /**
     * Output of layer, group and instance normalization.
     *
     * @param y      the normalized output, same element count and layout as the input
     * @param mean   the mean of every normalization group (row / (n, g) / (n, c)), row-major
     * @param invStd {@code 1 / sqrt(var + eps)} of every group, same layout as {@code mean}
     */
    public record Normalized(double[] y, double[] mean, double[] invStd) {
    }

    /**
     * Output of RMS normalization.
     *
     * @param y      the normalized output
     * @param invRms {@code 1 / sqrt(mean(x^2) + eps)} per row
     */
    public record RmsNormalized(double[] y, double[] invRms) {
    }

    /**
     * Output of batch normalization in training mode.
     *
     * @param y               the output, normalized with the batch statistics
     * @param mean            the batch mean per channel {@code [C]}
     * @param invStd          {@code 1 / sqrt(batchVar + eps)} per channel, with the biased batch variance
     * @param newRunningMean  the updated running mean {@code [C]}
     * @param newRunningVar   the updated running variance {@code [C]}
     */
    public record BatchNormTraining(double[] y, double[] mean, double[] invStd,
                                    double[] newRunningMean, double[] newRunningVar) {
    }

    // ------------------------------------------------------------------------------------------
    // Layer / RMS normalization
    // ------------------------------------------------------------------------------------------

    /**
     * Layer normalization (ONNX LayerNormalization-17): every row of {@code prod(shape[axis:])}
     * elements is normalized to zero mean and unit variance, then scaled and shifted.
     *
     * @param x     input, {@code prod(shape)} elements
     * @param shape input shape, rank >= 1
     * @param axis  first normalized dim, in {@code [-rank, rank)}
     * @param eps   added to the variance
     * @param scale nullable; {@code prod(shape[axis:])} elements
     * @param bias  nullable; {@code prod(shape[axis:])} elements
     * @return y, and mean / invStd per row ({@code prod(shape[:axis])} rows)
     */
    public static Normalized layerNorm(float[] x, long[] shape, int axis, float eps, float[] scale, float[] bias) {
        checkSize("x", x, shape);
        int a = normalizeAxis(axis, shape.length);
        int rows = toInt(product(shape, 0, a));
        int len = toInt(product(shape, a, shape.length));
        checkAffine("scale", scale, len);
        checkAffine("bias", bias, len);

        double[] y = new double[x.length];
        double[] mean = new double[rows];
        double[] invStd = new double[rows];
        for (int r = 0; r < rows; r++) {
            int start = r * len;
            double m = meanOf(x, start, len, 1);
            double v = varianceOf(x, start, len, 1, m);
            double is = 1.0 / Math.sqrt(v + (double) eps);
            mean[r] = m;
            invStd[r] = is;
            for (int i = 0; i < len; i++) {
                double value = ((double) x[start + i] - m) * is;
                if (scale != null) {
                    value *= scale[i];
                }
                if (bias != null) {
                    value += bias[i];
                }
                y[start + i] = value;
            }
        }
        return new Normalized(y, mean, invStd);
    }

    /**
     * RMS normalization (ONNX RMSNormalization-23): {@code y = x / sqrt(mean(x^2) + eps) * scale}
     * over every row of {@code prod(shape[axis:])} elements.
     *
     * @param x     input
     * @param shape input shape
     * @param axis  first normalized dim, in {@code [-rank, rank)}
     * @param eps   added to the mean square
     * @param scale nullable; {@code prod(shape[axis:])} elements
     * @return y and invRms per row
     */
    public static RmsNormalized rmsNorm(float[] x, long[] shape, int axis, float eps, float[] scale) {
        checkSize("x", x, shape);
        int a = normalizeAxis(axis, shape.length);
        int rows = toInt(product(shape, 0, a));
        int len = toInt(product(shape, a, shape.length));
        checkAffine("scale", scale, len);

        double[] y = new double[x.length];
        double[] invRms = new double[rows];
        for (int r = 0; r < rows; r++) {
            int start = r * len;
            double sumSq = 0.0;
            for (int i = 0; i < len; i++) {
                double v = x[start + i];
                sumSq += v * v;
            }
            double ir = 1.0 / Math.sqrt(sumSq / len + (double) eps);
            invRms[r] = ir;
            for (int i = 0; i < len; i++) {
                double value = (double) x[start + i] * ir;
                if (scale != null) {
                    value *= scale[i];
                }
                y[start + i] = value;
            }
        }
        return new RmsNormalized(y, invRms);
    }

    // ------------------------------------------------------------------------------------------
    // Group / instance normalization
    // ------------------------------------------------------------------------------------------

    /**
     * Group normalization (ONNX GroupNormalization): the C channels of every sample are split into
     * {@code numGroups} consecutive groups, each normalized over its channels and spatial dims.
     *
     * @param x              input of shape {@code (N, C, spatial...)}, rank >= 2
     * @param shape          input shape
     * @param numGroups      G, must divide C
     * @param eps            added to the variance
     * @param scale          nullable; C elements, or G if {@code perGroupAffine}
     * @param bias           nullable; C elements, or G if {@code perGroupAffine}
     * @param perGroupAffine ONNX opset-18 semantics: one scale/bias value per group
     * @return y, and mean / invStd of shape {@code [N, G]}
     */
    public static Normalized groupNorm(float[] x, long[] shape, int numGroups, float eps,
                                       float[] scale, float[] bias, boolean perGroupAffine) {
        checkSize("x", x, shape);
        requireRankAtLeast(shape, 2);
        int n = toInt(shape[0]);
        int c = toInt(shape[1]);
        int spatial = toInt(product(shape, 2, shape.length));
        if (numGroups <= 0 || c % numGroups != 0) {
            throw new IllegalArgumentException("numGroups " + numGroups + " must be positive and divide C = " + c);
        }
        int channelsPerGroup = c / numGroups;
        int affineLen = perGroupAffine ? numGroups : c;
        checkAffine("scale", scale, affineLen);
        checkAffine("bias", bias, affineLen);

        int groupLen = channelsPerGroup * spatial;
        double[] y = new double[x.length];
        double[] mean = new double[n * numGroups];
        double[] invStd = new double[n * numGroups];
        for (int s = 0; s < n; s++) {
            for (int g = 0; g < numGroups; g++) {
                // In C order the channels of a group are contiguous: one block of groupLen elements.
                int start = (s * c + g * channelsPerGroup) * spatial;
                double m = meanOf(x, start, groupLen, 1);
                double v = varianceOf(x, start, groupLen, 1, m);
                double is = 1.0 / Math.sqrt(v + (double) eps);
                mean[s * numGroups + g] = m;
                invStd[s * numGroups + g] = is;
                for (int i = 0; i < groupLen; i++) {
                    int channel = g * channelsPerGroup + i / spatial;
                    int affineIndex = perGroupAffine ? g : channel;
                    double value = ((double) x[start + i] - m) * is;
                    if (scale != null) {
                        value *= scale[affineIndex];
                    }
                    if (bias != null) {
                        value += bias[affineIndex];
                    }
                    y[start + i] = value;
                }
            }
        }
        return new Normalized(y, mean, invStd);
    }

    /**
     * Instance normalization (ONNX InstanceNormalization): every (sample, channel) is normalized
     * over its spatial dims, then scaled and shifted per channel.
     *
     * @param x     input of shape {@code (N, C, spatial...)}, rank >= 2
     * @param shape input shape
     * @param eps   added to the variance
     * @param scale nullable; C elements
     * @param bias  nullable; C elements
     * @return y, and mean / invStd of shape {@code [N, C]}
     */
    public static Normalized instanceNorm(float[] x, long[] shape, float eps, float[] scale, float[] bias) {
        checkSize("x", x, shape);
        requireRankAtLeast(shape, 2);
        int n = toInt(shape[0]);
        int c = toInt(shape[1]);
        int spatial = toInt(product(shape, 2, shape.length));
        checkAffine("scale", scale, c);
        checkAffine("bias", bias, c);

        double[] y = new double[x.length];
        double[] mean = new double[n * c];
        double[] invStd = new double[n * c];
        for (int s = 0; s < n; s++) {
            for (int ch = 0; ch < c; ch++) {
                int start = (s * c + ch) * spatial;
                double m = meanOf(x, start, spatial, 1);
                double v = varianceOf(x, start, spatial, 1, m);
                double is = 1.0 / Math.sqrt(v + (double) eps);
                mean[s * c + ch] = m;
                invStd[s * c + ch] = is;
                for (int i = 0; i < spatial; i++) {
                    double value = ((double) x[start + i] - m) * is;
                    if (scale != null) {
                        value *= scale[ch];
                    }
                    if (bias != null) {
                        value += bias[ch];
                    }
                    y[start + i] = value;
                }
            }
        }
        return new Normalized(y, mean, invStd);
    }

    // ------------------------------------------------------------------------------------------
    // Batch normalization
    // ------------------------------------------------------------------------------------------

    /**
     * Batch normalization in inference mode:
     * {@code y = (x - runMean[c]) / sqrt(runVar[c] + eps) * scale[c] + bias[c]}.
     *
     * @param x       input of shape {@code (N, C, spatial...)}, rank >= 2
     * @param shape   input shape
     * @param scale   nullable; C elements
     * @param bias    nullable; C elements
     * @param runMean C elements
     * @param runVar  C elements
     * @param eps     added to the variance
     * @return y
     */
    public static double[] batchNormInference(float[] x, long[] shape, float[] scale, float[] bias,
                                              float[] runMean, float[] runVar, float eps) {
        checkSize("x", x, shape);
        requireRankAtLeast(shape, 2);
        int n = toInt(shape[0]);
        int c = toInt(shape[1]);
        int spatial = toInt(product(shape, 2, shape.length));
        checkAffine("scale", scale, c);
        checkAffine("bias", bias, c);
        checkLength("runMean", runMean, c);
        checkLength("runVar", runVar, c);

        double[] y = new double[x.length];
        for (int ch = 0; ch < c; ch++) {
            double m = runMean[ch];
            double is = 1.0 / Math.sqrt((double) runVar[ch] + (double) eps);
            for (int s = 0; s < n; s++) {
                int start = (s * c + ch) * spatial;
                for (int i = 0; i < spatial; i++) {
                    y[start + i] = affine(((double) x[start + i] - m) * is, scale, bias, ch);
                }
            }
        }
        return y;
    }

    /**
     * Batch normalization in training mode: y is normalized with the batch statistics of every
     * channel (mean and biased variance over N and the spatial dims), and the running statistics
     * are updated.
     *
     * <ul>
     *   <li>ONNX convention ({@code pytorchConvention == false}, BatchNormalization-15 with
     *       {@code training_mode=1}): {@code new = running * momentum + batch * (1 - momentum)},
     *       with the biased batch variance for the running variance.</li>
     *   <li>PyTorch convention: {@code new = (1 - momentum) * running + momentum * batch}, with the
     *       unbiased batch variance {@code var * n / (n - 1)} for the running variance (n = elements
     *       per channel; n = 1 gives NaN).</li>
     * </ul>
     *
     * @param x                 input of shape {@code (N, C, spatial...)}, rank >= 2
     * @param shape             input shape
     * @param scale             nullable; C elements
     * @param bias              nullable; C elements
     * @param runMean           C elements
     * @param runVar            C elements
     * @param eps               added to the batch variance
     * @param momentum          see above; used as {@code (double) momentum}
     * @param pytorchConvention which momentum / variance convention to use
     * @return y, batch mean and invStd per channel, and the new running statistics
     */
    public static BatchNormTraining batchNormTraining(float[] x, long[] shape, float[] scale, float[] bias,
                                                      float[] runMean, float[] runVar, float eps,
                                                      float momentum, boolean pytorchConvention) {
        checkSize("x", x, shape);
        requireRankAtLeast(shape, 2);
        int n = toInt(shape[0]);
        int c = toInt(shape[1]);
        int spatial = toInt(product(shape, 2, shape.length));
        checkAffine("scale", scale, c);
        checkAffine("bias", bias, c);
        checkLength("runMean", runMean, c);
        checkLength("runVar", runVar, c);
        long count = (long) n * spatial;
        double mom = momentum;

        double[] y = new double[x.length];
        double[] mean = new double[c];
        double[] invStd = new double[c];
        double[] newMean = new double[c];
        double[] newVar = new double[c];
        for (int ch = 0; ch < c; ch++) {
            // Pass 1: mean over every sample's block of this channel.
            double sum = 0.0;
            for (int s = 0; s < n; s++) {
                int start = (s * c + ch) * spatial;
                for (int i = 0; i < spatial; i++) {
                    sum += x[start + i];
                }
            }
            double m = sum / count;
            // Pass 2: biased variance.
            double sumSq = 0.0;
            for (int s = 0; s < n; s++) {
                int start = (s * c + ch) * spatial;
                for (int i = 0; i < spatial; i++) {
                    double d = (double) x[start + i] - m;
                    sumSq += d * d;
                }
            }
            double v = sumSq / count;
            double is = 1.0 / Math.sqrt(v + (double) eps);
            mean[ch] = m;
            invStd[ch] = is;
            for (int s = 0; s < n; s++) {
                int start = (s * c + ch) * spatial;
                for (int i = 0; i < spatial; i++) {
                    y[start + i] = affine(((double) x[start + i] - m) * is, scale, bias, ch);
                }
            }
            if (pytorchConvention) {
                double unbiased = v * count / (count - 1);
                newMean[ch] = (1.0 - mom) * runMean[ch] + mom * m;
                newVar[ch] = (1.0 - mom) * runVar[ch] + mom * unbiased;
            } else {
                newMean[ch] = runMean[ch] * mom + m * (1.0 - mom);
                newVar[ch] = runVar[ch] * mom + v * (1.0 - mom);
            }
        }
        return new BatchNormTraining(y, mean, invStd, newMean, newVar);
    }

    // ------------------------------------------------------------------------------------------
    // Mean-variance normalization
    // ------------------------------------------------------------------------------------------

    /** The epsilon of ONNX MeanVarianceNormalization. */
    public static final double MVN_DEFAULT_EPS = 1e-9;

    /** The default axes of ONNX MeanVarianceNormalization. */
    public static final int[] MVN_DEFAULT_AXES = {0, 2, 3};

    /**
     * Mean-variance normalization with {@link #MVN_DEFAULT_EPS}.
     *
     * @see #meanVarianceNorm(float[], long[], int[], double)
     */
    public static double[] meanVarianceNorm(float[] x, long[] shape, int[] axes) {
        return meanVarianceNorm(x, shape, axes, MVN_DEFAULT_EPS);
    }

    /**
     * Mean-variance normalization (ONNX MeanVarianceNormalization):
     * {@code y = (x - mean) / (sqrt(var) + eps)}, with mean and population variance taken over
     * {@code axes} (any set of distinct axes, negative ones counting from the end), separately for
     * every index of the remaining axes.
     *
     * @param x     input
     * @param shape input shape
     * @param axes  the reduced axes
     * @param eps   added to the standard deviation (not the variance)
     * @return y
     */
    public static double[] meanVarianceNorm(float[] x, long[] shape, int[] axes, double eps) {
        return meanVarianceNormDetailed(x, shape, axes, eps).y();
    }

    /**
     * Mean-variance normalization with the statistics each element was normalized by.
     *
     * @param y the output
     * @param elementMean the mean of each element's slice
     * @param elementStd the population standard deviation of each element's slice
     */
    public record Mvn(double[] y, double[] elementMean, double[] elementStd) {
    }

    /** Like {@link #meanVarianceNorm(float[], long[], int[], double)}, also returning per-element statistics. */
    public static Mvn meanVarianceNormDetailed(float[] x, long[] shape, int[] axes, double eps) {
        checkSize("x", x, shape);
        int rank = shape.length;
        boolean[] reduced = new boolean[rank];
        for (int axis : axes) {
            int a = normalizeAxis(axis, rank);
            if (reduced[a]) {
                throw new IllegalArgumentException("duplicate axis " + axis + " in " + Arrays.toString(axes));
            }
            reduced[a] = true;
        }
        // Each element belongs to the group named by its coordinates along the kept axes.
        long groupCount = 1;
        long reducedCount = 1;
        for (int d = 0; d < rank; d++) {
            if (reduced[d]) {
                reducedCount *= shape[d];
            } else {
                groupCount *= shape[d];
            }
        }
        int[] group = new int[x.length];
        int[] coords = new int[rank];
        for (int i = 0; i < x.length; i++) {
            // coords = multi-index of element i (C order)
            int rest = i;
            for (int d = rank - 1; d >= 0; d--) {
                coords[d] = (int) (rest % shape[d]);
                rest = (int) (rest / shape[d]);
            }
            long key = 0;
            for (int d = 0; d < rank; d++) {
                if (!reduced[d]) {
                    key = key * shape[d] + coords[d];
                }
            }
            group[i] = (int) key;
        }
        int groups = toInt(groupCount);
        double[] sum = new double[groups];
        for (int i = 0; i < x.length; i++) {
            sum[group[i]] += x[i];
        }
        double[] mean = new double[groups];
        for (int g = 0; g < groups; g++) {
            mean[g] = sum[g] / reducedCount;
        }
        double[] sumSq = new double[groups];
        for (int i = 0; i < x.length; i++) {
            double d = (double) x[i] - mean[group[i]];
            sumSq[group[i]] += d * d;
        }
        double[] y = new double[x.length];
        double[] elementMean = new double[x.length];
        double[] elementStd = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double std = Math.sqrt(sumSq[group[i]] / reducedCount);
            y[i] = ((double) x[i] - mean[group[i]]) / (std + eps);
            elementMean[i] = mean[group[i]];
            elementStd[i] = std;
        }
        return new Mvn(y, elementMean, elementStd);
    }

    // ------------------------------------------------------------------------------------------
    // helpers
    // ------------------------------------------------------------------------------------------

    /** The element count of a shape, {@code prod(shape)}. */
    public static long size(long[] shape) {
        return product(shape, 0, shape.length);
    }

    /** Widens a float array exactly to double (a convenience for tests). */
    public static double[] toDouble(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }

    /**
     * @return {@code axis} in {@code [0, rank)}, after adding {@code rank} to a negative axis
     * @throws IllegalArgumentException if out of {@code [-rank, rank)}
     */
    public static int normalizeAxis(int axis, int rank) {
        if (axis < -rank || axis >= rank) {
            throw new IllegalArgumentException("axis " + axis + " out of range for rank " + rank);
        }
        return axis < 0 ? axis + rank : axis;
    }

    private static double meanOf(float[] x, int start, int count, int stride) {
        double sum = 0.0;
        for (int i = 0; i < count; i++) {
            sum += x[start + i * stride];
        }
        return sum / count;
    }

    private static double varianceOf(float[] x, int start, int count, int stride, double mean) {
        double sumSq = 0.0;
        for (int i = 0; i < count; i++) {
            double d = (double) x[start + i * stride] - mean;
            sumSq += d * d;
        }
        return sumSq / count;
    }

    private static double affine(double normalized, float[] scale, float[] bias, int index) {
        double value = normalized;
        if (scale != null) {
            value *= scale[index];
        }
        if (bias != null) {
            value += bias[index];
        }
        return value;
    }

    private static long product(long[] shape, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) {
            if (shape[i] < 0) {
                throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
            }
            p = Math.multiplyExact(p, shape[i]);
        }
        return p;
    }

    private static int toInt(long v) {
        if (v > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("reference arrays are limited to 2^31-1 elements, got " + v);
        }
        return (int) v;
    }

    private static void checkSize(String what, float[] x, long[] shape) {
        if (x == null || shape == null) {
            throw new NullPointerException(what + " and its shape must not be null");
        }
        long expected = product(shape, 0, shape.length);
        if (x.length != expected) {
            throw new IllegalArgumentException(what + " has " + x.length + " elements, shape "
                    + Arrays.toString(shape) + " needs " + expected);
        }
    }

    private static void checkAffine(String what, float[] a, int expected) {
        if (a != null) {
            checkLength(what, a, expected);
        }
    }

    private static void checkLength(String what, float[] a, int expected) {
        if (a == null) {
            throw new NullPointerException(what + " must not be null");
        }
        if (a.length != expected) {
            throw new IllegalArgumentException(what + " has " + a.length + " elements, expected " + expected);
        }
    }

    private static void requireRankAtLeast(long[] shape, int rank) {
        if (shape.length < rank) {
            throw new IllegalArgumentException("expected an (N, C, ...) shape of rank >= " + rank
                    + ", got " + Arrays.toString(shape));
        }
    }
}
