#!/usr/bin/env python3
"""Generates the golden .npy fixtures that NpyGoldenTest reads.

Run from any directory with NumPy installed:

    python3 src/test/resources/npy/make_fixtures.py

The outputs are committed; the tests never run Python. The float32 arrays use
the same values as the Java tests (see NpyGoldenTest.values), so that files
written by org.normcl.npy.Npy can be compared byte for byte with NumPy's.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def values(n, dtype="<f4"):
    # 0.5 * i - 1.25: exact in float16/32/64, with negatives and fractions.
    return (np.arange(n, dtype=np.float64) * 0.5 - 1.25).astype(dtype)


# float16: +0, -0, smallest and largest subnormal, smallest normal, 1, largest finite (65504),
# +inf, -inf, quiet NaN, NaN with a payload, negative NaN, negative subnormal, -2.5.
F2_SPECIAL_BITS = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00,
                   0x7E00, 0x7C01, 0xFE01, 0x8001, 0xC100]
# float64: +0, -0, smallest subnormal, -smallest normal, largest finite, +inf, -inf, NaN,
# NaN with a payload, 1e9 + 0.5, 0.1.
F8_SPECIAL_BITS = [0x0000000000000000, 0x8000000000000000, 0x0000000000000001,
                   0x8010000000000000, 0x7FEFFFFFFFFFFFFF, 0x7FF0000000000000,
                   0xFFF0000000000000, 0x7FF8000000000000, 0x7FF8000000001234,
                   0x41CDCD6500400000, 0x3FB999999999999A]
# bfloat16: quiet NaN, negative NaN with a payload, signalling NaN, +inf, -inf, smallest
# subnormal, -0, 1, -100, largest finite.
BF16_SPECIAL_BITS = [0x7FC0, 0xFFC1, 0x7F81, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x3F80, 0xC2C8, 0x7F7F]


def bfloat16_bits(a):
    # The upper half of each float32, rounded to nearest even (exact for the test values).
    u = a.astype("<f4").view("<u4").astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def save(name, array):
    # allow_pickle only matters for the object array; np.save picks version 1.0.
    np.save(path(name), array, allow_pickle=True)


def main():
    # Readable float32 files.
    save("f4_2x3.npy", values(6).reshape(2, 3))
    save("f4_5.npy", values(5))
    save("f4_2x3x4.npy", values(24).reshape(2, 3, 4))
    save("f4_scalar.npy", np.array(3.5, dtype="<f4"))
    save("f4_0x4.npy", np.zeros((0, 4), dtype="<f4"))
    save("f4be_2x3.npy", values(6, ">f4").reshape(2, 3))
    for version in [(2, 0), (3, 0)]:
        with open(path("f4_2x3_v%d.npy" % version[0]), "wb") as f:
            np.lib.format.write_array(f, values(6).reshape(2, 3), version=version)

    # float16, float64 and bfloat16 (as uint16 bit patterns), both byte orders.
    save("f8_2x2.npy", values(4, "<f8").reshape(2, 2))
    save("f2_3.npy", values(3, "<f2"))
    save("f2_2x3.npy", values(6, "<f2").reshape(2, 3))
    save("f2be_2x3.npy", values(6, ">f2").reshape(2, 3))
    save("f8_2x3.npy", values(6, "<f8").reshape(2, 3))
    save("f8be_2x3.npy", values(6, ">f8").reshape(2, 3))
    save("u2_2x3.npy", bfloat16_bits(values(6)).reshape(2, 3))
    save("u2be_2x3.npy", bfloat16_bits(values(6)).astype(">u2").reshape(2, 3))
    # Special values, from explicit bit patterns (the Java tests list the same ones).
    save("f2_special.npy", np.array(F2_SPECIAL_BITS, dtype="<u2").view("<f2"))
    save("f8_special.npy", np.array(F8_SPECIAL_BITS, dtype="<u8").view("<f8"))
    save("u2_bf16_special.npy", np.array(BF16_SPECIAL_BITS, dtype="<u2"))

    # Valid .npy files this release does not decode.
    save("i4_3.npy", np.arange(3, dtype="<i4"))
    save("fortran_2x3.npy", np.asfortranarray(values(6).reshape(2, 3)))
    save("object_3.npy", np.array([1, "a", None], dtype=object))
    save("structured_2.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))

    # Corrupt files.
    with open(path("f4_3x4.tmp.npy"), "wb") as f:
        np.save(f, values(12).reshape(3, 4))
    with open(path("f4_3x4.tmp.npy"), "rb") as f:
        whole = f.read()
    os.remove(path("f4_3x4.tmp.npy"))
    with open(path("truncated_data_3x4.npy"), "wb") as f:
        f.write(whole[:-8])           # 40 of the 48 data bytes
    with open(path("trailing_data_3x4.npy"), "wb") as f:
        f.write(whole + b"\0\0\0\0")  # 4 bytes past the data
    with open(path("truncated_header.npy"), "wb") as f:
        f.write(whole[:40])           # cut inside the header dict


if __name__ == "__main__":
    main()
