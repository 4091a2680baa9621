package org.normcl;


/**
 * A tensor held in a Java array, in row-major (C) order: {@code float[]} for
 * {@link DType#FLOAT32}, {@code double[]} for {@link DType#FLOAT64}, and {@code short[]} holding
 * the 16-bit patterns for {@link DType#FLOAT16} and {@link DType#BFLOAT16}.
 *
 * <p>The array is used as is, not copied: a host tensor is a view of the caller's data. It holds
 * no native memory and needs no closing.
 */
public final class HostTensor implements Tensor {
    private final Object array;
    private final DType dtype;
    private final Shape shape;

    private HostTensor(Object array, DType dtype, Shape shape) {
        this.array = array;
        this.dtype = dtype;
        this.shape = shape;
    }

    private static HostTensor checked(Object array, int length, DType dtype, Shape shape) {
        Validation.notNull(array, "data", "an array of " + dtype + " values");
        Validation.notNull(shape, "shape", "a Shape");
        if (shape.size() != length) {
            throw new IllegalArgumentException("data has " + length + " elements but shape " + shape + " needs "
                    + shape.size());
        }
        return new HostTensor(array, dtype, shape);
    }

    /** Checks that an element type is given (the conversions and zeros need one). */
    private static DType dtype(DType dtype) {
        return Validation.notNull(dtype, "dtype", "FLOAT32, FLOAT16, BFLOAT16 or FLOAT64");
    }

    /**
     * Wraps a float32 array.
     *
     * @param data the elements in row-major order; not copied
     * @param shape the shape; its element count must equal {@code data.length}
     * @return the tensor
     * @throws IllegalArgumentException if the sizes disagree
     */
    public static HostTensor of(float[] data, Shape shape) {
        return checked(data, data == null ? 0 : data.length, DType.FLOAT32, shape);
    }

    /**
     * Wraps a float32 array.
     *
     * @param data the elements in row-major order; not copied
     * @param dims the dimensions, outermost first
     * @return the tensor
     */
    public static HostTensor of(float[] data, long... dims) {
        return of(data, Shape.of(dims));
    }

    /**
     * Wraps a float64 array.
     *
     * @param data the elements in row-major order; not copied
     * @param dims the dimensions
     * @return a {@link DType#FLOAT64} tensor
     */
    public static HostTensor ofDoubles(double[] data, long... dims) {
        return checked(data, data == null ? 0 : data.length, DType.FLOAT64, Shape.of(dims));
    }

    /**
     * Wraps 16-bit patterns as float16 or bfloat16 values (see {@link HalfFloats} to convert).
     *
     * @param bits the bit patterns in row-major order; not copied
     * @param dtype {@link DType#FLOAT16} or {@link DType#BFLOAT16}
     * @param dims the dimensions
     * @return the tensor
     */
    public static HostTensor ofBits(short[] bits, DType dtype, long... dims) {
        if (dtype != DType.FLOAT16 && dtype != DType.BFLOAT16) {
            throw new IllegalArgumentException("dtype = " + dtype + ": 16-bit patterns are FLOAT16 or BFLOAT16");
        }
        return checked(bits, bits == null ? 0 : bits.length, dtype, Shape.of(dims));
    }

    /**
     * Converts float32 values to a tensor of another type, rounding to nearest even.
     *
     * @param values the values in row-major order
     * @param dtype the element type of the result
     * @param dims the dimensions
     * @return a new tensor (its own array)
     * @throws IllegalArgumentException if an argument is null or the sizes disagree
     */
    public static HostTensor convert(float[] values, DType dtype, long... dims) {
        Validation.notNull(values, "values", "an array of float32 values");
        dtype(dtype);
        Shape s = Shape.of(dims);
        switch (dtype) {
            case FLOAT32:
                return of(values.clone(), s);
            case FLOAT64: {
                double[] d = new double[values.length];
                for (int i = 0; i < d.length; i++) {
                    d[i] = values[i];
                }
                return checked(d, d.length, dtype, s);
            }
            default: {
                short[] b = new short[values.length];
                for (int i = 0; i < b.length; i++) {
                    b[i] = dtype == DType.FLOAT16 ? HalfFloats.floatToHalf(values[i])
                            : HalfFloats.floatToBfloat16(values[i]);
                }
                return checked(b, b.length, dtype, s);
            }
        }
    }

    /**
     * Converts float64 values to a tensor of another type (float32 and the 16-bit types round to
     * nearest even: float64 to float32 first, then to 16 bits).
     *
     * @param values the values
     * @param dtype the element type of the result
     * @param shape the shape
     * @return a new tensor (its own array)
     * @throws IllegalArgumentException if an argument is null or the sizes disagree
     */
    public static HostTensor fromDoubles(double[] values, DType dtype, Shape shape) {
        Validation.notNull(values, "values", "an array of float64 values");
        dtype(dtype);
        Validation.notNull(shape, "shape", "a Shape");
        if (dtype == DType.FLOAT64) {
            return checked(values.clone(), values.length, dtype, shape);
        }
        float[] f = new float[values.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) values[i];
        }
        return convert(f, dtype, shape.dims());
    }

    /**
     * @param shape the shape
     * @return a float32 tensor of zeros
     * @throws IllegalArgumentException if shape is null or has more elements than a Java array holds
     */
    public static HostTensor zeros(Shape shape) {
        return zeros(DType.FLOAT32, shape);
    }

    /**
     * @param dtype the element type
     * @param shape the shape
     * @return a tensor of zeros of that type
     * @throws IllegalArgumentException if an argument is null or the shape has more elements than
     *     a Java array holds
     */
    public static HostTensor zeros(DType dtype, Shape shape) {
        dtype(dtype);
        int n = Validation.notNull(shape, "shape", "a Shape").intSize();
        switch (dtype) {
            case FLOAT32:
                return new HostTensor(new float[n], dtype, shape);
            case FLOAT64:
                return new HostTensor(new double[n], dtype, shape);
            default:
                return new HostTensor(new short[n], dtype, shape);
        }
    }

    /**
     * @return the backing float32 array (not a copy)
     * @throws IllegalStateException if this tensor is not {@link DType#FLOAT32} (see {@link #toFloats()})
     */
    public float[] data() {
        if (dtype != DType.FLOAT32) {
            throw new IllegalStateException("this tensor holds " + dtype + ", not FLOAT32: use doubles(), bits() or"
                    + " toFloats()");
        }
        return (float[]) array;
    }

    /** @return the backing float64 array (not a copy); only for {@link DType#FLOAT64} */
    public double[] doubles() {
        if (dtype != DType.FLOAT64) {
            throw new IllegalStateException("this tensor holds " + dtype + ", not FLOAT64");
        }
        return (double[]) array;
    }

    /** @return the backing 16-bit patterns (not a copy); only for FLOAT16 and BFLOAT16 */
    public short[] bits() {
        if (dtype != DType.FLOAT16 && dtype != DType.BFLOAT16) {
            throw new IllegalStateException("this tensor holds " + dtype + ", not 16-bit values");
        }
        return (short[]) array;
    }

    /** @return the backing array of whatever type (float[], double[] or short[]) */
    public Object array() {
        return array;
    }

    /** @return the values as float32 (a copy; float64 values are rounded) */
    public float[] toFloats() {
        int n = shape.intSize();
        float[] out = new float[n];
        switch (dtype) {
            case FLOAT32:
                System.arraycopy(array, 0, out, 0, n);
                break;
            case FLOAT64: {
                double[] d = (double[]) array;
                for (int i = 0; i < n; i++) {
                    out[i] = (float) d[i];
                }
                break;
            }
            case FLOAT16: {
                short[] b = (short[]) array;
                for (int i = 0; i < n; i++) {
                    out[i] = HalfFloats.halfToFloat(b[i]);
                }
                break;
            }
            default: {
                short[] b = (short[]) array;
                for (int i = 0; i < n; i++) {
                    out[i] = HalfFloats.bfloat16ToFloat(b[i]);
                }
            }
        }
        return out;
    }

    /** @return the values as float64 (a copy, exact for every type) */
    public double[] toDoubles() {
        if (dtype == DType.FLOAT64) {
            return ((double[]) array).clone();
        }
        float[] f = toFloats();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    /**
     * A copy of elements {@code [from, to)} as a tensor of the given shape (used to process a tensor
     * too large for one device buffer in chunks).
     */
    HostTensor range(long from, long to, Shape shape) {
        int f = Math.toIntExact(from);
        int t = Math.toIntExact(to);
        Object a;
        if (array instanceof float[] x) {
            a = java.util.Arrays.copyOfRange(x, f, t);
        } else if (array instanceof double[] x) {
            a = java.util.Arrays.copyOfRange(x, f, t);
        } else {
            a = java.util.Arrays.copyOfRange((short[]) array, f, t);
        }
        return checked(a, t - f, dtype, shape);
    }

    /** Copies all of {@code src} (same type) into this tensor's array at element {@code offset}. */
    void copyFrom(HostTensor src, long offset) {
        System.arraycopy(src.array, 0, array, Math.toIntExact(offset), src.shape.intSize());
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    /** @return this tensor */
    @Override
    public HostTensor toHost() {
        return this;
    }

    @Override
    public String toString() {
        return "HostTensor" + shape + (dtype == DType.FLOAT32 ? "" : " " + dtype);
    }
}
