package org.normcl.jvm;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import org.normcl.HalfFloats;

/**
 * The 16-bit conversions of {@link HalfFloats} on the Vector API, at {@link VectorRowKernels#S}'s
 * lane count, bit for bit: the Java backend widens float16 and bfloat16 tensors to float32 around
 * its kernels, and one core converted 8M float16 values in 11 ms one way and 13 ms the other with
 * the scalar code (docs/performance.md). Loaded only with {@link VectorRowKernels}.
 */
final class VectorHalfConversions {
    private static final VectorSpecies<Float> F = VectorRowKernels.S;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class,
            VectorShape.forBitSize(F.vectorBitSize() / 2));

    private VectorHalfConversions() {
    }

    /** @return the 16-bit patterns {@code bits[i..i+L)} as ints in [0, 65536) */
    private static IntVector load(short[] bits, int i) {
        return ((IntVector) ShortVector.fromArray(H, bits, i).convertShape(VectorOperators.S2I, I, 0)).and(0xFFFF);
    }

    /** Stores the low 16 bits of each lane into {@code bits[i..i+L)}. */
    private static void store(IntVector v, short[] bits, int i) {
        ((ShortVector) v.convertShape(VectorOperators.I2S, H, 0)).intoArray(bits, i);
    }

    /** {@link HalfFloats#halfToFloat} of {@code bits[bitsOff..+n)} into {@code f[fOff..+n)}. */
    static void widenHalf(short[] bits, int bitsOff, float[] f, int fOff, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            IntVector h = load(bits, bitsOff + i);
            IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
            IntVector em = h.and(0x7FFF);
            IntVector shifted = em.lanewise(VectorOperators.LSHL, 13);
            // Exponents 1-30: rebias by 127 - 15 = 112; 31 (infinity, NaN): to 255, the mantissa kept.
            IntVector v = shifted.add(0x38000000).blend(shifted.add(0x70000000), em.compare(VectorOperators.GE, 0x7C00));
            // Zero and subnormals: mantissa * 2^-24, exact in float32.
            IntVector small = ((FloatVector) em.convert(VectorOperators.I2F, 0)).mul(0x1p-24f).reinterpretAsInts();
            v = v.blend(small, em.compare(VectorOperators.LT, 0x0400));
            v.or(sign).reinterpretAsFloats().intoArray(f, fOff + i);
        }
        for (; i < n; i++) {
            f[fOff + i] = HalfFloats.halfToFloat(bits[bitsOff + i]);
        }
    }

    /**
     * {@link HalfFloats#floatToHalf} of {@code f[fOff..+n)} into {@code bits[bitsOff..+n)}: vectors whose values are all zero or
     * round to a normal float16 (magnitudes from 2^-14 below 2^16, which may round up to infinity)
     * take the vector path, where rounding to nearest even is one addition; any other vector
     * (subnormal results, infinities, NaN) takes the scalar code.
     */
    static void roundHalf(float[] f, int fOff, short[] bits, int bitsOff, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            IntVector x = FloatVector.fromArray(F, f, fOff + i).reinterpretAsInts();
            IntVector a = x.and(0x7FFFFFFF);
            VectorMask<Integer> zero = a.compare(VectorOperators.EQ, 0);
            VectorMask<Integer> normal = a.compare(VectorOperators.GE, 0x38800000)
                    .and(a.compare(VectorOperators.LT, 0x47800000));
            if (!normal.or(zero).allTrue()) {
                for (int j = i; j < i + L; j++) {
                    bits[bitsOff + j] = HalfFloats.floatToHalf(f[fOff + j]);
                }
                continue;
            }
            // (a - (112 << 23) + 0xFFF + lsb) >>> 13, lsb the last bit the result keeps: the
            // scalar code's "round up when the rest is over half, or half and the result odd".
            IntVector lsb = a.lanewise(VectorOperators.LSHR, 13).and(1);
            IntVector h = a.sub(0x38000000).add(0xFFF).add(lsb).lanewise(VectorOperators.LSHR, 13);
            h = h.blend(0, zero);
            store(h.or(x.lanewise(VectorOperators.LSHR, 16).and(0x8000)), bits, bitsOff + i);
        }
        for (; i < n; i++) {
            bits[bitsOff + i] = HalfFloats.floatToHalf(f[fOff + i]);
        }
    }

    /** {@link HalfFloats#bfloat16ToFloat} of {@code bits[bitsOff..+n)} into {@code f[fOff..+n)}. */
    static void widenBfloat16(short[] bits, int bitsOff, float[] f, int fOff, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            load(bits, bitsOff + i).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(f, fOff + i);
        }
        for (; i < n; i++) {
            f[fOff + i] = HalfFloats.bfloat16ToFloat(bits[bitsOff + i]);
        }
    }

    /** {@link HalfFloats#floatToBfloat16} of {@code f[fOff..+n)} into {@code bits[bitsOff..+n)}. */
    static void roundBfloat16(float[] f, int fOff, short[] bits, int bitsOff, int n) {
        int i = 0;
        for (; i <= n - L; i += L) {
            FloatVector v = FloatVector.fromArray(F, f, fOff + i);
            IntVector u = v.reinterpretAsInts();
            IntVector high = u.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = u.add(high.and(1)).add(0x7FFF).lanewise(VectorOperators.LSHR, 16);
            // NaN stays a quiet NaN: its high half with the quiet bit set.
            VectorMask<Integer> nan = v.test(VectorOperators.IS_NAN).cast(I);
            store(rounded.blend(high.or(0x0040), nan), bits, bitsOff + i);
        }
        for (; i < n; i++) {
            bits[bitsOff + i] = HalfFloats.floatToBfloat16(f[fOff + i]);
        }
    }
}
