package org.normcl.backend;

import java.util.Map;
import java.util.Optional;

import org.normcl.BackendKind;
import org.normcl.DType;
import org.normcl.DeviceInfo;
import org.normcl.HostTensor;
import org.normcl.Shape;

/**
 * What an execution backend provides: memory, transfers and the few normalization primitives
 * every operator is built from. Internal SPI: applications use {@link org.normcl.NormEngine},
 * which validates arguments before any primitive runs, so primitives may assume consistent plans
 * and buffers of the right sizes.
 *
 * <p><b>Types.</b> X, Y, dY and dX buffers share one data type; scale, bias, running statistics,
 * dScale and dBias share one parameter type (float32 or the data type); mean, invStd, meanLo and
 * other statistics are in the data type's {@link DType#statistics()} type. Buffers carry their
 * type, so primitives read it from them.
 *
 * <p>Implementations are thread-safe.
 */
public interface Backend extends AutoCloseable {

    /** @return which backend this is */
    BackendKind kind();

    /** @return one line for logs and tables, such as the device name */
    String description();

    /** @return the OpenCL device, for OpenCL backends */
    Optional<DeviceInfo> device();

    /** @return whether this backend computes on data of this type */
    boolean supports(DType dtype);

    /**
     * @param dtype the element type
     * @param elements how many elements (may be 0)
     * @return a new uninitialized buffer
     */
    Buffer allocate(DType dtype, long elements);

    /**
     * A buffer for intermediate results within one call (partial sums, recomputed statistics).
     * Closing it may keep the memory for the next call instead of releasing it.
     */
    Buffer scratch(DType dtype, long elements);

    /** Copies a host tensor into a buffer of the same type and element count. */
    void write(Buffer dst, HostTensor src);

    /** @return a new host copy of a buffer, with the given shape */
    HostTensor read(Buffer src, Shape shape);

    /**
     * Makes a buffer holding a host tensor's contents. The Java backend aliases the array (no copy);
     * callers treat the result as read-only and close it when done.
     */
    Buffer importHost(HostTensor data);

    /**
     * Returns a buffer's contents as a host tensor. The Java backend may return the buffer's own
     * array, so callers must not use the buffer afterwards except to close it.
     */
    HostTensor exportHost(Buffer buffer, Shape shape);

    /** Copies {@code src} into {@code dst} (same type and element count). */
    void copy(Buffer src, Buffer dst);

    /** Sets every element of {@code dst} to {@code value} (rounded to the buffer's type). */
    void fill(Buffer dst, float value);

    /**
     * Normalizes each row. {@code scale}, {@code bias}, {@code mean} and {@code invStd} may be
     * null: absent affine terms, statistics not wanted ({@code mean} is never written for RMS);
     * {@code y} may be null for statistics only.
     */
    void rowNorm(RowNormPlan plan, Buffer x, Buffer scale, Buffer bias, Buffer y, Buffer mean, Buffer invStd);

    /**
     * Computes per-channel batch statistics (mean, and invStd from the population variance) and,
     * when {@code update} is not null, the running statistics
     * {@code runMeanOut/runVarOut} from {@code runMeanIn/runVarIn}. Requires at least one value per
     * channel (two when {@code update.unbiased()}). When {@code meanLo} is not null it receives the
     * rounding error of each mean ({@code exact mean ~ mean + meanLo}), for {@link #channelApply}:
     * with a large common offset the float32 mean alone loses the digits that matter.
     */
    void channelStats(ChannelPlan plan, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, RunningUpdate update,
            Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut);

    /**
     * Inference-mode statistics from the running ones: {@code mean = runMean} and
     * {@code invStd} per the plan's mode from {@code runVar}.
     */
    void channelRunningStats(ChannelPlan plan, Buffer runMean, Buffer runVar, Buffer mean, Buffer invStd);

    /**
     * {@code y = ((x - mean[c]) - meanLo[c]) * invStd[c] * scale[c] + bias[c]} for every element;
     * {@code meanLo}, {@code scale} and {@code bias} may be null.
     */
    void channelApply(ChannelPlan plan, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale, Buffer bias,
            Buffer y);

    /**
     * {@link #channelStats} followed by {@link #channelApply} with the statistics it computed, as one
     * call, so that a backend may fuse them: the Java backend normalizes each channel right after
     * its statistics, while the channel's values are still in cache, and reads X from memory once
     * instead of twice. The outputs are the same bits either way.
     */
    default void channelNorm(ChannelPlan plan, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd,
            RunningUpdate update, Buffer runMeanIn, Buffer runVarIn, Buffer runMeanOut, Buffer runVarOut, Buffer scale,
            Buffer bias, Buffer y) {
        channelStats(plan, x, mean, meanLo, invStd, update, runMeanIn, runVarIn, runMeanOut, runVarOut);
        channelApply(plan, x, mean, meanLo, invStd, scale, bias, y);
    }

    // ---------------------------------------------------------------- forward with given statistics

    /**
     * Per-channel moments only: the mean and M2 (sum of squared deviations) of each channel. The
     * counts are all {@code plan.perChannel()}. When {@code meanLo} is not null it receives the
     * rounding error of each mean, as in {@link #channelStats}: moments are merged across shards in
     * double precision, where a float32 mean alone would round away the digits a large common
     * offset leaves to the spread.
     */
    void channelMoments(ChannelPlan plan, Buffer x, Buffer mean, Buffer meanLo, Buffer m2);

    /**
     * Normalizes each row with given statistics:
     * {@code y = ((x - mean[row]) - meanLo[row]) * invStd[row] * w + b} ({@code mean} and
     * {@code meanLo} are ignored, and may be null, for RMS; {@code meanLo}, the rounding error of
     * each mean as in {@link #channelStats}, may be null).
     */
    void rowApply(RowNormPlan plan, Buffer x, Buffer mean, Buffer meanLo, Buffer invStd, Buffer scale, Buffer bias,
            Buffer y);

    // ---------------------------------------------------------------- backward

    /**
     * The input gradient of a row normalization, from the statistics of the forward pass:
     * {@code dx = invStd * (g - mean(g) - xhat * mean(g * xhat))} with {@code g = dy * w} and means
     * over the row (RMS: {@code dx = invStd * (g - xhat * mean(g * xhat))}, {@code xhat = x * invStd}).
     * {@code scale} may be null (w = 1); {@code mean} is ignored for RMS.
     */
    void rowNormBackward(RowNormPlan plan, Buffer dy, Buffer x, Buffer scale, Buffer mean, Buffer invStd, Buffer dx);

    /**
     * {@link #rowNormBackward} then {@link #affineGrad} on the same dY, X and statistics, as one
     * call, so that a backend may fuse them (one read of dY and X for both). A fused path may sum
     * the parameter gradients in another order than {@link #affineGrad} alone, but always in one
     * fixed by the shape: the same bits on every run. {@code dScale} and {@code dBias} may be null.
     */
    default void rowNormBackwardWithGrad(RowNormPlan plan, AffineGradPlan grad, Buffer dy, Buffer x, Buffer scale,
            Buffer mean, Buffer invStd, Buffer dx, Buffer dScale, Buffer dBias) {
        rowNormBackward(plan, dy, x, scale, mean, invStd, dx);
        affineGrad(grad, dy, x, mean, invStd, dScale, dBias, null);
    }

    /**
     * The parameter gradients: see {@link AffineGradPlan}. Deterministic. {@code dScale},
     * {@code dBias} (parameter type) and {@code sums} (statistics type, {@code sums[2c]} = the
     * dScale sum and {@code sums[2c + 1]} = the dBias sum, unrounded) may each be null.
     */
    void affineGrad(AffineGradPlan plan, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer dScale, Buffer dBias,
            Buffer sums);

    /**
     * The whole batch-norm backward of one call: {@link #affineGrad} over the channels (dScale,
     * dBias and, in training, the sums dX needs), then {@link #channelBackward} over all
     * {@code plan.perChannel()} values of each channel, as one call so that a backend may fuse them
     * (one read of dY and X) where the results stay the same bits. {@code scale}, {@code dScale}
     * and {@code dBias} may be null.
     */
    default void channelBackwardWithGrad(ChannelPlan plan, boolean training, Buffer dy, Buffer x, Buffer mean,
            Buffer invStd, Buffer scale, Buffer dScale, Buffer dBias, Buffer dx) {
        try (Buffer sums = training ? scratch(invStd.dtype(), 2 * plan.channels()) : null) {
            affineGrad(new AffineGradPlan(plan.outer(), plan.channels(), plan.inner(), 0, 1, false), dy, x, mean,
                    invStd, dScale, dBias, sums);
            channelBackward(plan, plan.perChannel(), dy, x, mean, invStd, scale, sums, dx);
        }
    }

    /**
     * The input gradient of batch normalization. Training ({@code sums} from {@link #affineGrad}):
     * {@code dx = w * invStd * (dy - sumDy / M - xhat * sumDyXhat / M)}, M = {@code count}, the
     * values per channel the statistics were taken over ({@code plan.perChannel()} unless the
     * plan is one chunk of the batch);
     * inference ({@code sums} null): the statistics are constants and {@code dx = dy * w * invStd}.
     * {@code scale} may be null.
     */
    void channelBackward(ChannelPlan plan, long count, Buffer dy, Buffer x, Buffer mean, Buffer invStd, Buffer scale,
            Buffer sums, Buffer dx);

    /** @return the largest single buffer in bytes; larger host tensors are processed in chunks */
    default long maxAllocationBytes() {
        return Long.MAX_VALUE;
    }

    /**
     * @return the launch parameters this backend's kernels use, by name (OpenCL: the kernel family
     *     and the tuning, {@code normcl tune}'s file or the defaults, with -Dnormcl.kernels and
     *     -Dnormcl.vectorWidth applied), for reports such as {@code normcl bench}; empty where there
     *     are none
     */
    default Map<String, String> kernelParameters() {
        return Map.of();
    }

    /**
     * Starts recording the device time of the commands this backend issues from now on, for
     * benchmarks ({@code normcl bench} times OpenCL work this way): ends with
     * {@link #stopDeviceTimer}. Calls on other threads meanwhile are recorded too.
     *
     * @return whether the backend records device time (OpenCL: profiling events); false where the
     *     work runs on the calling threads (Java), whose wall time is its device time
     */
    default boolean startDeviceTimer() {
        return false;
    }

    /**
     * Stops the recording {@link #startDeviceTimer} started, once the recorded commands are done.
     *
     * @return nanoseconds from the start of the first recorded command to the end of the last, on
     *     the device's clock (0 when none ran), or -1 when nothing was being recorded
     */
    default long stopDeviceTimer() {
        return -1;
    }

    /** @return whether the device stopped answering, so that every further call fails */
    default boolean isLost() {
        return false;
    }

    /** @return buffers allocated and not yet closed (tensors and temporaries), for leak checks */
    int liveBuffers();

    /** Releases every resource; buffers still open are released too. */
    @Override
    void close();
}
