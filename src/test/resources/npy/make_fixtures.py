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

    # Valid .npy files this release does not decode.
    save("f8_2x2.npy", values(4, "<f8").reshape(2, 2))
    save("f2_3.npy", values(3, "<f2"))
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
