#!/usr/bin/env python3
"""Generate NormCL's golden test vectors under test-data/golden/.

Usage (from the repository root, python3 + numpy only):

    python3 scripts/gen_golden.py            # (re)writes test-data/golden/
    python3 scripts/gen_golden.py --out DIR  # writes somewhere else

Every case is a folder test-data/golden/<case>/ holding

  * case.json     op, attributes, input/output file names, a note on what the case exercises
  * inputs        float32 .npy files (little-endian, C order), e.g. x.npy, scale.npy
  * outputs       float64 .npy files ('<f8'), the expected results computed here in float64

The expected outputs are computed independently of NormCL (and of the Java float64 oracle
org.normcl.reference.Reference64) with plain numpy float64 arithmetic: the float32 inputs are
widened exactly to float64, float attributes (epsilon, momentum) are rounded to float32 first,
exactly as an implementation receiving float32 attributes sees them, then widened.  The only
exception is MVN's epsilon, which is the double 1e-9 (the ONNX function body uses that constant).

Every case draws from its own numpy Generator seeded from a fixed base seed and the case
name, so reruns are byte-identical and adding a case does not disturb the others.  The script
also writes test-data/golden/README.md (the case table) and removes stale case folders.
"""

import argparse
import json
import os
import shutil
import sys
import zlib

import numpy as np

BASE_SEED = 20240611

F32 = np.float32
F64 = np.float64


def f32(v):
    """A float attribute as an implementation sees it: rounded to float32, then widened."""
    return float(F64(F32(v)))


def attr_float(v):
    """The JSON value for a float32 attribute: the shortest decimal that round-trips to float32."""
    return float(str(F32(v)))


# ----------------------------------------------------------------------------------------------
# float64 references (numpy, written independently of the Java code)
# ----------------------------------------------------------------------------------------------

def ref_layer_norm(x, axis, eps, scale=None, bias=None):
    x = x.astype(F64)
    r = x.ndim
    a = axis + r if axis < 0 else axis
    axes = tuple(range(a, r))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + f32(eps))
    y = (x - mean) * inv_std
    if scale is not None:
        y = y * scale.astype(F64)
    if bias is not None:
        y = y + bias.astype(F64)
    # ONNX LayerNormalization stat shape: X.shape[:axis] + [1] * (rank - axis)
    return y, mean, inv_std


def ref_rms_norm(x, axis, eps, scale=None):
    x = x.astype(F64)
    r = x.ndim
    a = axis + r if axis < 0 else axis
    axes = tuple(range(a, r))
    ms = np.mean(x * x, axis=axes, keepdims=True)
    inv_rms = 1.0 / np.sqrt(ms + f32(eps))
    y = x * inv_rms
    if scale is not None:
        y = y * scale.astype(F64)
    return y, inv_rms


def ref_group_norm(x, groups, eps, scale, bias, per_group_affine):
    x = x.astype(F64)
    n, c = x.shape[0], x.shape[1]
    assert c % groups == 0
    xg = x.reshape(n, groups, -1)
    mean = np.mean(xg, axis=2, keepdims=True)
    var = np.mean((xg - mean) ** 2, axis=2, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + f32(eps))
    yn = ((xg - mean) * inv_std).reshape(x.shape)
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if per_group_affine:
        s = np.repeat(scale.astype(F64), c // groups).reshape(bshape)
        b = np.repeat(bias.astype(F64), c // groups).reshape(bshape)
    else:
        s = scale.astype(F64).reshape(bshape)
        b = bias.astype(F64).reshape(bshape)
    y = yn * s + b
    return y, mean.reshape(n, groups), inv_std.reshape(n, groups)


def ref_instance_norm(x, eps, scale, bias):
    x = x.astype(F64)
    n, c = x.shape[0], x.shape[1]
    axes = tuple(range(2, x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + f32(eps))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    y = (x - mean) * inv_std * scale.astype(F64).reshape(bshape) + bias.astype(F64).reshape(bshape)
    return y, mean.reshape(n, c), inv_std.reshape(n, c)


def _bn_bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def ref_batch_norm_inference(x, scale, bias, mean, var, eps):
    x = x.astype(F64)
    bs = _bn_bshape(x)
    m = mean.astype(F64).reshape(bs)
    v = var.astype(F64).reshape(bs)
    return (x - m) / np.sqrt(v + f32(eps)) * scale.astype(F64).reshape(bs) + bias.astype(F64).reshape(bs)


def ref_batch_norm_training(x, scale, bias, run_mean, run_var, eps, momentum, convention):
    x = x.astype(F64)
    bs = _bn_bshape(x)
    axes = (0,) + tuple(range(2, x.ndim))
    cnt = x.size // x.shape[1]
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)  # biased (population)
    inv_std = 1.0 / np.sqrt(var + f32(eps))
    y = (x - mean) * inv_std * scale.astype(F64).reshape(bs) + bias.astype(F64).reshape(bs)
    m = f32(momentum)
    bm = mean.reshape(-1)
    bv = var.reshape(-1)
    rm = run_mean.astype(F64)
    rv = run_var.astype(F64)
    if convention == "onnx":
        new_rm = rm * m + bm * (1.0 - m)
        new_rv = rv * m + bv * (1.0 - m)
    elif convention == "pytorch":
        unbiased = bv * cnt / (cnt - 1)
        new_rm = (1.0 - m) * rm + m * bm
        new_rv = (1.0 - m) * rv + m * unbiased
    else:
        raise ValueError(convention)
    return y, bm, inv_std.reshape(-1), new_rm, new_rv


def ref_mvn(x, axes, eps=1e-9):
    x = x.astype(F64)
    axes = tuple(a + x.ndim if a < 0 else a for a in axes)
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    return (x - mean) / (np.sqrt(var) + eps)


# ----------------------------------------------------------------------------------------------
# case construction
# ----------------------------------------------------------------------------------------------

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def rng_for(name):
    return np.random.default_rng([BASE_SEED, zlib.crc32(name.encode("utf-8"))])


def randn(rng, shape, loc=0.0, std=1.0):
    return (loc + std * rng.standard_normal(shape)).astype(F32)


def affine(rng, shape):
    """A scale around 1 and a bias around 0, float32."""
    return randn(rng, shape, 1.0, 0.5), randn(rng, shape, 0.0, 0.5)


def stat_shape(shape, axis):
    r = len(shape)
    a = axis + r if axis < 0 else axis
    return tuple(shape[:a]) + (1,) * (r - a)


def _layer_norm_case(name, x, axis, eps, scale, bias, note):
    y, mean, inv = ref_layer_norm(x, axis, eps, scale, bias)
    inputs = {"X": x}
    if scale is not None:
        inputs["scale"] = scale
    if bias is not None:
        inputs["bias"] = bias
    return dict(name=name, op="layer-norm",
                attributes={"axis": axis, "epsilon": attr_float(eps)},
                inputs=inputs,
                outputs={"Y": y, "Mean": mean.reshape(stat_shape(x.shape, axis)),
                         "InvStdDev": inv.reshape(stat_shape(x.shape, axis))},
                note=note)


@case
def ln_hidden1(name="ln_hidden1"):
    r = rng_for(name)
    x = randn(r, (7, 1))
    s, b = affine(r, (1,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "hidden size 1: every row has variance 0, so Y = bias exactly "
                            "(InvStdDev = 1/sqrt(eps))")


@case
def ln_odd_5x13(name="ln_odd_5x13"):
    r = rng_for(name)
    x = randn(r, (5, 13))
    s, b = affine(r, (13,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b, "odd row length 13, odd row count 5")


@case
def ln_odd_3x7x9_axis1(name="ln_odd_3x7x9_axis1"):
    r = rng_for(name)
    x = randn(r, (3, 7, 9))
    s, b = affine(r, (7, 9))
    return _layer_norm_case(name, x, 1, 1e-5, s, b,
                            "rank 3, axis=1: normalizes over the last two dims (63 elements), "
                            "scale/bias of shape [7,9]")


@case
def ln_long_row_2x65537(name="ln_long_row_2x65537"):
    r = rng_for(name)
    x = randn(r, (2, 65537), 0.5, 2.0)
    s, b = affine(r, (65537,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "long rows of 65537 = 2^16+1 elements (beyond any single work-group "
                            "tile; one element past a power of two), nonzero mean")


@case
def ln_offset_1e4(name="ln_offset_1e4"):
    r = rng_for(name)
    x = randn(r, (16, 257), 1e4, 1.0)
    s, b = affine(r, (257,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "large common offset: x = 1e4 + N(0,1) in float32 (the one-pass "
                            "E[x^2]-E[x]^2 formula cancels catastrophically in float32); "
                            "note float32 quantization of x is ~1e-3 at 1e4")


@case
def ln_nan_row(name="ln_nan_row"):
    r = rng_for(name)
    x = randn(r, (4, 33))
    x[2, 17] = np.nan
    s, b = affine(r, (33,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "one NaN at X[2,17]: Y, Mean and InvStdDev are NaN in row 2 only; "
                            "rows 0, 1, 3 are finite and unaffected")


@case
def ln_inf_rows(name="ln_inf_rows"):
    r = rng_for(name)
    x = randn(r, (4, 33))
    x[1, 5] = np.inf
    x[3, 30] = -np.inf
    s, b = affine(r, (33,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "X[1,5] = +Inf, X[3,30] = -Inf: Mean is +Inf (row 1) / -Inf (row 3), "
                            "the variance is NaN (Inf - Inf), so InvStdDev and the whole Y row are "
                            "NaN there; rows 0 and 2 are finite and unaffected")


@case
def ln_tiny(name="ln_tiny_1e-20"):
    r = rng_for(name)
    x = randn(r, (6, 40), 0.0, 1e-20)
    s, b = affine(r, (40,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "tiny magnitudes ~1e-20 (float32 normal, but x^2 ~1e-40 underflows "
                            "to a float32 subnormal/zero): variance << eps, so Y ~ (x-mean)/sqrt(eps) "
                            "and Y ~ bias; InvStdDev ~ 1/sqrt(eps)")


@case
def ln_huge(name="ln_huge_1e15"):
    r = rng_for(name)
    x = randn(r, (6, 40), 0.0, 1e15)
    s, b = affine(r, (40,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "huge magnitudes ~1e15 (x^2 ~1e30, sums ~4e31 still fit float32): "
                            "eps is negligible, Y is O(1), InvStdDev ~1e-15")


@case
def ln_empty_batch(name="ln_empty_batch"):
    r = rng_for(name)
    x = np.zeros((0, 8), dtype=F32)
    s, b = affine(r, (8,))
    return _layer_norm_case(name, x, -1, 1e-5, s, b,
                            "empty batch, X of shape [0,8]: Y is [0,8], Mean/InvStdDev are [0,1]")


@case
def ln_no_affine(name="ln_no_affine"):
    r = rng_for(name)
    x = randn(r, (4, 16), 1.0, 3.0)
    return _layer_norm_case(name, x, -1, 1e-5, None, None,
                            "no scale and no bias (both omitted): Y = (x-mean)*InvStdDev")


@case
def ln_scale_only(name="ln_scale_only"):
    r = rng_for(name)
    x = randn(r, (4, 16), -1.0, 0.5)
    s, _ = affine(r, (16,))
    return _layer_norm_case(name, x, -1, 1e-5, s, None, "scale given, bias omitted")


@case
def ln_axis0_whole(name="ln_axis0_whole"):
    r = rng_for(name)
    x = randn(r, (3, 5, 7), 2.0, 1.5)
    s, b = affine(r, (3, 5, 7))
    return _layer_norm_case(name, x, 0, 1e-3, s, b,
                            "axis=0: one row, the whole tensor (105 elements); scale/bias of the "
                            "full X shape; Mean/InvStdDev of shape [1,1,1]; epsilon 1e-3")


def _rms_case(name, x, axis, eps, scale, note):
    y, inv = ref_rms_norm(x, axis, eps, scale)
    inputs = {"X": x}
    if scale is not None:
        inputs["scale"] = scale
    return dict(name=name, op="rms-norm",
                attributes={"axis": axis, "epsilon": attr_float(eps)},
                inputs=inputs,
                outputs={"Y": y, "InvRms": inv.reshape(stat_shape(x.shape, axis))},
                note=note)


@case
def rms_5x13(name="rms_5x13"):
    r = rng_for(name)
    x = randn(r, (5, 13), 0.3, 1.0)
    s, _ = affine(r, (13,))
    return _rms_case(name, x, -1, 1e-5, s, "odd row length 13")


@case
def rms_long_row_2x65537(name="rms_long_row_2x65537"):
    r = rng_for(name)
    x = randn(r, (2, 65537), 0.5, 2.0)
    s, _ = affine(r, (65537,))
    return _rms_case(name, x, -1, 1e-6, s, "long rows of 65537 = 2^16+1 elements, epsilon 1e-6")


@case
def rms_offset_1e4(name="rms_offset_1e4"):
    r = rng_for(name)
    x = randn(r, (16, 257), 1e4, 1.0)
    s, _ = affine(r, (257,))
    return _rms_case(name, x, -1, 1e-5, s,
                     "x = 1e4 + N(0,1): mean(x^2) ~1e8, Y ~ scale (no cancellation in RMS, "
                     "but a naive float32 sum of squares (terms ~1e8) accumulates rounding error)")


@case
def rms_3d_axis_neg2(name="rms_3d_axis_neg2"):
    r = rng_for(name)
    x = randn(r, (3, 7, 9))
    s, _ = affine(r, (7, 9))
    return _rms_case(name, x, -2, 1e-5, s,
                     "rank 3, axis=-2: normalizes over the last two dims, scale of shape [7,9]")


def _group_case(name, x, groups, eps, scale, bias, per_group, note):
    y, mean, inv = ref_group_norm(x, groups, eps, scale, bias, per_group)
    return dict(name=name, op="group-norm",
                attributes={"groups": groups, "epsilon": attr_float(eps),
                            "per_group_affine": per_group},
                inputs={"X": x, "scale": scale, "bias": bias},
                outputs={"Y": y, "Mean": mean, "InvStdDev": inv},
                note=note)


@case
def gn_2x6x5x5_g3(name="gn_2x6x5x5_g3"):
    r = rng_for(name)
    x = randn(r, (2, 6, 5, 5), 0.5, 1.5)
    s, b = affine(r, (6,))
    return _group_case(name, x, 3, 1e-5, s, b, False,
                       "G=3 over C=6 (2 channels x 25 = 50 elements per group), per-channel "
                       "scale/bias [C]; Mean/InvStdDev of shape [N,G]")


@case
def gn_g1(name="gn_g1"):
    r = rng_for(name)
    x = randn(r, (2, 6, 5, 5), -0.5, 1.0)
    s, b = affine(r, (6,))
    return _group_case(name, x, 1, 1e-5, s, b, False,
                       "G=1: one group per sample (layer norm over C,H,W with per-channel affine)")


@case
def gn_g_eq_c(name="gn_g_eq_c"):
    r = rng_for(name)
    x = randn(r, (2, 6, 5, 5), 0.0, 2.0)
    s, b = affine(r, (6,))
    return _group_case(name, x, 6, 1e-5, s, b, False,
                       "G=C=6: one channel per group (equivalent to instance norm)")


@case
def gn_opset18_per_group(name="gn_opset18_per_group"):
    r = rng_for(name)
    x = randn(r, (2, 6, 5, 5), 0.5, 1.5)
    s, b = affine(r, (3,))
    return _group_case(name, x, 3, 1e-5, s, b, True,
                       "ONNX opset-18 semantics: scale/bias have one value per GROUP ([G]=[3]), "
                       "shared by the group's channels")


@case
def gn_odd_spatial_3x4x7(name="gn_odd_spatial_3x4x7"):
    r = rng_for(name)
    x = randn(r, (3, 4, 7), 1.0, 1.0)
    s, b = affine(r, (4,))
    return _group_case(name, x, 2, 1e-5, s, b, False,
                       "rank 3 input [N,C,L] = [3,4,7]: odd spatial size 7, 14 elements per group")


@case
def gn_large_group_1x4x300x300(name="gn_large_group_1x4x300x300"):
    r = rng_for(name)
    x = randn(r, (1, 4, 300, 300), 0.25, 1.0)
    s, b = affine(r, (4,))
    return _group_case(name, x, 2, 1e-5, s, b, False,
                       "large groups: G=2 over [1,4,300,300], 180000 elements (703 KiB float32) "
                       "per group, far more than a device's local memory (typically 32-64 KiB), so "
                       "a group cannot be staged in one work-group's local memory")


@case
def gn_nan_group(name="gn_nan_group"):
    r = rng_for(name)
    x = randn(r, (2, 4, 3, 3))
    x[1, 0, 1, 2] = np.nan  # sample 1, channel 0 -> group 0
    s, b = affine(r, (4,))
    return _group_case(name, x, 2, 1e-5, s, b, False,
                       "one NaN at X[1,0,1,2] (sample 1, group 0): Y is NaN in channels 0-1 of "
                       "sample 1, Mean/InvStdDev NaN at [1,0] only; everything else finite")


@case
def gn_offset_1e4(name="gn_offset_1e4"):
    r = rng_for(name)
    x = randn(r, (2, 6, 5, 5), 1e4, 1.0)
    s, b = affine(r, (6,))
    return _group_case(name, x, 3, 1e-5, s, b, False,
                       "large common offset x = 1e4 + N(0,1) (cancellation in one-pass variance)")


def _instance_case(name, x, eps, scale, bias, note):
    y, mean, inv = ref_instance_norm(x, eps, scale, bias)
    return dict(name=name, op="instance-norm",
                attributes={"epsilon": attr_float(eps)},
                inputs={"X": x, "scale": scale, "bias": bias},
                outputs={"Y": y, "Mean": mean, "InvStdDev": inv},
                note=note)


@case
def in_2x3x4x5(name="in_2x3x4x5"):
    r = rng_for(name)
    x = randn(r, (2, 3, 4, 5), 0.5, 1.5)
    s, b = affine(r, (3,))
    return _instance_case(name, x, 1e-5, s, b, "plain 4-D instance norm, 20 elements per (n,c); "
                                                "Mean/InvStdDev of shape [N,C]")


@case
def in_1x2x1x3(name="in_1x2x1x3"):
    r = rng_for(name)
    x = randn(r, (1, 2, 1, 3))
    s, b = affine(r, (2,))
    return _instance_case(name, x, 1e-5, s, b, "tiny spatial size 3 (a 1 in the spatial dims), "
                                                "shape of the ONNX example")


@case
def in_spatial1_4x3x1(name="in_spatial1_4x3x1"):
    r = rng_for(name)
    x = randn(r, (4, 3, 1))
    s, b = affine(r, (3,))
    return _instance_case(name, x, 1e-5, s, b,
                          "spatial size 1: every instance has variance 0 so Y = bias exactly")


def _bn_inputs(r, c, mean_loc=0.0):
    scale, bias = affine(r, (c,))
    rmean = randn(r, (c,), mean_loc, 0.5)
    rvar = (0.5 + r.random((c,))).astype(F32)
    return scale, bias, rmean, rvar


def _bn_inference_case(name, x, eps, note):
    r = rng_for(name + "/params")
    s, b, m, v = _bn_inputs(r, x.shape[1])
    y = ref_batch_norm_inference(x, s, b, m, v, eps)
    return dict(name=name, op="batch-norm",
                attributes={"epsilon": attr_float(eps), "training": False},
                inputs={"X": x, "scale": s, "bias": b, "mean": m, "var": v},
                outputs={"Y": y}, note=note)


def _bn_training_case(name, x, eps, momentum, convention, note, store_y=True, mean_loc=0.0):
    r = rng_for(name + "/params")
    s, b, m, v = _bn_inputs(r, x.shape[1], mean_loc)
    y, bm, inv, nrm, nrv = ref_batch_norm_training(x, s, b, m, v, eps, momentum, convention)
    outputs = {}
    if store_y:
        outputs["Y"] = y
    outputs.update({"Mean": bm, "InvStdDev": inv, "running_mean": nrm, "running_var": nrv})
    return dict(name=name, op="batch-norm",
                attributes={"epsilon": attr_float(eps), "training": True,
                            "momentum": attr_float(momentum), "convention": convention},
                inputs={"X": x, "scale": s, "bias": b, "mean": m, "var": v},
                outputs=outputs, note=note)


@case
def bn_inference_2x3x4x5(name="bn_inference_2x3x4x5"):
    r = rng_for(name)
    x = randn(r, (2, 3, 4, 5), 0.2, 1.3)
    return _bn_inference_case(name, x, 1e-5, "inference with running mean/var inputs")


@case
def bn_train_onnx_4x3x5x5(name="bn_train_onnx_4x3x5x5"):
    r = rng_for(name)
    x = randn(r, (4, 3, 5, 5), 0.7, 1.2)
    return _bn_training_case(name, x, 1e-5, 0.9, "onnx",
                             "training, ONNX convention, momentum 0.9: running = running*m + "
                             "batch*(1-m) with the BIASED batch variance; Y uses batch stats")


@case
def bn_train_pytorch_4x3x5x5(name="bn_train_pytorch_4x3x5x5"):
    r = rng_for(name)
    x = randn(r, (4, 3, 5, 5), 0.7, 1.2)
    return _bn_training_case(name, x, 1e-5, 0.1, "pytorch",
                             "training, PyTorch convention, momentum 0.1: running = (1-m)*running "
                             "+ m*batch with the UNBIASED variance n/(n-1) (n=100) for running_var")


@case
def bn_1d_train_64x10(name="bn_1d_train_64x10"):
    r = rng_for(name)
    x = randn(r, (64, 10), -0.3, 2.0)
    return _bn_training_case(name, x, 1e-5, 0.1, "pytorch",
                             "rank-2 input [N,C] = [64,10] (BatchNorm1d): no spatial dims, "
                             "64 elements per channel; training, PyTorch convention")


@case
def bn_1d_inference_64x10(name="bn_1d_inference_64x10"):
    r = rng_for(name)
    x = randn(r, (64, 10), -0.3, 2.0)
    return _bn_inference_case(name, x, 1e-5, "rank-2 input [64,10] (BatchNorm1d), inference")


@case
def bn_train_large_channel_8x1x512x513(name="bn_train_large_channel_8x1x512x513"):
    r = rng_for(name)
    x = randn(r, (8, 1, 512, 513), 3.0, 2.0)
    return _bn_training_case(
        name, x, 1e-5, 0.9, "onnx",
        "one channel with N*H*W = 8*512*513 = 2,101,248 > 2^21 elements (a reduction spanning "
        "many work-groups; float32 naive summation drifts); x = 3 + 2*N(0,1); training, ONNX "
        "convention. Y is NOT stored (as float64 it would add 16 MiB): it is determined by X, "
        "scale, bias and the stored Mean/InvStdDev; compute it with Reference64",
        store_y=False)


@case
def bn_train_offset_1e4(name="bn_train_offset_1e4"):
    r = rng_for(name)
    x = randn(r, (4, 3, 5, 5), 1e4, 1.0)
    return _bn_training_case(name, x, 1e-5, 0.9, "onnx",
                             "training with x = 1e4 + N(0,1) (cancellation in one-pass "
                             "variance), ONNX convention, running mean near 1e4",
                             mean_loc=1e4)


def _mvn_case(name, x, axes, note):
    y = ref_mvn(x, axes)
    return dict(name=name, op="mvn",
                attributes={"axes": list(axes), "epsilon": 1e-9},
                inputs={"X": x}, outputs={"Y": y}, note=note)


@case
def mvn_default_axes_3x3x3x1(name="mvn_default_axes_3x3x3x1"):
    r = rng_for(name)
    x = randn(r, (3, 3, 3, 1), 0.5, 1.0)
    return _mvn_case(name, x, (0, 2, 3), "ONNX default axes [0,2,3] (includes the batch axis), "
                                         "the test_mvn shape")


@case
def mvn_axes_2_3(name="mvn_axes_2_3"):
    r = rng_for(name)
    x = randn(r, (2, 3, 4, 5), -1.0, 2.0)
    return _mvn_case(name, x, (2, 3), "axes [2,3]: per (n,c) like instance norm without affine")


@case
def mvn_axes_all(name="mvn_axes_all"):
    r = rng_for(name)
    x = randn(r, (2, 3, 4, 5), 1.0, 0.5)
    return _mvn_case(name, x, (0, 1, 2, 3), "axes [0,1,2,3]: the whole tensor")


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------

INPUT_FILES = {"X": "x.npy", "scale": "scale.npy", "bias": "bias.npy",
               "mean": "mean.npy", "var": "var.npy"}
OUTPUT_FILES = {"Y": "y.npy", "Mean": "mean_out.npy", "InvStdDev": "inv_std_dev.npy",
                "InvRms": "inv_rms.npy", "running_mean": "running_mean.npy",
                "running_var": "running_var.npy"}


def write_case(root, c):
    d = os.path.join(root, c["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    meta = {"name": c["name"], "op": c["op"], "attributes": c["attributes"],
            "inputs": {}, "outputs": {}, "shapes": {}, "note": c["note"]}
    for k, a in c["inputs"].items():
        a = np.ascontiguousarray(a, dtype="<f4")
        f = INPUT_FILES[k]
        np.save(os.path.join(d, f), a, allow_pickle=False)
        meta["inputs"][k] = f
    for k, a in c["outputs"].items():
        a = np.ascontiguousarray(a, dtype="<f8")
        f = OUTPUT_FILES[k]
        np.save(os.path.join(d, f), a, allow_pickle=False)
        meta["outputs"][k] = f
    for k, v in list(c["inputs"].items()) + list(c["outputs"].items()):
        meta["shapes"][k] = [int(n) for n in np.shape(v)]
    with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    return d


def dir_size(d):
    return sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(d) for f in fs)


README_HEAD = """\
# Golden test vectors (generated)

**Generated by `scripts/gen_golden.py`; do not edit by hand.** Regenerate from the repository
root with

    python3 scripts/gen_golden.py

(python3 + numpy only; fixed seeds, so a rerun is byte-identical).

## Conventions

- One folder per case: `case.json`, float32 input `.npy` files, float64 (`<f8`) expected
  output `.npy` files (NumPy format 1.0, little-endian, C order).
- Expected outputs are **float64 references** computed by numpy in the script, independently
  of NormCL and of the Java oracle `org.normcl.reference.Reference64` (textbook two-pass
  mean / population variance on the exactly widened float32 inputs). They are not float32
  results: tests compare NormCL's float32 outputs to them with tolerances documented in the
  test code. `GoldenReferenceTest` checks Reference64 against these files (~1e-12 relative),
  so the two float64 oracles validate each other.
- Float attributes (`epsilon`, `momentum`) are float32 values: the JSON decimal is the
  shortest one that round-trips to float32; the references use `(double) (float) value`.
  Exception: `mvn`'s `epsilon` is the double `1e-9` (ONNX MeanVarianceNormalization's constant)
  and y = (x - mean) / (sqrt(var) + 1e-9).
- `case.json`: `name`, `op` (`layer-norm`, `rms-norm`, `batch-norm`, `group-norm`,
  `instance-norm`, `mvn`), `attributes`, `inputs` / `outputs` (role -> file name), `shapes`
  (role -> shape), `note` (what the case exercises).
  - attributes: `axis` (layer/rms; negative counts from the end, normalizes dims `axis..rank-1`),
    `epsilon`, `groups` and `per_group_affine` (group-norm; `true` = ONNX opset-18 scale/bias of
    shape `[G]`, else `[C]`), `training`, `momentum`, `convention` (batch-norm training:
    `onnx`: running = running*m + batch*(1-m), biased batch var; `pytorch`:
    running = (1-m)*running + m*batch, unbiased batch var n/(n-1) for running_var), `axes` (mvn).
  - input roles: `X`, `scale`, `bias` (absent = not applied), `mean`, `var` (batch-norm running
    statistics).
  - output roles: `Y`; `Mean`, `InvStdDev` (= 1/sqrt(var+eps); layer-norm: shape
    `X.shape[:axis] + [1]*(rank-axis)`; group-norm `[N,G]`; instance-norm `[N,C]`; batch-norm
    training: the batch statistics, `[C]`); `InvRms` (rms-norm, = 1/sqrt(mean(x^2)+eps), same
    shape rule as layer-norm); `running_mean`, `running_var` (batch-norm training, `[C]`).
- NaN / Inf cases: NaN is expected exactly where a NaN appears in the reference (a NaN or an
  Inf confined to one row / group poisons only that row's / group's outputs).
- `bn_train_large_channel_8x1x512x513` stores no `Y` (as float64 it would be 16 MiB more): Y
  follows from X, scale, bias and the stored `Mean` / `InvStdDev`.

## Cases

| case | op | shapes | note |
|---|---|---|---|
"""


def write_readme(root, cases):
    lines = [README_HEAD]
    for c in cases:
        x = c["inputs"]["X"]
        lines.append("| `%s` | %s | X%s | %s |\n" % (
            c["name"], c["op"], list(x.shape), c["note"].replace("|", "\\|")))
    total = dir_size(root)
    lines.append("\nTotal size of the .npy / case.json files: %.1f MiB.\n" % (total / 2**20))
    with open(os.path.join(root, "README.md"), "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(lines))


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "test-data", "golden"))
    args = ap.parse_args(argv)
    root = os.path.normpath(args.out)
    os.makedirs(root, exist_ok=True)

    built = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for fn in CASES:
            built.append(fn())
    names = [c["name"] for c in built]
    assert len(names) == len(set(names)), "duplicate case names"

    # Remove stale case folders (those holding a case.json that no longer corresponds to a case).
    for entry in sorted(os.listdir(root)):
        p = os.path.join(root, entry)
        if os.path.isdir(p) and entry not in names and os.path.exists(os.path.join(p, "case.json")):
            shutil.rmtree(p)

    for c in built:
        d = write_case(root, c)
        print("%-40s %8.1f KiB" % (c["name"], dir_size(d) / 1024.0))
    write_readme(root, built)
    print("total %.2f MiB in %s" % (dir_size(root) / 2**20, root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
