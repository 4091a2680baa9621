package org.normcl.jvm;

import org.normcl.backend.ChannelPlan;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.RunningUpdate;

/**
 * The float32 forward primitives on the fast path ({@link RowNorm}, {@link ChannelNorm}: one read of
 * X where it fits in cache, float32 lanes per run merged in double, the Vector API when the JVM has
 * it), with the same signatures as {@link FloatKernels}' and falling back to them for what the fast
 * path does not cover (rows that are not contiguous, statistics without Y).
 */
final class FastFloatKernels {
    private FastFloatKernels() {
    }

    /** See {@link FloatKernels#rowNorm}. */
    static void rowNorm(Parallel parallel, RowNormPlan p, float[] x, float[] scale, float[] bias, float[] y,
            float[] meanOut, float[] invOut) {
        if (y == null || !p.isContiguous()) {
            FloatKernels.rowNorm(parallel, p, x, scale, bias, y, meanOut, invOut);
            return;
        }
        new RowNorm(RowKernels.best(), parallel).run(p, x, scale, bias, y, meanOut, invOut);
    }

    /** See {@link FloatKernels#channelStats}. */
    static void channelStats(Parallel parallel, ArrayPool scratch, ChannelPlan p, float[] x, float[] mean,
            float[] meanLo, float[] inv, RunningUpdate update, float[] rmIn, float[] rvIn, float[] rmOut,
            float[] rvOut) {
        new ChannelNorm(RowKernels.best(), parallel, scratch).stats(p, x, mean, meanLo, inv, update, rmIn, rvIn, rmOut,
                rvOut);
    }

    /** @return whether {@link #channelNorm} fuses statistics and apply for this plan */
    static boolean channelNormFuses(Parallel parallel, ChannelPlan p) {
        return ChannelNorm.fuses(p, parallel.threads());
    }

    /**
     * {@link #channelStats} then {@link #channelApply}, fused per channel; only where
     * {@link #channelNormFuses}.
     */
    static void channelNorm(Parallel parallel, ArrayPool scratch, ChannelPlan p, float[] x, float[] mean,
            float[] meanLo, float[] inv, RunningUpdate update, float[] rmIn, float[] rvIn, float[] rmOut,
            float[] rvOut, float[] scale, float[] bias, float[] y) {
        new ChannelNorm(RowKernels.best(), parallel, scratch).statsAndApply(p, x, mean, meanLo, inv, update, rmIn,
                rvIn, rmOut, rvOut, scale, bias, y);
    }

    /** See {@link FloatKernels#channelApply}. */
    static void channelApply(Parallel parallel, ArrayPool scratch, ChannelPlan p, float[] x, float[] mean,
            float[] meanLo, float[] inv, float[] scale, float[] bias, float[] y) {
        new ChannelNorm(RowKernels.best(), parallel, scratch).apply(p, x, mean, meanLo, inv, scale, bias, y);
    }
}
