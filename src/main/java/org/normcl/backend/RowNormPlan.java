package org.normcl.backend;

/**
 * A normalization of each row (one normalized slice) of a tensor, with an optional affine
 * transform. Layer, RMS, group, instance and trailing-axis mean-variance normalization are all
 * row normalizations.
 *
 * <p><b>Addressing.</b> A row is {@code segments} segments of {@code cols / segments} contiguous
 * values; segment i of row r starts at
 * {@code (r / groups) * outerStride + (r % groups) * groupStride + i * segmentStride}. A
 * channels-first slice is one segment (the whole row); a channels-last (N, D..., C) group-norm
 * slice is one segment of C/G channels per spatial position.
 *
 * <p><b>Affine index.</b> Position p of a segment uses entry
 * {@code (row % groups) * channelsPerGroup + p / spatial}:
 * <ul>
 *   <li>layer/RMS norm: groups 1, channelsPerGroup = cols, spatial 1 (index = column);
 *   <li>group norm, per channel, NCHW: groups G, channelsPerGroup C/G, spatial = D1*...*Dk;
 *   <li>group norm, per group: channelsPerGroup 1, spatial = the segment length (index = group);
 *   <li>instance norm: groups C, channelsPerGroup 1, spatial = D1*...*Dk;
 *   <li>channels-last, per channel: spatial 1 (position p within the segment is the channel).
 * </ul>
 *
 * @param rows number of rows
 * @param cols elements per row (&ge; 1)
 * @param mode statistic and epsilon placement
 * @param epsilon the epsilon
 * @param groups affine and addressing period over rows
 * @param channelsPerGroup affine entries per group
 * @param spatial values of a segment sharing one affine entry
 * @param hasScale whether a scale is applied
 * @param hasBias whether a bias is applied
 * @param segments segments per row
 * @param segmentStride elements between segment starts
 * @param outerStride elements between rows r and r + groups
 * @param groupStride elements between rows r and r + 1 of the same outer index
 */
public record RowNormPlan(long rows, long cols, StatMode mode, float epsilon, long groups, long channelsPerGroup,
        long spatial, boolean hasScale, boolean hasBias, long segments, long segmentStride, long outerStride,
        long groupStride) {

    /**
     * Creates the plan, checking its counts (not its strides).
     *
     * @param rows number of rows
     * @param cols elements per row (&ge; 1)
     * @param mode statistic and epsilon placement
     * @param epsilon the epsilon
     * @param groups affine and addressing period over rows
     * @param channelsPerGroup affine entries per group
     * @param spatial values of a segment sharing one affine entry
     * @param hasScale whether a scale is applied
     * @param hasBias whether a bias is applied
     * @param segments segments per row
     * @param segmentStride elements between segment starts
     * @param outerStride elements between rows r and r + groups
     * @param groupStride elements between rows r and r + 1 of the same outer index
     * @throws IllegalArgumentException if {@code rows} is negative; if {@code cols}, {@code groups},
     *     {@code channelsPerGroup}, {@code spatial} or {@code segments} is less than 1; or if
     *     {@code cols} is not a multiple of {@code segments}
     */
    public RowNormPlan {
        if (rows < 0 || cols < 1 || groups < 1 || channelsPerGroup < 1 || spatial < 1 || segments < 1
                || cols % segments != 0) {
            throw new IllegalArgumentException("inconsistent row plan: rows=" + rows + " cols=" + cols + " groups="
                    + groups + " channelsPerGroup=" + channelsPerGroup + " spatial=" + spatial + " segments="
                    + segments);
        }
    }

    /**
     * A plan whose rows are contiguous: row r starts at r * cols.
     *
     * @throws IllegalArgumentException if {@code channelsPerGroup * spatial != cols}, or for the
     *     canonical constructor's conditions
     */
    public static RowNormPlan contiguous(long rows, long cols, StatMode mode, float epsilon, long groups,
            long channelsPerGroup, long spatial, boolean hasScale, boolean hasBias) {
        if (channelsPerGroup * spatial != cols) {
            throw new IllegalArgumentException("inconsistent row plan: channelsPerGroup=" + channelsPerGroup
                    + " x spatial=" + spatial + " != cols=" + cols);
        }
        return new RowNormPlan(rows, cols, mode, epsilon, groups, channelsPerGroup, spatial, hasScale, hasBias, 1,
                cols, groups * cols, cols);
    }

    /** @return the same plan over {@code rows} rows (a chunk starting at a multiple of groups rows) */
    public RowNormPlan withRows(long rows) {
        return new RowNormPlan(rows, cols, mode, epsilon, groups, channelsPerGroup, spatial, hasScale, hasBias,
                segments, segmentStride, outerStride, groupStride);
    }

    /** @return whether every row is one contiguous run at r * cols */
    public boolean isContiguous() {
        return segments == 1 && groupStride == cols && outerStride == groups * cols;
    }

    /** @return values per segment */
    public long segmentLength() {
        return cols / segments;
    }

    /** @return the offset of row r's first value */
    public long rowBase(long row) {
        return (row / groups) * outerStride + (row % groups) * groupStride;
    }

    /** @return the offset of row r's t-th value */
    public long offset(long row, long t) {
        long len = segmentLength();
        return rowBase(row) + (t / len) * segmentStride + t % len;
    }

    /** @return the number of affine entries the scale and bias hold */
    public long affineSize() {
        return groups * channelsPerGroup;
    }

    /** @return the affine index of row r's t-th value */
    public long affineIndex(long row, long t) {
        return (row % groups) * channelsPerGroup + (t % segmentLength()) / spatial;
    }
}
