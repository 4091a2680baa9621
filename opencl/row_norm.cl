/*
 * Row normalization: layer, RMS, group, instance and trailing-axis mean-variance normalization.
 * Each row (one normalized slice, see row_layout in common.cl) is normalized over its cols values,
 * then an optional affine transform is applied: y = ((x - mean) * inv) * w + b.
 *
 * Kernels, chosen in Java (ClBackend.rowNorm, with WorkSizing's sizes) by device family and layout.
 * One work-item per row or block of rows (CPU drivers, where barriers are expensive: 10-100x
 * slower on PoCL):
 *   row_norm_serial     one work-item per row: a plain vectorizable loop over each segment; any layout.
 *   row_norm_rows       contiguous rows up to SHORT_ROW_MAX_BYTES: a block of rows per work-item, rows
 *                       shorter than VW taken VW at a time in lanes (row_norm_lanes, _lanes_wide).
 *   row_norm_pipelined  long contiguous rows with a per-column affine (layer/RMS norm): a block of rows
 *                       per work-item, row r normalized while row r + 1's statistics are gathered.
 * Work-groups (GPUs and accelerators):
 *   row_norm_wg         contiguous rows with one affine entry per value (spatial 1): a power-of-two
 *                       number of work-items per row (several rows per work-group for short rows),
 *                       vector loads, the row kept in registers and read once where it fits, a true
 *                       two-pass of the statistics merged in local memory in a fixed order.
 *   row_norm_group      every other layout: one work-group per row, strided Welford per work-item,
 *                       tree merge in local memory, then a strided (coalesced) apply.
 * And row_apply: the normalization with given statistics (merged moments), any layout.
 * Every kernel handles any row length (1 .. more than a work-group, 65537 and beyond) and none
 * keeps a row in local memory, so no size is limited by local memory.
 */

#define ROW_LAYOUT_ARGS ulong rows, ulong cols, ulong groups, ulong cpg, ulong spatial, ulong segs, \
    ulong seg_stride, ulong outer_stride, ulong group_stride
#define ROW_LAYOUT_INIT {rows, cols, groups, cpg, spatial, segs, seg_stride, outer_stride, group_stride}

/* y = (((x - k) - m) * inv) * w + b over one segment of `len` values starting at row position t0.
 * The mean is k + m (shift and shifted mean): subtracting them one after the other keeps the
 * digits a single float32 mean would round away when the values share a large offset. */
inline void apply_segment(const __global real_t *restrict xs, __global real_t *restrict ys, ulong len,
        ulong aff_base, ulong spatial, const __global param_t *restrict scale, const __global param_t *restrict bias,
        acc_t k, acc_t m, acc_t inv, int flags) {
    const bool has_scale = (flags & HAS_SCALE) != 0;
    const bool has_bias = (flags & HAS_BIAS) != 0;
    if (spatial == 1) {
        /* One affine entry per value (layer norm): VW lanes at a time, the loop unswitched by hand. */
        ulong p = 0;
        if (has_scale && has_bias) {
            for (; p + VW <= len; p += VW) {
                STOREXV(ys, p, ((LOADXV(xs, p) - k) - m) * inv * LOADPV(scale, aff_base + p)
                        + LOADPV(bias, aff_base + p));
            }
        } else if (has_scale) {
            for (; p + VW <= len; p += VW) {
                STOREXV(ys, p, ((LOADXV(xs, p) - k) - m) * inv * LOADPV(scale, aff_base + p));
            }
        } else if (!has_bias) {
            for (; p + VW <= len; p += VW) {
                STOREXV(ys, p, ((LOADXV(xs, p) - k) - m) * inv);
            }
        }
        for (; p < len; p++) {
            acc_t v = ((LOADX(xs, p) - k) - m) * inv;
            if (has_scale) {
                v *= LOADP(scale, aff_base + p);
            }
            if (has_bias) {
                v += LOADP(bias, aff_base + p);
            }
            STOREX(ys, p, v);
        }
        return;
    }
    for (ulong p0 = 0; p0 < len; p0 += spatial) {
        ulong a = aff_base + p0 / spatial;
        acc_t w = has_scale ? LOADP(scale, a) : ONE;
        acc_t b = has_bias ? LOADP(bias, a) : ZERO;
        ulong end = min(len, p0 + spatial);
        ulong p = p0;
        for (; p + VW <= end; p += VW) {
            STOREXV(ys, p, ((LOADXV(xs, p) - k) - m) * inv * w + b);
        }
        for (; p < end; p++) {
            STOREX(ys, p, ((LOADX(xs, p) - k) - m) * inv * w + b);
        }
    }
}

/* Normalizes one row whose first value is at `base` and whose affine entries start at group g:
 * row_norm_serial's work, and row_norm_rows' for rows that do not fill a block of lanes. */
__attribute__((always_inline)) inline void row_norm_one(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias,
        __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out, ulong row, ulong base, ulong g,
        ulong cols, ulong cpg, ulong spatial, ulong segs, ulong seg_stride, float eps, int mode, int flags) {
    ulong len = cols / segs;
    acc_t k = ZERO; /* shift; RMS takes none */
    acc_t m = ZERO; /* mean of x - k */
    acc_t inv;
    if (mode == MODE_RMS) {
        acc_t ss = ZERO, ss_c = ZERO;
        for (ulong i = 0; i < segs; i++) {
            sum_squares_contiguous(x + base + i * seg_stride, len, &ss, &ss_c);
        }
        inv = inv_std_of(mode, ss / (acc_t) cols, eps);
    } else {
        acc_t n = ZERO, m2 = ZERO;
        k = shift_of(LOADX(x, base));
        for (ulong i = 0; i < segs; i++) {
            moments_add_contiguous(x + base + i * seg_stride, len, k, &n, &m, &m2);
        }
        inv = inv_std_of(mode, m2 / (acc_t) cols, eps);
    }
    if ((flags & WRITE_MEAN) != 0) {
        mean_out[row] = k + m;
    }
    if ((flags & WRITE_INVSTD) != 0) {
        inv_out[row] = inv;
    }
    if ((flags & SKIP_APPLY) == 0) {
        ulong aff_base = g * cpg;
        for (ulong i = 0; i < segs; i++) {
            ulong off = base + i * seg_stride;
            apply_segment(x + off, y + off, len, aff_base, spatial, scale, bias, k, m, inv, flags);
        }
    }
}

__kernel void row_norm_serial(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out,
        ROW_LAYOUT_ARGS, float eps, int mode, int flags) {
    ulong row = get_global_id(0);
    if (row >= rows) {
        return;
    }
    const row_layout l = ROW_LAYOUT_INIT;
    row_norm_one(x, scale, bias, y, mean_out, inv_out, row, row_base(&l, row), row_group(&l, row), cols, cpg, spatial,
            segs, seg_stride, eps, mode, flags);
}

/*
 * VW consecutive rows of len values at xb, read with vector loads as they lie in memory into buf
 * (len vectors) and taken apart into lanes in private memory: xt[t] holds value t of every row.
 */
__attribute__((always_inline)) inline void load_lanes(const __global real_t *xb, ulong len, acc_t *buf, accv_t *xt) {
    for (ulong q = 0; q < len; q++) {
        VSTORE(LOADXV(xb, q * VW), 0, buf + q * VW);
    }
    for (ulong t = 0; t < len; t++) {
        xt[t] = lane_gather_private(buf + t, len);
    }
}

/*
 * The lanes' one-pass moments from the sums s1 of d and s2 of d * d, d = x - kr over n values (k:
 * the row's shift, which the mean is kept relative to): *m and *m2 set, and the lanes returned
 * where one pass holds (finite sums, no cancellation past ONE_PASS_LIMIT).
 */
inline maskv_t lanes_one_pass(accv_t s1, accv_t s2, acc_t n, accv_t kr, accv_t k, accv_t *m, accv_t *m2) {
    accv_t rm = s1 / n;
    accv_t cancelled = s1 * rm;
    *m2 = s2 - cancelled;
    *m = (kr - k) + rm;
    return FINITEV(s1) & FINITEV(s2) & (cancelled <= ONE_PASS_LIMIT * *m2);
}

/* The saved statistics of VW consecutive rows r.., one per lane (the lane kernels' epilogue). */
inline void store_lane_stats(int flags, accv_t mean, accv_t inv, __global acc_t *mean_out, __global acc_t *inv_out,
        ulong r) {
    if ((flags & WRITE_MEAN) != 0) {
        VSTORE(mean, 0, mean_out + r);
    }
    if ((flags & WRITE_INVSTD) != 0) {
        VSTORE(inv, 0, inv_out + r);
    }
}

/*
 * VW rows of cols < VW values each, rows r .. r + VW - 1 of a contiguous layout, one row per lane:
 * row_norm_one's operations, in its order, lane by lane. A row shorter than VW takes none of the
 * vector loops of moments_add_contiguous, sum_squares_contiguous and apply_segment, only their
 * scalar loops, and run_shift's loop of fewer than 16 values; the branches on a lane's values (a
 * shift or run mean that is not finite, a one-pass run that would cancel) become selects, the
 * two-pass form taken when any lane needs it. So the results are those of row_norm_serial, bit for
 * bit, where the device rounds vector and scalar operations alike (IEEE division and square root,
 * the same contractions of the same expressions). The block is read (and y written) with vector
 * loads as it lies in memory, and taken apart into lanes in private memory (a gather from global
 * memory stalled on each cache line). aff and together: see lane_groups; pow2: cols is a constant
 * (FOR_ROW_BLOCK).
 */
__attribute__((always_inline)) inline void row_norm_lanes(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out, ulong r,
        ulong cols, ulong spatial, ulong *aff, const bool together, float eps, int mode, int flags, const bool pow2) {
    const accv_t zero = (accv_t) (ZERO);
    const acc_t n = (acc_t) cols;
    accv_t xt[VW - 1];
    acc_t buf[VW * (VW - 1)]; /* the block of rows, as it is in memory */
    load_lanes(x + r * cols, cols, buf, xt);
    accv_t k = zero, m = zero, inv;
    if (mode == MODE_RMS) {
        accv_t s = zero;
        for (ulong t = 0; t < cols; t++) {
            accv_t v = xt[t];
            s += v * v;
        }
        accv_t ss = zero, ss_c = zero;
        kahan_addv(&ss, &ss_c, s);
        inv = inv_std_ofv(mode, ss / n, eps);
    } else {
        k = select(zero, xt[0], FINITEV(xt[0])); /* shift_of */
        accv_t s = zero;
        for (ulong t = 0; t < cols; t++) {
            s += xt[t];
        }
        accv_t rs = s / n;
        accv_t kr = select(k, rs, FINITEV(rs)); /* run_shift */
        accv_t s1 = zero, s2 = zero;
        for (ulong t = 0; t < cols; t++) {
            accv_t d = xt[t] - kr;
            s1 += d;
            s2 += d * d;
        }
        accv_t m2;
        maskv_t one = lanes_one_pass(s1, s2, n, kr, k, &m, &m2);
        if (hsum(select((accv_t) (ONE), zero, one)) != ZERO) { /* a lane takes two passes (all() costs more) */
            accv_t s = zero;
            for (ulong t = 0; t < cols; t++) {
                s += xt[t] - k;
            }
            accv_t run_mean = s / n;
            accv_t q = zero;
            for (ulong t = 0; t < cols; t++) {
                accv_t d = (xt[t] - k) - run_mean;
                q += d * d;
            }
            m = select(run_mean, m, one);
            m2 = select(q, m2, one);
        }
        inv = inv_std_ofv(mode, m2 / n, eps);
    }
    store_lane_stats(flags, k + m, inv, mean_out, inv_out, r);
    if ((flags & SKIP_APPLY) == 0) {
        const bool has_scale = (flags & HAS_SCALE) != 0;
        const bool has_bias = (flags & HAS_BIAS) != 0;
        __global real_t *yb = y + r * cols;
        /* One affine entry per value and the lanes' groups consecutive: the block's entries are
         * aff[0] .. aff[0] + VW * cols, laid out as the block is. With a constant row length the
         * block is normalized as it lies, the rows' statistics spread over their values by
         * shuffles: the same operations on the same operands, without taking y apart. */
        if (together && pow2) {
            acc_t ks[VW], ms[VW], is[VW];
            VSTORE(k, 0, ks);
            VSTORE(m, 0, ms);
            VSTORE(inv, 0, is);
            for (ulong q = 0; q < cols; q++) {
                accv_t v = ((VLOAD(0, buf + q * VW) - lane_expand(ks, q, cols)) - lane_expand(ms, q, cols))
                        * lane_expand(is, q, cols);
                if (has_scale) {
                    v *= LOADPV(scale, aff[0] + q * VW);
                }
                if (has_bias) {
                    v += LOADPV(bias, aff[0] + q * VW);
                }
                STOREXV(yb, q * VW, v);
            }
            return;
        }
        if (together) {
            for (uint j = 1; j < VW; j++) {
                aff[j] = aff[0] + j * cols;
            }
        }
        for (ulong t = 0; t < cols; t++) {
            accv_t v;
            if (spatial == 1) { /* apply_segment's loop over single values */
                v = ((xt[t] - k) - m) * inv;
                if (has_scale) {
                    v *= lane_gather_param(scale, aff, t);
                }
                if (has_bias) {
                    v += lane_gather_param(bias, aff, t);
                }
            } else { /* its loop over runs of `spatial` values */
                ulong a = t / spatial;
                accv_t w = has_scale ? lane_gather_param(scale, aff, a) : (accv_t) (ONE);
                accv_t b = has_bias ? lane_gather_param(bias, aff, a) : zero;
                v = ((xt[t] - k) - m) * inv * w + b;
            }
            lane_scatter_private(buf + t, cols, v);
        }
        for (ulong q = 0; q < cols; q++) {
            STOREXV(yb, q * VW, VLOAD(0, buf + q * VW));
        }
    }
}

/*
 * VW rows of exactly VW values (one affine entry per value), rows r .. r + VW - 1, one row per lane
 * for the statistics: row_norm_one's operations in its order, lane by lane, as row_norm_lanes does
 * for shorter rows. A row of VW values takes one step of the vector loops of moments_add_contiguous
 * (and its two-pass redo) and sum_squares_contiguous and then hsum's tree over its lanes, which
 * hsum_across takes across the rows' vectors; run_shift takes its pairwise tree of 16 values when
 * VW is 16, its loop otherwise. The normalization is apply_segment's vector loop, a row at a time
 * (a row is a vector), with the row's statistics from the lanes. So the bits are row_norm_serial's
 * (ShortRowKernelTest). One at a time, a row of 16 values cost PoCL more in fixed work (shift, two
 * horizontal sums, the run's merge) than in its values.
 */
__attribute__((always_inline)) inline void row_norm_lanes_wide(const __global real_t *x,
        const __global param_t *scale, const __global param_t *bias, __global real_t *y, __global acc_t *mean_out,
        __global acc_t *inv_out, ulong r, const ulong *aff, const bool together, float eps, int mode, int flags) {
    const accv_t zero = (accv_t) (ZERO);
    const acc_t n = (acc_t) VW;
    accv_t xt[VW], e[VW], q[VW];
    acc_t buf[VW * VW]; /* the block of rows, as it is in memory */
    load_lanes(x + r * VW, VW, buf, xt);
    accv_t k = zero, m = zero, inv;
    if (mode == MODE_RMS) {
        for (uint t = 0; t < VW; t++) { /* sum_squares_contiguous: acc += v * v, then its four chains */
            accv_t acc = zero;
            acc += xt[t] * xt[t];
            e[t] = (acc + zero) + (zero + zero);
        }
        accv_t ss = zero, ss_c = zero;
        kahan_addv(&ss, &ss_c, hsum_across(e));
        inv = inv_std_ofv(mode, ss / n, eps);
    } else {
        k = select(zero, xt[0], FINITEV(xt[0])); /* shift_of */
#if VW == 16
        accv_t a = (xt[0] + xt[1]) + (xt[2] + xt[3]);
        accv_t b = (xt[4] + xt[5]) + (xt[6] + xt[7]);
        accv_t c = (xt[8] + xt[9]) + (xt[10] + xt[11]);
        accv_t d = (xt[12] + xt[13]) + (xt[14] + xt[15]);
        accv_t rs = ((a + b) + (c + d)) / (acc_t) 16;
#else
        accv_t rs = zero;
        for (uint t = 0; t < VW; t++) {
            rs += xt[t];
        }
        rs = rs / n;
#endif
        accv_t kr = select(k, rs, FINITEV(rs)); /* run_shift */
        for (uint t = 0; t < VW; t++) { /* MOMENTS' single-vector step: sa += d, qa += d * d */
            accv_t d = xt[t] - kr;
            accv_t sa = zero, qa = zero;
            sa += d;
            qa += d * d;
            e[t] = sa + zero;
            q[t] = qa + zero;
        }
        accv_t s1 = hsum_across(e);
        accv_t s2 = hsum_across(q);
        accv_t m2;
        maskv_t one = lanes_one_pass(s1, s2, n, kr, k, &m, &m2);
        if (hsum(select((accv_t) (ONE), zero, one)) != ZERO) { /* a lane takes two passes */
            for (uint t = 0; t < VW; t++) {
                accv_t acc = zero;
                acc += xt[t] - k;
                e[t] = acc + zero;
            }
            accv_t run_mean = hsum_across(e) / n;
            for (uint t = 0; t < VW; t++) {
                accv_t d = (xt[t] - k) - run_mean;
                accv_t acc2 = zero;
                acc2 += d * d;
                q[t] = acc2 + zero;
            }
            accv_t s2b = hsum_across(q);
            m = select(run_mean, m, one);
            m2 = select(s2b, m2, one);
        }
        inv = inv_std_ofv(mode, m2 / n, eps);
    }
    store_lane_stats(flags, k + m, inv, mean_out, inv_out, r);
    if ((flags & SKIP_APPLY) != 0) {
        return;
    }
    const bool has_scale = (flags & HAS_SCALE) != 0;
    const bool has_bias = (flags & HAS_BIAS) != 0;
    acc_t ks[VW], ms[VW], is[VW];
    VSTORE(k, 0, ks);
    VSTORE(m, 0, ms);
    VSTORE(inv, 0, is);
    for (uint j = 0; j < VW; j++) { /* apply_segment's vector loop over row j */
        ulong a = together ? aff[0] + j * VW : aff[j];
        accv_t v = VLOAD(0, buf + j * VW);
        if (has_scale && has_bias) {
            v = ((v - ks[j]) - ms[j]) * is[j] * LOADPV(scale, a) + LOADPV(bias, a);
        } else if (has_scale) {
            v = ((v - ks[j]) - ms[j]) * is[j] * LOADPV(scale, a);
        } else {
            v = ((v - ks[j]) - ms[j]) * is[j];
            if (has_bias) { /* its scalar loop: the bias added on its own */
                v += LOADPV(bias, a);
            }
        }
        STOREXV(y + (r + j) * VW, 0, v);
    }
}

/*
 * Short contiguous rows on the one-work-item family (CPU): a work-item takes a block of
 * rows_per_item consecutive rows (WorkSizing.shortRowsPerItem), VW rows at a time in the lanes of
 * row_norm_lanes when rows are shorter than VW, the rest (and longer rows) one at a time with
 * row_norm_one. One work-item per row, as in row_norm_serial, cost PoCL more per row than a row of
 * a few values does, and row_base / row_group's 64-bit divisions each row on top; here the row's
 * group is walked. Results: those of row_norm_serial (see row_norm_lanes).
 */
__kernel void row_norm_rows(const __global real_t *x, const __global param_t *scale, const __global param_t *bias,
        __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out, ulong rows, ulong cols, ulong groups,
        ulong cpg, ulong spatial, ulong rows_per_item, float eps, int mode, int flags) {
#define NORM_LANES(len, pow2) \
    row_norm_lanes(x, scale, bias, y, mean_out, inv_out, r, len, spatial, aff, together, eps, mode, flags, pow2)
#define NORM_ONE(len) row_norm_one(x, scale, bias, y, mean_out, inv_out, r, r * (len), g, (len), cpg, spatial, 1, \
        (len), eps, mode, flags)
#define NORM_WIDE row_norm_lanes_wide(x, scale, bias, y, mean_out, inv_out, r, aff, together, eps, mode, flags)
    FOR_ROW_BLOCK(NORM_LANES, NORM_WIDE, NORM_ONE);
#undef NORM_WIDE
#undef NORM_LANES
#undef NORM_ONE
}

/* The statistics of a chunk-by-chunk pass over one row: running moments (or the mean square's
 * Kahan sum for RMS), fed RUN-aligned chunks, so the result is bit for bit that of
 * moments_add_contiguous / sum_squares_contiguous over the whole row. */
typedef struct {
    acc_t k, n, m, m2, ss, ss_c;
} row_acc;

inline void row_acc_start(row_acc *a, int mode, acc_t x0) {
    a->k = mode == MODE_RMS ? ZERO : shift_of(x0);
    a->n = ZERO;
    a->m = ZERO;
    a->m2 = ZERO;
    a->ss = ZERO;
    a->ss_c = ZERO;
}

inline void row_acc_add(row_acc *a, int mode, const __global real_t *p, ulong len) {
    if (mode == MODE_RMS) {
        sum_squares_contiguous(p, len, &a->ss, &a->ss_c);
    } else {
        moments_add_contiguous(p, len, a->k, &a->n, &a->m, &a->m2);
    }
}

/* Finishes a row: *m = shifted mean (0 for RMS), *inv = inverse scale; writes the saved statistics. */
inline void row_acc_finish(const row_acc *a, int mode, ulong cols, float eps, ulong row, int flags,
        __global acc_t *mean_out, __global acc_t *inv_out, acc_t *m, acc_t *inv) {
    *m = mode == MODE_RMS ? ZERO : a->m;
    *inv = inv_std_of(mode, (mode == MODE_RMS ? a->ss : a->m2) / (acc_t) cols, eps);
    if ((flags & WRITE_MEAN) != 0) {
        mean_out[row] = a->k + *m;
    }
    if ((flags & WRITE_INVSTD) != 0) {
        inv_out[row] = *inv;
    }
}

/* apply_segment's expression for one vector at p (scale present; bias when has_bias). */
#define PIPE_APPLY(p) STOREXV(yr, (p), has_bias \
        ? ((LOADXV(xr, (p)) - k) - m) * inv * LOADPV(w, (p)) + LOADPV(b, (p)) \
        : ((LOADXV(xr, (p)) - k) - m) * inv * LOADPV(w, (p)))
/*
 * One full run of row_norm_pipelined's step in a single loop: the statistics of xn[0 .. RUN) added
 * to *a (row_acc_add: sum_squares_contiguous's loop for RMS, moments_add_contiguous's one-pass loop
 * otherwise, and its two-pass redo of the run when that would cancel), and xr[0 .. RUN) normalized
 * into yr (apply_segment with a scale, w and b at the run's columns). The same operations in the same
 * order per value, so the same bits; interleaved vector by vector, the loads of the next row and the
 * stores of this one stay in flight together, where the run-by-run alternation of the two loops ran
 * 5-8% slower on PoCL (Zen 5, 512x65536, layer and RMS norm alike).
 */
inline void pipe_run(const __global real_t *restrict xn, const __global real_t *restrict xr,
        __global real_t *restrict yr, const __global param_t *restrict w, const __global param_t *restrict b,
        row_acc *a, int mode, acc_t k, acc_t m, acc_t inv, const bool has_bias) {
    if (mode == MODE_RMS) {
        accv_t acc = (accv_t) (ZERO), accb = (accv_t) (ZERO), accc = (accv_t) (ZERO), accd = (accv_t) (ZERO);
        for (uint i = 0; i < RUN; i += 4 * VW) {
            SQUARES_STEP(xn, i);
            PIPE_APPLY(i);
            PIPE_APPLY(i + VW);
            PIPE_APPLY(i + 2 * VW);
            PIPE_APPLY(i + 3 * VW);
        }
        kahan_add(&a->ss, &a->ss_c, hsum((acc + accc) + (accb + accd)));
        return;
    }
    acc_t kr = run_shift(xn, RUN, a->k);
    accv_t sa = (accv_t) (ZERO), sb = (accv_t) (ZERO), qa = (accv_t) (ZERO), qb = (accv_t) (ZERO);
    for (uint i = 0; i < RUN; i += 2 * VW) {
        MOMENTS_STEP(xn, i, kr);
        PIPE_APPLY(i);
        PIPE_APPLY(i + VW);
    }
    acc_t s = hsum(sa + sb);
    acc_t s2 = hsum(qa + qb);
    acc_t rm = s / (acc_t) RUN;
    acc_t cancelled = s * rm;
    acc_t m2r = s2 - cancelled;
    if (isfinite(s) && isfinite(s2) && cancelled <= ONE_PASS_LIMIT * m2r) {
        moments_merge(&a->n, &a->m, &a->m2, (acc_t) RUN, (kr - a->k) + rm, m2r);
    } else {
        moments_add_contiguous(xn, RUN, a->k, &a->n, &a->m, &a->m2);
    }
}
#undef PIPE_APPLY

/*
 * Long contiguous rows (layer and RMS norm, one work-item per block of rows): while row r is
 * normalized, chunk by chunk, the statistics of row r + 1 are gathered from the same chunk
 * positions. A row-at-a-time kernel reads a whole row (statistics) and then reads it again and
 * writes it (normalization), so for rows of hundreds of KiB one core streams only reads, then only
 * writes; interleaving the two keeps both directions busy, as a copy does. Each row is still read
 * twice, the second time from cache. Same arithmetic, same results as row_norm_serial.
 */
__kernel void row_norm_pipelined(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out,
        ulong rows, ulong cols, ulong rows_per_item, float eps, int mode, int flags) {
    ulong r0 = get_global_id(0) * rows_per_item;
    if (r0 >= rows) {
        return;
    }
    ulong r1 = min(rows, r0 + rows_per_item);
    row_acc cur;
    row_acc_start(&cur, mode, LOADX(x, r0 * cols));
    row_acc_add(&cur, mode, x + r0 * cols, cols);
    acc_t m, inv;
    row_acc_finish(&cur, mode, cols, eps, r0, flags, mean_out, inv_out, &m, &inv);
    const bool apply = (flags & SKIP_APPLY) == 0;
    for (ulong r = r0; r < r1; r++) {
        const bool more = r + 1 < r1;
        const __global real_t *xr = x + r * cols;
        const __global real_t *xn = xr + cols;
        row_acc next;
        row_acc_start(&next, mode, more ? LOADX(xn, 0) : ZERO);
        const bool fuse = more && apply && (flags & HAS_SCALE) != 0; /* pipe_run's case */
        for (ulong c0 = 0; c0 < cols; c0 += RUN) {
            ulong len = min((ulong) RUN, cols - c0);
            if (fuse && len == RUN) {
                pipe_run(xn + c0, xr + c0, y + r * cols + c0, scale + c0, bias + c0, &next, mode, cur.k, m, inv,
                        (flags & HAS_BIAS) != 0);
                continue;
            }
            if (more) {
                row_acc_add(&next, mode, xn + c0, len);
            }
            if (apply) {
                apply_segment(xr + c0, y + r * cols + c0, len, c0, 1, scale, bias, cur.k, m, inv, flags);
            }
        }
        if (more) {
            cur = next;
            row_acc_finish(&cur, mode, cols, eps, r + 1, flags, mean_out, inv_out, &m, &inv);
        }
    }
}

/* Local memory: three arrays of get_local_size(0) acc_t. The work-group size is a power of two. */
__kernel void row_norm_group(const __global real_t *x, const __global param_t *scale,
        const __global param_t *bias, __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out,
        ROW_LAYOUT_ARGS, float eps, int mode, int flags, __local acc_t *ln, __local acc_t *lmean, __local acc_t *lm2) {
    ulong row = get_group_id(0);
    uint lid = (uint) get_local_id(0);
    uint wg = (uint) get_local_size(0);
    const row_layout l = ROW_LAYOUT_INIT;
    ulong base = row_base(&l, row);
    __local acc_t *stats = ln; /* after the reduction: stats[0] = shifted mean, stats[1] = inv */
    acc_t k = mode == MODE_RMS ? ZERO : shift_of(LOADX(x, base));
    if (mode == MODE_RMS) {
        acc_t s = ZERO, s_c = ZERO;
        for (ulong t = lid; t < cols; t += wg) {
            acc_t v = LOADX(x, row_offset(&l, base, t));
            kahan_add(&s, &s_c, v * v);
        }
        sum_reduce_local(lm2, lid, wg, s);
        if (lid == 0) {
            stats[0] = ZERO;
            stats[1] = inv_std_of(mode, lm2[0] / (acc_t) cols, eps);
        }
    } else {
        acc_t n = ZERO, m = ZERO, m2 = ZERO;
        for (ulong t = lid; t < cols; t += wg) {
            moments_add_one(&n, &m, &m2, LOADX(x, row_offset(&l, base, t)) - k);
        }
        moments_reduce_local(ln, lmean, lm2, lid, wg, n, m, m2);
        if (lid == 0) {
            acc_t mean = lmean[0];
            acc_t var = lm2[0] / (acc_t) cols;
            stats[0] = mean;
            stats[1] = inv_std_of(mode, var, eps);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    acc_t mean = stats[0];
    acc_t inv = stats[1];
    if (lid == 0) {
        if ((flags & WRITE_MEAN) != 0) {
            mean_out[row] = k + mean;
        }
        if ((flags & WRITE_INVSTD) != 0) {
            inv_out[row] = inv;
        }
    }
    if ((flags & SKIP_APPLY) == 0) {
        const bool has_scale = (flags & HAS_SCALE) != 0;
        const bool has_bias = (flags & HAS_BIAS) != 0;
        for (ulong t = lid; t < cols; t += wg) {
            ulong i = row_offset(&l, base, t);
            ulong a = row_affine(&l, row, t);
            acc_t w = has_scale ? LOADP(scale, a) : ONE;
            acc_t b = has_bias ? LOADP(bias, a) : ZERO;
            STOREX(y, i, ((LOADX(x, i) - k) - mean) * inv * w + b);
        }
    }
}

/* ---- row_norm_wg: contiguous rows with one affine entry per value, on the work-group family ---- */

/* Vectors of a row one work-item of row_norm_wg keeps in registers: 64 values whatever VW is. */
#define WG_VECS (64 / VW)

/*
 * Sums a and b over the `items` consecutive work-items of each row slot (items a power of two, j
 * the work-item's place in its slot): trees in local memory in a fixed order, so the same bits on
 * every run. Every work-item of the group calls it (its barriers are the group's). Ends with a
 * barrier, so that la and lb may be written again.
 */
inline void wg_slot_sum2(__local acc_t *la, __local acc_t *lb, uint lid, uint j, uint items, acc_t *a, acc_t *b) {
    la[lid] = *a;
    lb[lid] = *b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = items >> 1; s > 0; s >>= 1) {
        if (j < s) {
            la[lid] += la[lid + s];
            lb[lid] += lb[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *a = la[lid - j];
    *b = lb[lid - j];
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Whether row position q * VW starts one of this work-item's register vectors (i) that holds values. */
#define WG_HAS(i) (valid && j + (ulong) (i) * items < nv)

/* y = ((x - k) - m) * inv * w + b for the VW values at row position p (w and b at aff + p). */
#define WG_APPLYV(v, p) \
    do { \
        accv_t o_ = ((v) - k) - m; \
        o_ *= inv; \
        if (has_scale) { \
            o_ *= LOADPV(scale, aff + (p)); \
        } \
        if (has_bias) { \
            o_ += LOADPV(bias, aff + (p)); \
        } \
        STOREXV(yr, (p), o_); \
    } while (0)

/*
 * Contiguous rows whose affine entry is per column (spatial 1: layer and RMS norm, group norm of
 * (N, C) data) on the work-group family (GPUs). Each row is taken by `items` consecutive
 * work-items (a power of two, WorkSizing.rowItems), so a group of wg work-items normalizes
 * wg / items rows: many for short rows, one for long ones. Work-item j of a row takes the row's
 * vectors j, j + items, ... (vector loads, coalesced across the row's work-items) and, after them,
 * the values past the last whole vector (fewer than VW, one at a time, read from global memory
 * each time they are needed). The row's first value and its affine entries are found once per
 * row: no division per value.
 *
 * Statistics, from k = the row's first value (shift_of; 0 for RMS): the work-items' float sums of
 * x - k and (x - k)^2 (of x^2 for RMS), merged per row in local memory in a fixed order; m = the
 * sum of x - k over cols. Then the sum of squared deviations ((x - k) - m)^2, merged the same way:
 * a true two-pass. Rows of at most WG_VECS * VW * items values are read once: each work-item keeps
 * its vectors in registers and both passes and the normalization take them from there. Longer rows
 * are read from global memory for the first pass and for the normalization, and for the second
 * pass only where the one-pass M2 = sum (x - k)^2 - m sum (x - k) would cancel (the mean far from
 * the first value: n m^2 > ONE_PASS_LIMIT M2, as in moments_add_contiguous and the Java backend)
 * or a sum is not finite. Outputs as row_norm_group's: mean_out = k + m, inv_out, and
 * y = ((x - k) - m) * inv * w + b.
 *
 * Local memory: two arrays of wg acc_t; wg is a power of two and a multiple of items. The two
 * merges are made by every work-item, outside any branch (PoCL's compiler replicates the code after
 * a barrier in a branch, and took minutes over a version with its merges in branches); the
 * work-items of rows past the last one take part with zeros.
 */
__kernel void row_norm_wg(const __global real_t *x, const __global param_t *scale, const __global param_t *bias,
        __global real_t *y, __global acc_t *mean_out, __global acc_t *inv_out, ulong rows, ulong cols,
        ulong groups, ulong cpg, uint items, float eps, int mode, int flags, __local acc_t *la,
        __local acc_t *lb) {
    const uint lid = (uint) get_local_id(0);
    const uint j = lid & (items - 1);
    const ulong row = get_group_id(0) * (get_local_size(0) / items) + lid / items;
    const bool valid = row < rows;
    const bool rms = mode == MODE_RMS;
    const ulong nv = cols / VW;                      /* whole vectors in a row */
    const ulong tail0 = nv * VW;                     /* the first value past them */
    const bool fits = nv <= (ulong) WG_VECS * items; /* the same for every work-item */
    const ulong base = valid ? row * cols : 0;
    const __global real_t *xr = x + base;
    __global real_t *yr = y + base;
    const ulong aff = valid ? (row % groups) * cpg : 0;
    const acc_t n = (acc_t) cols;
    const accv_t zero = (accv_t) (ZERO);
    const acc_t k = valid && !rms ? shift_of(LOADX(xr, 0)) : ZERO;
    accv_t v[WG_VECS];
    /* First pass: s1 = sum of d = x - k (of x^2 for RMS), s2 = sum of d^2 (long rows only). */
    accv_t s1v = zero, s2v = zero;
    if (fits) {
        for (uint i = 0; i < WG_VECS; i++) {
            if (WG_HAS(i)) {
                v[i] = LOADXV(xr, (j + (ulong) i * items) * VW);
                accv_t d = v[i] - k;
                s1v += rms ? d * d : d;
            }
        }
    } else if (valid) {
        for (ulong q = j; q < nv; q += items) {
            accv_t d = LOADXV(xr, q * VW) - k;
            s1v += rms ? d * d : d;
            s2v += d * d;
        }
    }
    acc_t s1 = hsum(s1v), s2 = hsum(s2v);
    for (ulong t = tail0 + j; valid && t < cols; t += items) {
        acc_t d = LOADX(xr, t) - k;
        s1 += rms ? d * d : d;
        s2 += d * d;
    }
    wg_slot_sum2(la, lb, lid, j, items, &s1, &s2);
    const acc_t m = rms ? ZERO : s1 / n;
    const acc_t cancelled = s1 * m;
    /* Second pass (not for RMS): the sum of ((x - k) - m)^2, from the registers when the row fits. */
    const bool one_pass = isfinite(s1) && isfinite(s2) && cancelled <= ONE_PASS_LIMIT * (s2 - cancelled);
    const bool second = !rms && (fits || !one_pass);
    acc_t q2 = ZERO, unused = ZERO;
    if (second) {
        accv_t qv = zero;
        if (fits) {
            for (uint i = 0; i < WG_VECS; i++) {
                if (WG_HAS(i)) {
                    accv_t d = (v[i] - k) - m;
                    qv += d * d;
                }
            }
        } else if (valid) {
            for (ulong q = j; q < nv; q += items) {
                accv_t d = (LOADXV(xr, q * VW) - k) - m;
                qv += d * d;
            }
        }
        q2 = hsum(qv);
        for (ulong t = tail0 + j; valid && t < cols; t += items) {
            acc_t d = (LOADX(xr, t) - k) - m;
            q2 += d * d;
        }
    }
    wg_slot_sum2(la, lb, lid, j, items, &q2, &unused);
    const acc_t inv = inv_std_of(mode, (rms ? s1 : second ? q2 : s2 - cancelled) / n, eps);
    if (!valid) {
        return; /* after the last barrier */
    }
    if (j == 0) {
        if ((flags & WRITE_MEAN) != 0) {
            mean_out[row] = k + m;
        }
        if ((flags & WRITE_INVSTD) != 0) {
            inv_out[row] = inv;
        }
    }
    if ((flags & SKIP_APPLY) != 0) {
        return;
    }
    const bool has_scale = (flags & HAS_SCALE) != 0;
    const bool has_bias = (flags & HAS_BIAS) != 0;
    if (fits) {
        for (uint i = 0; i < WG_VECS; i++) {
            if (WG_HAS(i)) {
                WG_APPLYV(v[i], (j + (ulong) i * items) * VW);
            }
        }
    } else {
        for (ulong q = j; q < nv; q += items) {
            WG_APPLYV(LOADXV(xr, q * VW), q * VW);
        }
    }
    for (ulong t = tail0 + j; t < cols; t += items) {
        acc_t o = ((LOADX(xr, t) - k) - m) * inv;
        if (has_scale) {
            o *= LOADP(scale, aff + t);
        }
        if (has_bias) {
            o += LOADP(bias, aff + t);
        }
        STOREX(yr, t, o);
    }
}
#undef WG_APPLYV
#undef WG_HAS

/* Normalization with given statistics (e.g. moments merged across devices). NDRange (cols, rows).
 * mean is not read for RMS; mean_lo (the mean's rounding error) only with HAS_MEAN_LO. */
__kernel void row_apply(const __global real_t *x, const __global acc_t *mean, const __global acc_t *mean_lo,
        const __global acc_t *inv, const __global param_t *scale, const __global param_t *bias, __global real_t *y,
        ROW_LAYOUT_ARGS, int rms, int flags) {
    ulong t = get_global_id(0);
    ulong row = get_global_id(1);
    const row_layout l = ROW_LAYOUT_INIT;
    ulong i = row_offset(&l, row_base(&l, row), t);
    ulong a = row_affine(&l, row, t);
    acc_t mu = rms != 0 ? ZERO : mean[row];
    acc_t lo = (flags & HAS_MEAN_LO) != 0 ? mean_lo[row] : ZERO;
    acc_t w = (flags & HAS_SCALE) != 0 ? LOADP(scale, a) : ONE;
    acc_t b = (flags & HAS_BIAS) != 0 ? LOADP(bias, a) : ZERO;
    STOREX(y, i, ((LOADX(x, i) - mu) - lo) * inv[row] * w + b);
}
