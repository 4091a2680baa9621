/*
 * NormCL common definitions: element types, statistic modes, Chan's merge of moments, and the
 * run-wise accumulation used by the work-item-per-row (CPU) kernels.
 *
 * Element types. The program is built once per (data type, parameter type) pair with -D options:
 *   DTYPE_F32 (default), DTYPE_F16, DTYPE_BF16 or DTYPE_F64 for X, Y, dY and dX  -> real_t, LOADX, STOREX
 *   PARAM_F32 (default), PARAM_F16, PARAM_BF16 or PARAM_F64 for scale, bias and running statistics
 *                                                                              -> param_t, LOADP, STOREP
 * Statistics are computed and saved in acc_t: float, or double for float64 data. float16 goes
 * through vload_half/vstore_half_rte (core OpenCL C: no cl_khr_fp16 needed); bfloat16 is stored
 * as 16-bit words, widened by a shift and rounded to nearest even on store (NaN stays NaN).
 *
 * Statistics are always computed stably: a run of at most RUN contiguous values is read once, as
 * the sums of x - kr and (x - kr)^2 from its own shift kr (the mean of its first 16 values), and
 * taken again in two passes (sum, then sum of squared deviations from the run mean, while the run
 * is still in cache) whenever the one-pass form would cancel; runs are combined with Chan et al.'s
 * parallel formula. Plain E[x^2] - E[x]^2 is never used. Run means are kept relative to a
 * reference value K of the slice (its first finite element): with a large common offset (1e4 on
 * unit variance) they stay small, so merging them does not round at ulp(offset) each time; the
 * mean is K + shifted mean.
 *
 * OpenCL C 1.2 only (double only when the device has cl_khr_fp64 and the data is float64).
 */

#ifndef RUN
#define RUN 1024
#endif

/* Vector width of the contiguous loops: the device's preferred float width (4, 8 or 16), set by
 * the host (WorkSizing.vectorWidth); 16 lanes halve the instructions on AVX-512 CPUs. */
#ifndef VW
#define VW 8
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

#if defined(DTYPE_F64) || defined(PARAM_F64)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

/* Round a float to the nearest bfloat16, ties to even; NaN stays a (quiet) NaN. */
inline ushort bf16_rne(float f) {
    uint u = as_uint(f);
    if (isnan(f)) {
        return (ushort) ((u >> 16) | 0x0040u);
    }
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (ushort) (u >> 16);
}

/* Stores VW floats as bfloat16, lane by lane (no vector swizzles: see hsum). */
inline void store_bf16v(__global ushort *p, CAT(float, VW) v) {
    float t[VW];
    VSTORE(v, 0, t);
    for (int i = 0; i < VW; i++) {
        p[i] = bf16_rne(t[i]);
    }
}

/* ---- the data type: X, Y, dY, dX ---- */
/* accv_t: VW lanes of acc_t. LOADXV/STOREXV move VW contiguous values of the data type. */
#if defined(DTYPE_F64)
typedef double real_t;
typedef double acc_t;
#define ACC_SCALAR double
typedef CAT(double, VW) accv_t;
typedef CAT(long, VW) maskv_t;
#define LOADX(p, i) ((p)[i])
#define LOADXV(p, i) VLOAD(0, (p) + (i))
#define STOREX(p, i, v) ((p)[i] = (v))
#define STOREXV(p, i, v) VSTORE((v), 0, (p) + (i))
#define TO_ACCV(v) CAT(convert_double, VW)(v)
#elif defined(DTYPE_F16)
typedef half real_t;
typedef float acc_t;
#define ACC_SCALAR float
typedef CAT(float, VW) accv_t;
typedef CAT(int, VW) maskv_t;
#define LOADX(p, i) vload_half((i), (p))
#define LOADXV(p, i) CAT(vload_half, VW)(0, (p) + (i))
#define STOREX(p, i, v) vstore_half_rte((v), (i), (p))
#define STOREXV(p, i, v) CAT(CAT(vstore_half, VW), _rte)((v), 0, (p) + (i))
#define TO_ACCV(v) CAT(convert_float, VW)(v)
#elif defined(DTYPE_BF16)
typedef ushort real_t;
typedef float acc_t;
#define ACC_SCALAR float
typedef CAT(float, VW) accv_t;
typedef CAT(int, VW) maskv_t;
#define LOADX(p, i) as_float(((uint) (p)[i]) << 16)
#define LOADXV(p, i) CAT(as_float, VW)(CAT(convert_uint, VW)(VLOAD(0, (p) + (i))) << 16)
#define STOREX(p, i, v) ((p)[i] = bf16_rne(v))
#define STOREXV(p, i, v) store_bf16v((p) + (i), (v))
#define TO_ACCV(v) CAT(convert_float, VW)(v)
#else
typedef float real_t;
typedef float acc_t;
#define ACC_SCALAR float
typedef CAT(float, VW) accv_t;
typedef CAT(int, VW) maskv_t;
#define LOADX(p, i) ((p)[i])
#define LOADXV(p, i) VLOAD(0, (p) + (i))
#define STOREX(p, i, v) ((p)[i] = (v))
#define STOREXV(p, i, v) VSTORE((v), 0, (p) + (i))
#define TO_ACCV(v) CAT(convert_float, VW)(v)
#endif

/* ---- the parameter type: scale, bias, running mean and variance ---- */
#if defined(PARAM_F64)
typedef double param_t;
#define LOADP(p, i) ((acc_t) (p)[i])
#define LOADPV(p, i) TO_ACCV(VLOAD(0, (p) + (i)))
#define STOREP(p, i, v) ((p)[i] = (double) (v))
#elif defined(PARAM_F16)
typedef half param_t;
#define LOADP(p, i) ((acc_t) vload_half((i), (p)))
#define LOADPV(p, i) TO_ACCV(CAT(vload_half, VW)(0, (p) + (i)))
#define STOREP(p, i, v) vstore_half_rte((float) (v), (i), (p))
#elif defined(PARAM_BF16)
typedef ushort param_t;
#define LOADP(p, i) ((acc_t) as_float(((uint) (p)[i]) << 16))
#define LOADPV(p, i) TO_ACCV(CAT(as_float, VW)(CAT(convert_uint, VW)(VLOAD(0, (p) + (i))) << 16))
#define STOREP(p, i, v) ((p)[i] = bf16_rne((float) (v)))
#else
typedef float param_t;
#define LOADP(p, i) ((acc_t) (p)[i])
#define LOADPV(p, i) TO_ACCV(VLOAD(0, (p) + (i)))
#define STOREP(p, i, v) ((p)[i] = (float) (v))
#endif

#define ZERO ((acc_t) 0)
#define ONE ((acc_t) 1)

/* Statistic modes (must match ClBackend.modeCode). */
#define MODE_MEAN_VAR 0           /* mean + variance, eps inside the square root */
#define MODE_RMS 1                /* mean square only, eps inside the square root */
#define MODE_MEAN_VAR_EPS_OUT 2   /* mean + variance, eps added to the standard deviation (ONNX MVN) */

/* Flags (must match ClBackend). */
#define HAS_SCALE 1
#define HAS_BIAS 2
#define WRITE_MEAN 4
#define WRITE_INVSTD 8
#define SKIP_APPLY 16   /* statistics only: y is not written */
#define HAS_MEAN_LO 32  /* channel_apply, row_apply: subtract the mean's rounding error too */

/*
 * Row addressing. A row (one normalized slice) is `segs` segments of `len` contiguous values;
 * segment i of row r starts at  (r / groups) * outer_stride + (r % groups) * group_stride
 * + i * seg_stride. Channels-first slices are one segment (the whole row); a channels-last
 * (N, D..., C) group-norm slice is one segment of C/G channels per spatial position. Position p
 * of a segment uses affine entry  (r % groups) * cpg + p / spatial.
 */
typedef struct {
    ulong rows, cols, groups, cpg, spatial, segs, seg_stride, outer_stride, group_stride;
} row_layout;

inline ulong row_group(const row_layout *l, ulong row) {
    return row % l->groups;
}

inline ulong row_base(const row_layout *l, ulong row) {
    return (row / l->groups) * l->outer_stride + (row % l->groups) * l->group_stride;
}

/* Offset of the t-th value (0 <= t < cols) of a row whose first value is at `base`. */
inline ulong row_offset(const row_layout *l, ulong base, ulong t) {
    if (l->segs == 1) {
        return base + t;
    }
    ulong len = l->cols / l->segs;
    return base + (t / len) * l->seg_stride + t % len;
}

/* Affine entry of the t-th value of row `row`. */
inline ulong row_affine(const row_layout *l, ulong row, ulong t) {
    ulong len = l->cols / l->segs;
    ulong p = l->segs == 1 ? t : t % len;
    return row_group(l, row) * l->cpg + p / l->spatial;
}

/* The one place a variance (or mean square) becomes the inverse scale. */
inline acc_t inv_std_of(int mode, acc_t v, float eps) {
    return mode == MODE_MEAN_VAR_EPS_OUT ? ONE / (sqrt(v) + (acc_t) eps) : ONE / sqrt(v + (acc_t) eps);
}

/* The shift of a slice whose first element is x0: x0 itself unless it is NaN or infinite. */
inline acc_t shift_of(acc_t x0) {
    return isfinite(x0) ? x0 : ZERO;
}

/* inv_std_of lane by lane. */
inline accv_t inv_std_ofv(int mode, accv_t v, float eps) {
    return mode == MODE_MEAN_VAR_EPS_OUT ? ONE / (sqrt(v) + (acc_t) eps) : ONE / sqrt(v + (acc_t) eps);
}

/* The lanes whose value is finite (a comparison's all-ones lanes): v - v is 0 exactly there. PoCL
 * scalarizes isfinite() on vectors (see kahan_add). */
#define FINITEV(v) ((v) - (v) == (accv_t) (ZERO))

/* Lanes of rows (row_norm_lanes, row_backward_lanes): vectors built and taken apart element by
 * element, F(j, c) for lane j, component .sc, which the compiler keeps in registers (through a
 * private array each costs a failed store forwarding). */
#define LANES4(F) F(0, 0), F(1, 1), F(2, 2), F(3, 3)
#define LANES8(F) LANES4(F), F(4, 4), F(5, 5), F(6, 6), F(7, 7)
#define LANES16(F) LANES8(F), F(8, 8), F(9, 9), F(10, a), F(11, b), F(12, c), F(13, d), F(14, e), F(15, f)
#define LANES(F) CAT(LANES, VW)(F)

/* Lane j is p[j * stride]: the same position of VW rows `stride` apart, in a private copy of a
 * block of rows (read and written with vector loads and stores). */
inline accv_t lane_gather_private(const acc_t *p, ulong stride) {
    if (stride == 1) { /* rows of one value (a constant there): a vector load, not VW loads to combine */
        return VLOAD(0, p);
    }
#define LANE_PLOAD(j, c) p[(j) * stride]
    return (accv_t) (LANES(LANE_PLOAD));
#undef LANE_PLOAD
}

inline void lane_scatter_private(acc_t *p, ulong stride, accv_t v) {
    if (stride == 1) {
        VSTORE(v, 0, p);
        return;
    }
#define LANE_PSTORE(j, c) (p[(j) * stride] = v.s##c)
    LANES(LANE_PSTORE);
#undef LANE_PSTORE
}

/* The other way round: lane j of block vector q (value q * VW + j of a block of rows `cols` long)
 * takes its row's entry of s, a row per element. With a constant `cols` this is a shuffle. */
inline accv_t lane_expand(const acc_t *s, ulong q, ulong cols) {
    if (cols == 1) {
        return VLOAD(0, s + q * VW);
    }
#define LANE_EXPAND(j, c) s[(q * VW + (j)) / cols]
    return (accv_t) (LANES(LANE_EXPAND));
#undef LANE_EXPAND
}

/* The affine entries of a block of VW rows whose first is in group *g (advanced past them): lane
 * j's first entry is aff[j], or aff[0] + j * cpg where the lanes' groups run on and every value has
 * an entry of its own (spatial 1): then the result is true and aff[1 ..] are left unset. */
inline bool lane_groups(ulong *aff, ulong *g, ulong groups, ulong cpg, ulong spatial) {
    aff[0] = *g * cpg;
    if (spatial == 1 && *g + VW <= groups) {
        *g += VW;
        *g = *g == groups ? 0 : *g;
        return true;
    }
    for (uint j = 0; j < VW; j++) {
        aff[j] = *g * cpg;
        *g = *g + 1 == groups ? 0 : *g + 1;
    }
    return false;
}

/*
 * The walk of row_norm_rows and row_backward_rows (kernel arguments rows, cols, groups, cpg,
 * spatial, rows_per_item) over their work-item's block of contiguous rows: while rows are shorter
 * than VW, VW rows at a time through LANES(len, pow2) (with r, the block's first row, and aff and
 * together from lane_groups), rows of exactly VW values (spatial 1) VW at a time through WIDE, the
 * rest one row at a time through ONE(len) (with r and g, its group).
 * Rows of 1, 2, 4 or 8 values get LANES with that length as a constant (pow2 true), so that the
 * compiler unrolls the loops over a row, turns divisions by the length into (exact)
 * multiplications and the lanes' loads and stores into vector loads, stores and shuffles. Rows of
 * VW, 2 VW and 4 VW values get ONE with a constant length for the same reasons (the same source,
 * so the same operations: an IEEE division by a power of two is the multiplication by its
 * reciprocal). On PoCL (Zen 5, VW 16, 2026-11-28) group norm of (N, C) data in 32 groups went from
 * 5.8-7.7 to 4.45-4.6 ms at 16384x512 (rows of 16) and from 3.0-3.3 to 2.5-3.2 ms at 8192x1024
 * (rows of 32); 8 VW (layer norm 65536x128, already at the copy's pace) gained nothing.
 */
#define FOR_ROW_BLOCK(LANES, WIDE, ONE) \
    ulong r = get_global_id(0) * rows_per_item; \
    if (r >= rows) { \
        return; \
    } \
    ulong r1 = min(rows, r + rows_per_item); \
    ulong g = r % groups; \
    if (cols < VW) { \
        for (; r + VW <= r1; r += VW) { \
            ulong aff[VW]; \
            const bool together = lane_groups(aff, &g, groups, cpg, spatial); \
            switch (cols) { \
            case 1: LANES(1, true); break; \
            case 2: LANES(2, true); break; \
            case 4: LANES(4, true); break; \
            case 8: LANES(8, true); break; \
            default: LANES(cols, false); \
            } \
        } \
    } \
    if (cols == VW && spatial == 1) { \
        for (; r + VW <= r1; r += VW) { \
            ulong aff[VW]; \
            const bool together = lane_groups(aff, &g, groups, cpg, spatial); \
            WIDE; \
        } \
    } \
    switch (cols) { \
    case VW: ROWS_OF(VW, ONE); break; \
    case 2 * VW: ROWS_OF(2 * VW, ONE); break; \
    case 4 * VW: ROWS_OF(4 * VW, ONE); break; \
    default: ROWS_OF(cols, ONE); \
    }

/* FOR_ROW_BLOCK's rows one at a time, ONE(len) for each; len a constant where it can be. */
#define ROWS_OF(len, ONE) \
    for (; r < r1; r++) { \
        ONE(len); \
        g = g + 1 == groups ? 0 : g + 1; \
    }

/* Lane j: the parameter at aff[j] + i. */
inline accv_t lane_gather_param(const __global param_t *p, const ulong *aff, ulong i) {
#define LANE_PARAM(j, c) LOADP(p, aff[j] + i)
    return (accv_t) (LANES(LANE_PARAM));
#undef LANE_PARAM
}

/* Chan et al.: merge moments (nb, meanb, m2b) into (*n, *mean, *m2). Counts are acc_t: the
 * weights nb/n are ratios, and exact totals are passed separately where a division needs them. */
inline void moments_merge(acc_t *n, acc_t *mean, acc_t *m2, acc_t nb, acc_t meanb, acc_t m2b) {
    if (nb == ZERO) {
        return;
    }
    if (*n == ZERO) {
        *n = nb;
        *mean = meanb;
        *m2 = m2b;
        return;
    }
    acc_t nt = *n + nb;
    if (!isfinite(*mean) || !isfinite(meanb)) {
        /* An infinity or NaN in the data: the mean is their sum (inf + finite = inf, inf - inf = NaN)
         * and the variance is undefined. The formula below would turn inf into NaN. */
        *mean += meanb;
        *m2 = (acc_t) NAN;
        *n = nt;
        return;
    }
    acc_t delta = meanb - *mean;
    *mean += delta * (nb / nt);
    *m2 += m2b + delta * delta * (*n * (nb / nt));
    *n = nt;
}

/* Horizontal sum, pairwise. Oclgrind 21.10's uninitialized-value checker crashes on the
 * shufflevector that swizzles (v.lo + v.hi) compile to, so there (NO_SWIZZLE, set by the host) it
 * goes through a private array; elsewhere the swizzles keep it in registers, which matters for
 * short rows, where the two sums per run are a good part of the work. */
inline acc_t hsum(accv_t v) {
#if defined(NO_SWIZZLE)
    acc_t t[VW];
    VSTORE(v, 0, t);
    for (int w = VW / 2; w > 0; w /= 2) {
        for (int i = 0; i < w; i++) {
            t[i] += t[i + w];
        }
    }
    return t[0];
#else
#if VW == 16
    CAT(ACC_SCALAR, 8) v8 = v.lo + v.hi;
    CAT(ACC_SCALAR, 4) v4 = v8.lo + v8.hi;
#elif VW == 8
    CAT(ACC_SCALAR, 4) v4 = v.lo + v.hi;
#else
    CAT(ACC_SCALAR, 4) v4 = v;
#endif
    CAT(ACC_SCALAR, 2) v2 = v4.lo + v4.hi;
    return v2.x + v2.y;
#endif
}

/* hsum's tree taken across VW vectors: lane j of the result is hsum of the vector of lane j of
 * e[0], e[1], ..., e[VW - 1] (e[t] holding value t of VW rows), the same additions in the same
 * order. Overwrites e. */
inline accv_t hsum_across(accv_t *e) {
    for (uint w = VW / 2; w > 0; w /= 2) {
        for (uint i = 0; i < w; i++) {
            e[i] = e[i] + e[i + w];
        }
    }
    return e[0];
}

/* Largest n (mean - kr)^2 / M2 of a run whose one-pass statistics are kept (as Java's
 * Moments.ONE_PASS_LIMIT): M2 = sum d^2 - n mean_d^2 then cancels at most 1.5 of its terms. */
#define ONE_PASS_LIMIT ((acc_t) 0.5)

/* The shift of a run of m values: the mean of its first (up to) 16, or k when that is not finite. */
inline acc_t run_shift(const __global real_t *q, uint m, acc_t k) {
    acc_t r;
    if (m >= 16) {
        /* A pairwise tree: a chain of 16 dependent additions would cost a short row more than its
         * own reduction. */
        acc_t a = (LOADX(q, 0) + LOADX(q, 1)) + (LOADX(q, 2) + LOADX(q, 3));
        acc_t b = (LOADX(q, 4) + LOADX(q, 5)) + (LOADX(q, 6) + LOADX(q, 7));
        acc_t c = (LOADX(q, 8) + LOADX(q, 9)) + (LOADX(q, 10) + LOADX(q, 11));
        acc_t d = (LOADX(q, 12) + LOADX(q, 13)) + (LOADX(q, 14) + LOADX(q, 15));
        r = ((a + b) + (c + d)) / (acc_t) 16;
    } else {
        acc_t s = ZERO;
        for (uint i = 0; i < m; i++) {
            s += LOADX(q, i);
        }
        r = s / (acc_t) m;
    }
    return isfinite(r) ? r : k;
}

/* One step of moments_add_contiguous's one-pass loop: 2 * VW values at q + i less the run's shift
 * kr into the sums sa, sb and the sums of squares qa, qb, which pipe_run (row_norm.cl) also takes
 * for its full runs. */
#define MOMENTS_STEP(q, i, kr) \
    do { \
        accv_t d_ = LOADXV(q, i) - (kr); \
        accv_t e_ = LOADXV(q, (i) + VW) - (kr); \
        sa += d_; \
        sb += e_; \
        qa += d_ * d_; \
        qb += e_ * e_; \
    } while (0)

/* Adds p[0 .. len) - k to the running moments, one run of at most RUN values at a time. Each run
 * is read once: the sums of d = x - kr and of d^2 from its own shift kr (close to its mean), and
 * M2 = sum d^2 - n mean_d^2. When that would cancel (the run's mean far from kr) or a sum is not
 * finite, the run is taken again in two passes from k, while it is in cache. */
inline void moments_add_contiguous(const __global real_t *p, ulong len, acc_t k, acc_t *n, acc_t *mean,
        acc_t *m2) {
    for (ulong r0 = 0; r0 < len; r0 += RUN) {
        uint m = (uint) min((ulong) RUN, len - r0);
        const __global real_t *q = p + r0;
        acc_t kr = run_shift(q, m, k);
        {
            accv_t sa = (accv_t) (ZERO), sb = (accv_t) (ZERO), qa = (accv_t) (ZERO), qb = (accv_t) (ZERO);
            uint i = 0;
            for (; i + 2 * VW <= m; i += 2 * VW) {
                MOMENTS_STEP(q, i, kr);
            }
            for (; i + VW <= m; i += VW) {
                accv_t d = LOADXV(q, i) - kr;
                sa += d;
                qa += d * d;
            }
            acc_t s = hsum(sa + sb);
            acc_t s2 = hsum(qa + qb);
            for (; i < m; i++) {
                acc_t d = LOADX(q, i) - kr;
                s += d;
                s2 += d * d;
            }
            acc_t rm = s / (acc_t) m;
            acc_t cancelled = s * rm;
            acc_t m2r = s2 - cancelled;
            if (isfinite(s) && isfinite(s2) && cancelled <= ONE_PASS_LIMIT * m2r) {
                moments_merge(n, mean, m2, (acc_t) m, (kr - k) + rm, m2r);
                continue;
            }
        }
        /* Two accumulators: one add chain would wait on the adder's latency every VW values. */
        accv_t acc = (accv_t) (ZERO), accb = (accv_t) (ZERO);
        uint i = 0;
        for (; i + 2 * VW <= m; i += 2 * VW) {
            acc += LOADXV(q, i) - k;
            accb += LOADXV(q, i + VW) - k;
        }
        for (; i + VW <= m; i += VW) {
            acc += LOADXV(q, i) - k;
        }
        acc_t s = hsum(acc + accb);
        for (; i < m; i++) {
            s += LOADX(q, i) - k;
        }
        acc_t run_mean = s / (acc_t) m;
        accv_t acc2 = (accv_t) (ZERO), acc2b = (accv_t) (ZERO);
        i = 0;
        for (; i + 2 * VW <= m; i += 2 * VW) {
            accv_t d = (LOADXV(q, i) - k) - run_mean;
            accv_t e = (LOADXV(q, i + VW) - k) - run_mean;
            acc2 += d * d;
            acc2b += e * e;
        }
        for (; i + VW <= m; i += VW) {
            accv_t d = (LOADXV(q, i) - k) - run_mean;
            acc2 += d * d;
        }
        acc_t s2 = hsum(acc2 + acc2b);
        for (; i < m; i++) {
            acc_t d = (LOADX(q, i) - k) - run_mean;
            s2 += d * d;
        }
        moments_merge(n, mean, m2, (acc_t) m, run_mean, s2);
    }
}

/* Kahan (compensated) addition of v to *sum, carrying the lost low-order part in *comp. Once the
 * sum is infinite or NaN the compensation is 0: (inf - inf) - y would be NaN and turn the next
 * addition, and so an infinite sum, into NaN. So a sum is +-inf or NaN exactly as plain addition
 * would make it (inf + finite = inf, inf - inf = NaN), as the Java backend's double sums are.
 * t - t == 0 is "t is finite": PoCL scalarizes isfinite() on vectors, which cost the backward
 * passes 13%, where this is one subtraction and one compare per lane (no fast-math options). */
inline void kahan_add(acc_t *sum, acc_t *comp, acc_t v) {
    acc_t y = v - *comp;
    acc_t t = *sum + y;
    *comp = t - t == ZERO ? (t - *sum) - y : ZERO;
    *sum = t;
}

/* kahan_add lane by lane; the total of a (sum, comp) pair of vectors is hsum(sum) - hsum(comp). */
inline void kahan_addv(accv_t *sum, accv_t *comp, accv_t v) {
    accv_t y = v - *comp;
    accv_t t = *sum + y;
    *comp = select((accv_t) (ZERO), (t - *sum) - y, t - t == (accv_t) (ZERO));
    *sum = t;
}

/* One step of sum_squares_contiguous: the squares of 4 * VW values at q + i into the accumulators
 * acc, accb, accc and accd, which pipe_run (row_norm.cl) also takes for its full runs. */
#define SQUARES_STEP(q, i) \
    do { \
        accv_t v_ = LOADXV(q, i); \
        accv_t u_ = LOADXV(q, (i) + VW); \
        accv_t v2_ = LOADXV(q, (i) + 2 * VW); \
        accv_t u2_ = LOADXV(q, (i) + 3 * VW); \
        acc += v_ * v_; \
        accb += u_ * u_; \
        accc += v2_ * v2_; \
        accd += u2_ * u2_; \
    } while (0)

/* Sum of squares of p[0 .. len), per run, with the runs' sums added by Kahan summation. Four
 * accumulators: with two, PoCL's RMS norm of long rows waited on the FMA chains and ran about 10%
 * behind layer norm (whose statistics keep four chains: two sums, two sums of squares). */
inline void sum_squares_contiguous(const __global real_t *p, ulong len, acc_t *total, acc_t *comp) {
    for (ulong r0 = 0; r0 < len; r0 += RUN) {
        uint m = (uint) min((ulong) RUN, len - r0);
        const __global real_t *q = p + r0;
        accv_t acc = (accv_t) (ZERO), accb = (accv_t) (ZERO), accc = (accv_t) (ZERO), accd = (accv_t) (ZERO);
        uint i = 0;
        for (; i + 4 * VW <= m; i += 4 * VW) {
            SQUARES_STEP(q, i);
        }
        for (; i + VW <= m; i += VW) {
            accv_t v = LOADXV(q, i);
            acc += v * v;
        }
        acc_t s = hsum((acc + accc) + (accb + accd));
        for (; i < m; i++) {
            acc_t v = LOADX(q, i);
            s += v * v;
        }
        kahan_add(total, comp, s);
    }
}

/* Welford's update of one value (used by the work-group kernels, where each work-item sees a
 * strided subset). */
inline void moments_add_one(acc_t *n, acc_t *mean, acc_t *m2, acc_t v) {
    *n += ONE;
    if (!isfinite(v) || !isfinite(*mean)) {
        *mean += v; /* as in moments_merge: keep an infinite mean infinite */
        *m2 = (acc_t) NAN;
        return;
    }
    acc_t d = v - *mean;
    *mean += d / *n;
    *m2 += d * (v - *mean);
}

/* Tree-merges the work-group's moments in local memory; the result lands in slot 0.
 * The work-group size must be a power of two. Ends with a barrier. */
inline void moments_reduce_local(__local acc_t *ln, __local acc_t *lmean, __local acc_t *lm2, uint lid, uint wg,
        acc_t n, acc_t mean, acc_t m2) {
    ln[lid] = n;
    lmean[lid] = mean;
    lm2[lid] = m2;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            acc_t an = ln[lid], am = lmean[lid], a2 = lm2[lid];
            moments_merge(&an, &am, &a2, ln[lid + s], lmean[lid + s], lm2[lid + s]);
            ln[lid] = an;
            lmean[lid] = am;
            lm2[lid] = a2;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Tree-sums two values per work-item; the results land in slot 0. Ends with a barrier. */
inline void sum2_reduce_local(__local acc_t *la, __local acc_t *lb, uint lid, uint wg, acc_t a, acc_t b) {
    la[lid] = a;
    lb[lid] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            la[lid] += la[lid + s];
            lb[lid] += lb[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Tree-sums one value per work-item; the result lands in slot 0. Ends with a barrier. */
inline void sum_reduce_local(__local acc_t *l, uint lid, uint wg, acc_t v) {
    l[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg >> 1; s > 0; s >>= 1) {
        if (lid < s) {
            l[lid] += l[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* A copy of n 32-bit words, VW at a time, `per_item` words per work-item (a multiple of VW). On CPU
 * drivers clEnqueueCopyBuffer may be one thread's memcpy; this spreads the copy over every core. */
__kernel void copy_words(const __global uint *restrict src, __global uint *restrict dst, ulong n, ulong per_item) {
    ulong i = get_global_id(0) * per_item;
    ulong end = min(n, i + per_item);
    for (; i + VW <= end; i += VW) {
        VSTORE(VLOAD(0, src + i), 0, dst + i);
    }
    for (; i < end; i++) {
        dst[i] = src[i];
    }
}
