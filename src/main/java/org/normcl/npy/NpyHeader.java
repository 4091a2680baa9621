package org.normcl.npy;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The header of a {@code .npy} file: format version, the three dict entries, and where the data
 * starts. Knows nothing about which dtypes are decoded.
 *
 * <p>Layout (NumPy's {@code numpy.lib.format}): the magic {@code \x93NUMPY}, a major and a minor
 * version byte, the header length as a little-endian {@code uint16} (version 1.0) or
 * {@code uint32} (2.0 and 3.0), then the header: a Python dict literal with keys {@code descr},
 * {@code fortran_order} and {@code shape}, padded with spaces and ended by {@code '\n'} so that
 * the data starts at a multiple of 64 bytes. Versions 1.0 and 2.0 encode the header in Latin-1,
 * 3.0 in UTF-8.
 */
final class NpyHeader {
    /** The six magic bytes every {@code .npy} file starts with. */
    static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** NumPy aligns the start of the data to this many bytes. */
    static final int ALIGN = 64;
    /** NumPy pads the header so that the first axis can grow to this many digits in place. */
    static final int GROWTH_AXIS_MAX_DIGITS = 21;

    private static final List<String> KEYS = List.of("descr", "fortran_order", "shape");

    private final int major;
    private final int minor;
    private final Object descr;
    private final boolean fortranOrder;
    private final long[] shape;
    private final long count;
    private final long dataOffset;

    private NpyHeader(int major, int minor, Object descr, boolean fortranOrder, long[] shape, long count,
            long dataOffset) {
        this.major = major;
        this.minor = minor;
        this.descr = descr;
        this.fortranOrder = fortranOrder;
        this.shape = shape;
        this.count = count;
        this.dataOffset = dataOffset;
    }

    /**
     * Parses and checks the header dict.
     *
     * @param file the file, for messages
     * @param major the major format version
     * @param minor the minor format version
     * @param text the decoded header text
     * @param dataOffset the file offset just past the header
     * @return the header
     * @throws NpyFormatException if the text is not a valid header dict
     */
    static NpyHeader parse(Path file, int major, int minor, String text, long dataOffset) {
        Object parsed;
        try {
            parsed = PyLiteral.parse(text);
        } catch (PyLiteral.SyntaxError e) {
            throw new NpyFormatException(file, "header is not a Python dict literal: " + e.getMessage()
                    + " at offset " + e.offset() + " in " + quote(text));
        }
        if (!(parsed instanceof Map<?, ?> dict)) {
            throw new NpyFormatException(file, "header is not a Python dict literal: " + quote(text));
        }
        for (String key : KEYS) {
            if (!dict.containsKey(key)) {
                throw new NpyFormatException(file, "header is missing key '" + key
                        + "': expected keys 'descr', 'fortran_order' and 'shape' in " + quote(text));
            }
        }
        for (Object key : dict.keySet()) {
            if (!KEYS.contains(key)) {
                throw new NpyFormatException(file, "header has unexpected key " + PyLiteral.repr(key)
                        + ": expected only 'descr', 'fortran_order' and 'shape' in " + quote(text));
            }
        }
        Object fortran = dict.get("fortran_order");
        if (!(fortran instanceof Boolean fortranOrder)) {
            throw new NpyFormatException(file, "fortran_order is " + Npy.abbreviate(PyLiteral.repr(fortran))
                    + ", expected True or False");
        }
        long[] shape = shape(file, dict.get("shape"));
        long count = 1;
        for (long d : shape) {
            try {
                count = Math.multiplyExact(count, d);
            } catch (ArithmeticException e) {
                throw new NpyFormatException(file, "shape " + Arrays.toString(shape)
                        + " has more than 2^63 - 1 elements: corrupt header?");
            }
        }
        return new NpyHeader(major, minor, dict.get("descr"), fortranOrder, shape, count, dataOffset);
    }

    private static long[] shape(Path file, Object value) {
        if (!(value instanceof PyLiteral.Tuple tuple)) {
            throw new NpyFormatException(file, "shape is " + Npy.abbreviate(PyLiteral.repr(value))
                    + ", expected a tuple of non-negative integers such as (2, 3)");
        }
        List<Object> items = tuple.items();
        long[] shape = new long[items.size()];
        for (int i = 0; i < shape.length; i++) {
            Object item = items.get(i);
            String problem = null;
            if (!(item instanceof BigInteger n)) {
                problem = "is not an integer";
            } else if (n.signum() < 0) {
                problem = "is negative";
            } else if (n.bitLength() > 63) {
                problem = "is larger than 2^63 - 1";
            } else {
                shape[i] = n.longValue();
            }
            if (problem != null) {
                throw new NpyFormatException(file, "shape entry " + i + " " + Npy.abbreviate(PyLiteral.repr(item))
                        + " " + problem + ": expected a non-negative integer in shape "
                        + Npy.abbreviate(PyLiteral.repr(value)));
            }
        }
        return shape;
    }

    private static String quote(String header) {
        return PyLiteral.repr(Npy.abbreviate(header.strip()));
    }

    /**
     * Builds the bytes before the data of a float32 C-order file, exactly as NumPy's
     * {@code np.save} does: version 1.0, or 2.0 if the header does not fit in 65535 bytes.
     *
     * @param descr the type string, such as {@code "<f4"}
     * @param shape the shape
     * @return magic, version, header length and padded header
     * @throws IllegalArgumentException if the header would be longer than the
     *     {@value NpyReader#MAX_HEADER_BYTES} bytes that {@link NpyReader} accepts, so that every file
     *     written reads back
     */
    static byte[] encode(String descr, long[] shape) {
        StringBuilder h = new StringBuilder(64 + 24 * shape.length);
        h.append("{'descr': '").append(descr).append("', 'fortran_order': False, 'shape': (");
        for (int i = 0; i < shape.length; i++) {
            if (i > 0) {
                h.append(", ");
            }
            h.append(shape[i]);
        }
        h.append(shape.length == 1 ? ",), }" : "), }");
        if (shape.length > 0) {
            h.append(" ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - Long.toString(shape[0]).length())));
        }
        byte[] dict = h.toString().getBytes(StandardCharsets.US_ASCII);
        long textLen = dict.length + 1L; // + '\n'
        int major = 1;
        int lenBytes = 2;
        long padLen = ALIGN - (MAGIC.length + 2 + lenBytes + textLen) % ALIGN;
        if (textLen + padLen > 0xFFFF) {
            major = 2;
            lenBytes = 4;
            padLen = ALIGN - (MAGIC.length + 2 + lenBytes + textLen) % ALIGN;
        }
        long headerLen = textLen + padLen;
        long total = MAGIC.length + 2 + lenBytes + headerLen;
        if (headerLen > NpyReader.MAX_HEADER_BYTES) {
            throw new IllegalArgumentException("shape has " + shape.length + " dimensions, too many for a .npy"
                    + " header: it would be " + headerLen + " bytes, more than the " + NpyReader.MAX_HEADER_BYTES
                    + " that Npy.read accepts");
        }
        byte[] out = new byte[(int) total];
        System.arraycopy(MAGIC, 0, out, 0, MAGIC.length);
        out[6] = (byte) major;
        out[7] = 0;
        for (int i = 0; i < lenBytes; i++) {
            out[8 + i] = (byte) (headerLen >>> (8 * i));
        }
        int p = 8 + lenBytes;
        System.arraycopy(dict, 0, out, p, dict.length);
        Arrays.fill(out, p + dict.length, out.length - 1, (byte) ' ');
        out[out.length - 1] = '\n';
        return out;
    }

    /** @return the major format version (1, 2 or 3) */
    int major() {
        return major;
    }

    /** @return the minor format version (0) */
    int minor() {
        return minor;
    }

    /** @return the parsed {@code descr} value: a type string, or a list for structured dtypes */
    Object descr() {
        return descr;
    }

    /** @return whether the data is stored in Fortran (column-major) order */
    boolean fortranOrder() {
        return fortranOrder;
    }

    /** @return the shape (not a copy) */
    long[] shape() {
        return shape;
    }

    /** @return the number of elements: the product of the shape, 1 for shape () */
    long count() {
        return count;
    }

    /** @return the file offset at which the data starts */
    long dataOffset() {
        return dataOffset;
    }
}
