package org.normcl.testing;

import org.normcl.DType;
import org.normcl.HalfFloats;
import org.normcl.HostTensor;

/** Bit patterns of a host tensor, for tests that assert two computations give the same bits. */
public final class TensorBits {
    private TensorBits() {
    }

    /**
     * @return the stored bits of every element, widened to long, with every NaN as one value: a
     *     NaN's payload is not part of a result (vector and scalar stores may produce different ones)
     */
    public static long[] of(HostTensor t) {
        Object a = t.array();
        if (a instanceof float[] f) {
            long[] b = new long[f.length];
            for (int i = 0; i < f.length; i++) {
                b[i] = Float.floatToIntBits(f[i]); // one NaN
            }
            return b;
        }
        if (a instanceof double[] d) {
            long[] b = new long[d.length];
            for (int i = 0; i < d.length; i++) {
                b[i] = Double.doubleToLongBits(d[i]); // one NaN
            }
            return b;
        }
        short[] s = (short[]) a;
        long[] b = new long[s.length];
        for (int i = 0; i < s.length; i++) {
            float v = t.dtype() == DType.FLOAT16 ? HalfFloats.halfToFloat(s[i]) : HalfFloats.bfloat16ToFloat(s[i]);
            b[i] = Float.isNaN(v) ? Long.MIN_VALUE : s[i];
        }
        return b;
    }
}
