package org.normcl.backend;

/**
 * The parameter gradients of a normalization, as reductions over a tensor viewed as
 * (outer, channels, inner): {@code dScale[c] = sum dy * xhat} and {@code dBias[c] = sum dy} over
 * every (o, s) of channel c, where {@code xhat = (x - mean[si]) * invStd[si]} (RMS:
 * {@code x * invStd[si]}) and the statistic index is
 * {@code si = (o / outerPerStat) * statsPerOuter + c / channelsPerStat}.
 *
 * <ul>
 *   <li>layer/RMS norm: (rows, cols, 1), statsPerOuter 1, channelsPerStat cols (si = row);
 *   <li>group norm per channel: (N, C, S), statsPerOuter G, channelsPerStat C/G;
 *   <li>group norm per group: (N, G, C/G*S), statsPerOuter G, channelsPerStat 1;
 *   <li>instance norm: (N, C, S), statsPerOuter C, channelsPerStat 1;
 *   <li>batch norm: (N, C, S), statsPerOuter 0, channelsPerStat 1 (si = c);
 *   <li>channels-last (N, S, C): the view (N * S, C, 1) with outerPerStat S (o / S is the sample).
 * </ul>
 * Backends reduce in two stages with a fixed order, so the result is the same bits on every run.
 *
 * @param outer the outer extent
 * @param channels the channel (affine) extent
 * @param inner the inner extent
 * @param statsPerOuter statistics per outer index
 * @param channelsPerStat channels sharing one statistic
 * @param rms whether xhat is {@code x * invStd} (no mean)
 * @param outerPerStat consecutive outer indices sharing one statistic row (1 unless channels-last)
 */
public record AffineGradPlan(long outer, long channels, long inner, long statsPerOuter, long channelsPerStat,
        boolean rms, long outerPerStat) {

    /**
     * Creates the plan, checking its extents and statistic layout.
     *
     * @param outer the outer extent
     * @param channels the channel (affine) extent
     * @param inner the inner extent
     * @param statsPerOuter statistics per outer index
     * @param channelsPerStat channels sharing one statistic
     * @param rms whether xhat is {@code x * invStd} (no mean)
     * @param outerPerStat consecutive outer indices sharing one statistic row (1 unless channels-last)
     * @throws IllegalArgumentException if {@code outer} or {@code statsPerOuter} is negative, or if
     *     {@code channels}, {@code inner}, {@code channelsPerStat} or {@code outerPerStat} is less
     *     than 1
     */
    public AffineGradPlan {
        if (outer < 0 || channels < 1 || inner < 1 || statsPerOuter < 0 || channelsPerStat < 1 || outerPerStat < 1) {
            throw new IllegalArgumentException("inconsistent affine-gradient plan: outer=" + outer + " channels="
                    + channels + " inner=" + inner + " statsPerOuter=" + statsPerOuter + " channelsPerStat="
                    + channelsPerStat);
        }
    }

    /**
     * A plan for channels-first data (outerPerStat 1).
     *
     * @throws IllegalArgumentException under the canonical constructor's conditions
     */
    public AffineGradPlan(long outer, long channels, long inner, long statsPerOuter, long channelsPerStat,
            boolean rms) {
        this(outer, channels, inner, statsPerOuter, channelsPerStat, rms, 1);
    }

    /** @return the same plan over {@code outer} outer indices (a chunk of whole statistic rows) */
    public AffineGradPlan withOuter(long outer) {
        return new AffineGradPlan(outer, channels, inner, statsPerOuter, channelsPerStat, rms, outerPerStat);
    }

    /** @return the statistic index of (o, c) */
    public long statIndex(long o, long c) {
        return (o / outerPerStat) * statsPerOuter + c / channelsPerStat;
    }
}
