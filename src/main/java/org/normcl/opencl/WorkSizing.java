package org.normcl.opencl;

import org.normcl.DeviceInfo;

/**
 * The one place kernel strategy and work sizes are decided per device. CPU drivers (PoCL) run a
 * plain loop per work-item far faster than work-group reductions with barriers, so CPUs get the
 * serial kernels; GPUs and accelerators get the work-group kernels (row_norm_wg for contiguous
 * rows with one affine entry per value, {@link #rowItems}; row_norm_group for other rows). The
 * numbers {@code normcl tune} measures per device come in a {@link Tuning}; its defaults are the
 * constants below.
 */
final class WorkSizing {
    /** Upper bound on work-group size for the reduction kernels (default of {@link Tuning#maxGroupSize}). */
    static final int MAX_GROUP = 256;
    /** Upper bound on the one-work-item-per-row kernels' groups (default of {@link Tuning#serialGroupCap}). */
    static final int SERIAL_GROUP_CAP = 64;
    /** Work-items per compute unit of the pipelined row kernel (default of {@link Tuning#pipelineItemsPerUnit}). */
    static final int PIPELINE_ITEMS_PER_UNIT = 8;
    /** Local arrays per work-item in the reduction kernels (count, mean, M2). */
    static final int LOCAL_VALUES_PER_ITEM = 3;
    /** Values below which a channel is not split into more parts. */
    static final long MIN_VALUES_PER_PART = 16_384;

    private final DeviceInfo device;
    private final boolean serial;
    private final long maxItemsDim0;
    private final long pipelineMinRowBytes;
    private final long shortRowMaxBytes;
    private final long channelBlockMinBytes;
    private final Tuning tuning;
    /** Blocks of channels per compute unit of channel_norm_blocks and channel_backward_blocks. */
    static final int CHANNEL_BLOCKS_PER_UNIT = 2;
    /** Channel size (bytes) from which the batch-norm kernels take blocks of channels, by default. */
    static final long CHANNEL_BLOCK_MIN_BYTES = 16384;
    /** Most channels a block of channel_norm_blocks and channel_backward_blocks holds: CHANNEL_BLOCK_MAX. */
    static final int CHANNEL_BLOCK_MAX = 32;

    /**
     * System property that forces a kernel family on every device: {@code serial}, {@code group},
     * {@code pipelined} (serial, with every contiguous layer/RMS row on the pipelined kernel and
     * every batch-norm channel in blocks, not only long ones) or {@code rowwise} (serial, with every
     * row on a work-item of its own: no blocks of short rows, see {@link #shortRowsPerItem}); tests
     * use it to run every family on a CPU driver. Unset or {@code auto} picks by device type.
     */
    static final String STRATEGY_PROPERTY = "normcl.kernels";

    /**
     * @param device the device
     * @param maxItemsDim0 CL_DEVICE_MAX_WORK_ITEM_SIZES[0], or 0 if unknown
     * @param tuning the parameters measured for the device, or {@link Tuning#defaults()}
     */
    WorkSizing(DeviceInfo device, long maxItemsDim0, Tuning tuning) {
        this.device = device;
        this.tuning = tuning;
        String forced = System.getProperty(STRATEGY_PROPERTY, "auto");
        long pipelineFrom = tuning.pipelineMinRowBytes();
        long shortRowMax = SHORT_ROW_MAX_BYTES;
        switch (forced) {
            case "serial":
                this.serial = true;
                break;
            case "pipelined":
                this.serial = true;
                pipelineFrom = 0;
                break;
            case "rowwise":
                this.serial = true;
                shortRowMax = -1;
                break;
            case "group":
                this.serial = false;
                break;
            case "auto":
                this.serial = device.isCpu();
                break;
            default:
                throw new IllegalArgumentException("-D" + STRATEGY_PROPERTY + "=" + forced
                        + ": expected auto, serial, pipelined, rowwise or group");
        }
        this.pipelineMinRowBytes = pipelineFrom;
        this.shortRowMaxBytes = shortRowMax;
        // Not a tuned parameter: the tuner's pipelining threshold is scored on row workloads only.
        this.channelBlockMinBytes = "pipelined".equals(forced) ? 0 : CHANNEL_BLOCK_MIN_BYTES;
        this.maxItemsDim0 = maxItemsDim0;
    }

    /**
     * @return the parameters the kernels run with: the tuning with the overrides applied (the
     *     vector width as {@link #vectorWidth()} resolves it, -Dnormcl.vectorWidth included, and
     *     {@code pipelineMinRowBytes} 0 under -Dnormcl.kernels=pipelined), so that a report of
     *     them (bench's {@code kernel_parameters}) says what ran, not what the file said
     */
    Tuning tuning() {
        return tuning.withVectorWidth(vectorWidth()).withPipelineMinRowBytes(pipelineMinRowBytes);
    }

    /** @return true for one-work-item-per-row kernels (CPU), false for work-group kernels */
    boolean serial() {
        return serial;
    }

    /**
     * @param kernelMaxGroup the kernel's CL_KERNEL_WORK_GROUP_SIZE
     * @param statBytes bytes per statistic (4, or 8 for float64 data)
     * @return a power-of-two work-group size that fits the device, the kernel and local memory
     */
    int groupSize(long kernelMaxGroup, int statBytes) {
        long limit = Math.min(tuning.maxGroupSize(), Math.min(device.maxWorkGroupSize(), kernelMaxGroup));
        limit = Math.min(limit, maxItemsDim0 > 0 ? maxItemsDim0 : limit);
        if (device.localMemBytes() > 0) {
            limit = Math.min(limit, device.localMemBytes() / ((long) LOCAL_VALUES_PER_ITEM * statBytes));
        }
        int g = 1;
        while ((long) g * 2 <= limit) {
            g *= 2;
        }
        return g;
    }

    /**
     * Work-items per row of row_norm_wg (contiguous rows, one affine entry per value, on the
     * work-group family), which runs {@code groupSize / rowItems} rows per work-group: about
     * {@value #WG_VECTORS_PER_ITEM} vector widths of a row per work-item, so that a short row takes
     * a few work-items and a work-group holds many rows (layer norm of 65536x128 at VW 8: 8
     * work-items a row, 32 rows a group of 256, where row_norm_group ran 256 work-items over the
     * 128 values), and a long row takes the whole group. The kernel keeps a work-item's share of a
     * row in registers (64 values) where the row fits, so up to 64 x groupSize values (16384 at
     * 256) are read once. Not measured on a GPU (none here); the maximal group size is the
     * {@link Tuning#maxGroupSize} hook.
     *
     * @param cols values per row
     * @param groupSize the kernel's work-group size (a power of two)
     * @return a power of two in [1, groupSize], or 0 on the one-work-item family (CPU drivers)
     */
    int rowItems(long cols, int groupSize) {
        if (serial) {
            return 0;
        }
        long perItem = (long) WG_VECTORS_PER_ITEM * vectorWidth();
        long wanted = (cols + perItem - 1) / perItem;
        int items = 1;
        while (items < groupSize && items < wanted) {
            items *= 2;
        }
        return items;
    }

    /** Vector widths of a row per work-item that {@link #rowItems} aims at. */
    static final int WG_VECTORS_PER_ITEM = 2;

    /**
     * Work-group size for the one-work-item-per-row kernels. Left to the driver, PoCL may put every
     * row in one work-group, which runs on one core; small groups spread rows over all cores, and
     * groups of up to {@link Tuning#serialGroupCap} (default {@value #SERIAL_GROUP_CAP}) keep the
     * per-group overhead low when rows are many.
     *
     * @param items the number of work-items
     * @return a power of two in [1, serialGroupCap]
     */
    long serialGroupSize(long items) {
        long units = Math.max(1, device.computeUnits());
        long target = items / (16 * units);
        long g = 1;
        while (g * 2 <= Math.min(tuning.serialGroupCap(), target)) {
            g *= 2;
        }
        return g;
    }

    /**
     * Row blocks for the column-sum stage of the layer-norm parameter gradients: enough blocks
     * that (columns x blocks) work-items fill the device, each block at least 64 rows.
     */
    long rowBlocks(long rows, long cols) {
        long units = Math.max(1, device.computeUnits());
        long wanted = Math.max(1, (serial ? 16 : 256) * units * 64 / Math.max(1, cols));
        return Math.max(1, Math.min(wanted, rows / 64));
    }

    /**
     * Rows per work-item of the pipelined row kernel (row_norm_pipelined), or 0 to use the
     * row-at-a-time kernel. Only the one-work-item-per-row family pipelines, and only rows of at
     * least {@link Tuning#pipelineMinRowBytes} bytes (default {@value #PIPELINE_MIN_ROW_BYTES}):
     * below that a row's two passes already overlap in cache. Blocks of rows are sized to give each
     * compute unit about {@link Tuning#pipelineItemsPerUnit} (default 8) work-items; a block's
     * first row is read once without overlap, so blocks are at least 4 rows.
     *
     * @param rows rows to normalize
     * @param rowBytes bytes of one row
     * @return rows per work-item, or 0
     */
    long pipelinedRowsPerItem(long rows, long rowBytes) {
        if (!serial() || rowBytes < pipelineMinRowBytes || rows < 2) {
            return 0;
        }
        long units = Math.max(1, device.computeUnits());
        return Math.max(4, rows / ((long) tuning.pipelineItemsPerUnit() * units));
    }

    /**
     * Channels per work-item of the blocked batch-norm kernels (channel_norm_blocks,
     * channel_backward_blocks), or 0 to use one work-item per channel (channel_norm_serial,
     * channel_backward_fused): only the one-work-item family, only channels of at least
     * {@value #CHANNEL_BLOCK_MIN_BYTES} bytes (any size under -Dnormcl.kernels=pipelined),
     * {@value #CHANNEL_BLOCKS_PER_UNIT} blocks per compute unit, at most {@value #CHANNEL_BLOCK_MAX}
     * channels a block (the kernels' private arrays). Larger blocks read longer runs of memory: on
     * PoCL (Zen 5, 2 units) batch norm of 32x64x56x56 moved 0.45-0.48 of the copy kernel's GB/s one
     * channel a work-item, 0.56 in blocks of 4, 0.63 of 8, 0.70-0.77 of 16 and 0.78 of 32; two
     * blocks a unit leave work to balance a slowed core.
     *
     * @param channels channels to normalize
     * @param channelBytes bytes of one channel (all its segments)
     * @return channels per work-item, or 0
     */
    long channelsPerBlock(long channels, long channelBytes) {
        if (!serial() || channelBytes < channelBlockMinBytes || channels < 2) {
            return 0;
        }
        long blocks = (long) CHANNEL_BLOCKS_PER_UNIT * Math.max(1, device.computeUnits());
        return Math.min(CHANNEL_BLOCK_MAX, Math.max(2, (channels + blocks - 1) / blocks));
    }

    /**
     * Rows per work-item of the blocked short-row kernels (row_norm_rows, row_backward_rows), or 0
     * to use the one-work-item-per-row kernels (row_norm_serial, row_backward_serial). Only the
     * one-work-item family (CPU drivers) takes them, only for contiguous rows (the caller checks)
     * of at most {@value #SHORT_ROW_MAX_BYTES} bytes, and not under {@code -Dnormcl.kernels=rowwise}.
     * For short rows PoCL's cost per work-item and the per-row set-up (two 64-bit divisions for the
     * row's address and group, the loops' bounds) outweigh the row's own work; a block walks the
     * group index and takes rows shorter than the vector width VW at a time, one per lane. A block
     * is a multiple of {@link #vectorWidth()} rows (so that its lanes start at a row multiple of
     * VW), sized for about {@value #SHORT_ROW_ITEMS_PER_UNIT} work-items per compute unit, twice
     * {@link #rowsPerItem}'s 8, so that a core slowed by the host leaves work for the other (not
     * tuned further).
     *
     * <p>The threshold, measured on PoCL (2 cores, AVX-512, VW 16, float32, the same build with
     * {@code -Dnormcl.kernels=rowwise} as the baseline, two runs each, copy 55-75 GB/s): group
     * norm of 65536x128 in 32 groups (rows of 16 B) 3.7 ms against 29-30 ms; group norm of
     * 8192x1024 in 32 groups (128 B) 3.7 ms against 4.5-5.2 ms; layer norm 65536x128 (512 B) 1.5
     * against 1.65-1.73 ms; layer norm 8192x1024 (4 KiB) 1.10 against 1.23-1.25 ms. Longer rows
     * were not measured: a row's own work grows with it while the per-row cost does not, and from
     * {@link #PIPELINE_MIN_ROW_BYTES} the layer/RMS rows take the pipelined kernel.
     *
     * @param rows rows to normalize
     * @param rowBytes bytes of one row
     * @return rows per work-item (a multiple of {@link #vectorWidth()}), or 0
     */
    long shortRowsPerItem(long rows, long rowBytes) {
        if (!serial || rowBytes > shortRowMaxBytes || rows < 2) {
            return 0;
        }
        long items = SHORT_ROW_ITEMS_PER_UNIT * Math.max(1, device.computeUnits());
        return roundUp(Math.max(1, (rows + items - 1) / items), vectorWidth());
    }

    /** Largest row, in bytes, that {@link #shortRowsPerItem} blocks (see there for the measurement). */
    static final long SHORT_ROW_MAX_BYTES = 4096;
    /** Work-items per compute unit of the blocked short-row kernels. */
    static final long SHORT_ROW_ITEMS_PER_UNIT = 16;

    /**
     * Row size from which {@link #pipelinedRowsPerItem} pipelines. On PoCL (AVX-512, 2 cores,
     * ratios to the copy kernel) LayerNorm at 512x65536 (256 KiB rows) went from 0.63 to 0.83 and
     * at 1024x8192 (32 KiB) from 0.66 to 0.73; at 8192x1024 (4 KiB) it gained nothing.
     */
    static final long PIPELINE_MIN_ROW_BYTES = 16 * 1024;

    /**
     * The vector width of the kernels' contiguous loops: the device's preferred float width
     * clamped to 4..16 (16 on AVX-512 CPUs, where it halves the instructions; 8 when the device
     * reports 1, as GPUs do: their one-work-item loops are rare and short), unless the
     * {@link Tuning} names one. -Dnormcl.vectorWidth overrides both.
     */
    int vectorWidth() {
        String forced = System.getProperty("normcl.vectorWidth");
        if (forced != null) {
            return clampVectorWidth(Integer.parseInt(forced));
        }
        return tuning.vectorWidth() != Tuning.DEVICE_VECTOR_WIDTH ? tuning.vectorWidth() : preferredVectorWidth(device);
    }

    /** @return the vector width a device gets untuned: its preferred float width clamped to 4..16 (8 for 1) */
    static int preferredVectorWidth(DeviceInfo device) {
        return clampVectorWidth(device.preferredVectorWidthFloat());
    }

    private static int clampVectorWidth(int w) {
        if (w <= 1) {
            return 8;
        }
        return w >= 16 ? 16 : w >= 8 ? 8 : 4;
    }

    /**
     * Row parts for channel_partial_cols (where not even one row block of channel_partial_rows
     * fits an allocation): enough (blocks of VW channels) x parts work-items for about 8 per
     * compute unit, each part at least 64 rows.
     *
     * @param rows rows (values per channel)
     * @param channels channels (one per column)
     * @param vectorWidth channels per block
     * @return parts per channel, at least 1
     */
    long columnParts(long rows, long channels, int vectorWidth) {
        long blocks = (channels + vectorWidth - 1) / vectorWidth;
        long wanted = 8 * Math.max(1, device.computeUnits());
        long parts = (wanted + blocks - 1) / blocks;
        return Math.max(1, Math.min(parts, rows / 64));
    }

    /**
     * Row blocks for channel_partial_rows: about 8 per compute unit, each at least 64 rows (every
     * block adds a pass over the columns' accumulators and a partial per column to merge).
     *
     * @param rows rows to reduce
     * @return blocks, at least 1
     */
    long rowParts(long rows) {
        return rowBlocksPerUnit(rows, 8);
    }

    /**
     * Row blocks for the layer/RMS-norm parameter gradients, row_backward_affine_rows and
     * affine_grad_rows (the two must agree for dScale and dBias to keep their bits): two per
     * compute unit, each at least 64 rows. Each block zeroes, updates and stores accumulators of
     * its own (16 bytes a column: 1 MiB at 65536 columns) and starts its pipeline with a pass of
     * its own. On PoCL (2 compute units) 4 blocks instead of {@link #rowParts}' 8-16 took the
     * backward pass from 0.62-0.80 to 0.77-0.94 of the copy at 1024x8192 and from 0.54-0.60 to
     * 0.63-0.64 at 512x65536, the other shapes unchanged (docs/performance.md); one block per
     * unit was slower when the host slowed a core, since nothing was left to balance the other.
     *
     * @param rows rows to reduce
     * @return blocks, at least 1
     */
    long gradRowParts(long rows) {
        return rowBlocksPerUnit(rows, 2);
    }

    /** @return {@code perUnit} blocks per compute unit, each at least 64 rows, at least 1 */
    private long rowBlocksPerUnit(long rows, long perUnit) {
        return Math.max(1, Math.min(perUnit * Math.max(1, device.computeUnits()), rows / 64));
    }

    /**
     * Rows per work-item for the one-work-item-per-block-of-rows kernels: about 8 work-items per
     * compute unit (PoCL hands work-groups to its threads; a few per core balance the load).
     *
     * @param rows rows
     * @return rows per work-item, at least 1
     */
    long rowsPerItem(long rows) {
        long items = 8 * Math.max(1, device.computeUnits());
        return Math.max(1, (rows + items - 1) / items);
    }

    /** @return {@code items} rounded up to a multiple of {@code group} */
    static long roundUp(long items, long group) {
        return (items + group - 1) / group * group;
    }

    /**
     * @return how many parts to split each channel into for the first statistics stage: enough
     *     for every compute unit to have work, none smaller than {@link #MIN_VALUES_PER_PART}
     */
    long partsPerChannel(long channels, long perChannel, int groupSize) {
        long units = Math.max(1, device.computeUnits());
        long wanted = serial ? 4 * units : 8 * units;
        long parts = (wanted + channels - 1) / channels;
        long minPer = serial ? MIN_VALUES_PER_PART : Math.max(MIN_VALUES_PER_PART, 4L * groupSize);
        long maxParts = Math.max(1, perChannel / minPer);
        return Math.max(1, Math.min(parts, maxParts));
    }
}
