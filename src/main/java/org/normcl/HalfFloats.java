package org.normcl;

/**
 * Conversions between float32 and the two 16-bit formats, rounding to nearest even, as the
 * OpenCL kernels do ({@code vstore_half_rte}; the bfloat16 store of common.cl). Java 17 has no
 * {@code Float.floatToFloat16}, so they are written here once.
 */
public final class HalfFloats {
    private HalfFloats() {
    }

    /** @return the float32 value of IEEE binary16 bits */
    public static float halfToFloat(short bits) {
        int h = bits & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0x1F) { // infinity or NaN
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            // subnormal: mant * 2^-24
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /** @return IEEE binary16 bits of a float32 value, rounded to nearest even (overflow to infinity) */
    public static short floatToHalf(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int exp = (x >>> 23) & 0xFF;
        int mant = x & 0x7FFFFF;
        if (exp == 0xFF) { // infinity or NaN (keep NaN a quiet NaN)
            return (short) (sign | 0x7C00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));
        }
        int e = exp - 127 + 15;
        if (e >= 0x1F) {
            return (short) (sign | 0x7C00);
        }
        if (e <= 0) {
            if (e < -10) {
                return (short) sign; // rounds to zero
            }
            // subnormal half: shift the full significand (with its implicit 1) into place
            int m = mant | 0x800000;
            int shift = 14 - e;
            int half = m >>> shift;
            int rem = m & ((1 << shift) - 1);
            int mid = 1 << (shift - 1);
            if (rem > mid || (rem == mid && (half & 1) != 0)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = (e << 10) | (mant >>> 13);
        int rem = mant & 0x1FFF;
        if (rem > 0x1000 || (rem == 0x1000 && (half & 1) != 0)) {
            half++; // may carry into the exponent, up to infinity: correct
        }
        return (short) (sign | half);
    }

    /** @return the float32 value of bfloat16 bits */
    public static float bfloat16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** @return bfloat16 bits of a float32 value, rounded to nearest even; NaN stays a quiet NaN */
    public static short floatToBfloat16(float f) {
        int u = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((u >>> 16) | 0x0040);
        }
        u += 0x7FFF + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }
}
