package org.normcl.backend;

/**
 * A normalization of each row of a (rows, cols) matrix, with an optional affine transform whose
 * index depends on the row and column. Layer, RMS, group, instance and trailing-axis mean-variance
 * normalization are all row normalizations: a (sample, group) slice of an NCHW tensor is one
 * contiguous row.
 *
 * <p>The affine index of element (row, col) is
 * {@code (row % groups) * channelsPerGroup + col / spatial}:
 * <ul>
 *   <li>layer/RMS norm: groups 1, channelsPerGroup = cols, spatial 1 (index = col);
 *   <li>group norm, per channel: groups G, channelsPerGroup C/G, spatial = D1*...*Dk;
 *   <li>group norm, per group: groups G, channelsPerGroup 1, spatial = cols (index = group);
 *   <li>instance norm: groups C, channelsPerGroup 1, spatial = D1*...*Dk.
 * </ul>
 *
 * @param rows number of rows
 * @param cols elements per row (&ge; 1)
 * @param mode statistic and epsilon placement
 * @param epsilon the epsilon
 * @param groups affine index period over rows
 * @param channelsPerGroup affine entries per row
 * @param spatial columns sharing one affine entry
 * @param hasScale whether a scale is applied
 * @param hasBias whether a bias is applied
 */
public record RowNormPlan(long rows, long cols, StatMode mode, float epsilon, long groups, long channelsPerGroup,
        long spatial, boolean hasScale, boolean hasBias) {

    public RowNormPlan {
        if (rows < 0 || cols < 1 || groups < 1 || channelsPerGroup < 1 || spatial < 1
                || channelsPerGroup * spatial != cols) {
            throw new IllegalArgumentException("inconsistent row plan: " + rowsString(rows, cols, groups,
                    channelsPerGroup, spatial));
        }
    }

    private static String rowsString(long rows, long cols, long g, long cpg, long s) {
        return "rows=" + rows + " cols=" + cols + " groups=" + g + " channelsPerGroup=" + cpg + " spatial=" + s;
    }

    /** @return the number of affine entries the scale and bias hold */
    public long affineSize() {
        return groups * channelsPerGroup;
    }

    /** @return the affine index of element (row, col) */
    public long affineIndex(long row, long col) {
        return (row % groups) * channelsPerGroup + col / spatial;
    }
}
