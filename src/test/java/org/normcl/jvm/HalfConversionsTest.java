package org.normcl.jvm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;
import org.normcl.HalfFloats;

/**
 * The kernels' 16-bit conversions (the Vector API's where the JVM has it) against {@link HalfFloats}
 * one value at a time, bit for bit: every 16-bit pattern widened, and rounded from floats on both
 * sides of every 16-bit value and of every tie between two of them, with NaN payloads, infinities,
 * subnormals and random magnitudes mixed in, over ranges that start and end off a vector boundary.
 */
class HalfConversionsTest {
    private static final int FROM = 3;

    @Test
    void widenEvery16BitPattern() {
        short[] bits = new short[FROM + 65536 + 5];
        for (int p = 0; p < 65536; p++) {
            bits[FROM + p] = (short) p;
        }
        for (RowKernels k : RowNormDeterminismTest.kernels()) {
            for (boolean half : new boolean[] {true, false}) {
                float[] f = new float[bits.length];
                k.widen(bits, FROM, f, FROM, bits.length - FROM, half);
                for (int i = FROM; i < bits.length; i++) {
                    float want = half ? HalfFloats.halfToFloat(bits[i]) : HalfFloats.bfloat16ToFloat(bits[i]);
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(f[i]),
                            k.name() + (half ? " float16 " : " bfloat16 ") + Integer.toHexString(bits[i] & 0xFFFF));
                }
                assertEquals(0, Float.floatToRawIntBits(f[FROM - 1]), "nothing before the range");
                float[] shifted = new float[bits.length - FROM];
                k.widen(bits, FROM, shifted, 0, shifted.length, half);
                for (int i = 0; i < shifted.length; i++) {
                    assertEquals(Float.floatToRawIntBits(f[FROM + i]), Float.floatToRawIntBits(shifted[i]),
                            k.name() + " into another offset, value " + i);
                }
            }
        }
    }

    @Test
    void roundAroundEveryValueAndTie() {
        for (boolean half : new boolean[] {true, false}) {
            float[] f = roundingCases(half);
            for (RowKernels k : RowNormDeterminismTest.kernels()) {
                short[] bits = new short[f.length];
                k.round(f, FROM, bits, FROM, f.length - FROM, half);
                for (int i = FROM; i < f.length; i++) {
                    short want = half ? HalfFloats.floatToHalf(f[i]) : HalfFloats.floatToBfloat16(f[i]);
                    assertEquals(want, bits[i], k.name() + (half ? " float16 of " : " bfloat16 of ")
                            + Integer.toHexString(Float.floatToRawIntBits(f[i])));
                }
                assertEquals(0, bits[FROM - 1], "nothing before the range");
                short[] shifted = new short[f.length + 5];
                k.round(f, FROM, shifted, 5, f.length - FROM, half);
                for (int i = FROM; i < f.length; i++) {
                    assertEquals(bits[i], shifted[i - FROM + 5], k.name() + " into another offset, value " + i);
                }
            }
        }
    }

    /**
     * Each 16-bit value and the midpoint to the next one, as floats, and the floats one and two
     * units in the last place either side of both (runs of neighbours, so that many vectors hold
     * only normal values and take the fast path), then special values and random ones.
     */
    private static float[] roundingCases(boolean half) {
        float[] f = new float[FROM + 65536 * 10 + 4096 + 7];
        int n = FROM;
        for (int p = 0; p < 65536; p++) {
            int here = Float.floatToRawIntBits(half ? HalfFloats.halfToFloat((short) p)
                    : HalfFloats.bfloat16ToFloat((short) p));
            int next = Float.floatToRawIntBits(half ? HalfFloats.halfToFloat((short) (p + 1))
                    : HalfFloats.bfloat16ToFloat((short) (p + 1)));
            int mid = here + (next - here) / 2; // same sign and finite: the tie, exactly
            for (int d = -2; d <= 2; d++) {
                f[n++] = Float.intBitsToFloat(here + d);
            }
            for (int d = -2; d <= 2; d++) {
                f[n++] = Float.intBitsToFloat(mid + d);
            }
        }
        int[] special = {0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0xFFFFFFFF, 0x7FBFFFFF, 0x00000001,
            0x80000001, 0x007FFFFF, 0x00800000, 0x33000000, 0x33000001, 0x387FC000, 0x387FE000, 0x477FE000,
            0x477FEFFF, 0x477FF000, 0x47800000, 0x7F7FFFFF, 0x80000000};
        for (int b : special) {
            f[n++] = Float.intBitsToFloat(b);
        }
        SplittableRandom r = new SplittableRandom(16);
        while (n < f.length) {
            f[n++] = r.nextInt(4) == 0 ? Float.intBitsToFloat(r.nextInt())
                    : (float) (r.nextGaussian() * Math.pow(2, r.nextInt(-30, 30)));
        }
        return f;
    }
}
