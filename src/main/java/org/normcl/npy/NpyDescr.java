package org.normcl.npy;

import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;

import org.normcl.DType;

/**
 * A simple (non-structured) NumPy type string such as {@code "<f4"}: byte order, kind and item
 * size. Parsing is independent of which types this release decodes, so that supporting a new
 * {@link DType} only needs a decoder.
 *
 * <p>Decoded: {@code f4} (float32), {@code f2} (float16), {@code f8} (float64) and {@code u2}, which
 * NormCL reads only as the bits of bfloat16 values (NumPy has no bfloat16 type; {@code <u2} is the
 * usual way to store one), in either byte order.
 */
final class NpyDescr {
    /** The phrase every unsupported-dtype message ends with. */
    static final String EXPECTED = "expected float32 ('<f4'), float16 ('<f2'), float64 ('<f8') or bfloat16 bits"
            + " ('<u2')";

    private final String text;
    private final char kind;
    private final int itemSize;
    private final ByteOrder order;

    private NpyDescr(String text, char kind, int itemSize, ByteOrder order) {
        this.text = text;
        this.kind = kind;
        this.itemSize = itemSize;
        this.order = order;
    }

    /**
     * Interprets the {@code descr} value of a header.
     *
     * @param file the file, for messages
     * @param descr the parsed {@code descr} value
     * @return the type string
     * @throws NpyUnsupportedDTypeException for object and structured dtypes
     * @throws NpyFormatException if {@code descr} is not a dtype descriptor at all
     */
    static NpyDescr parse(Path file, Object descr) {
        if (descr instanceof List<?>) {
            String text = PyLiteral.repr(descr);
            throw new NpyUnsupportedDTypeException(file, "structured dtype " + Npy.abbreviate(text)
                    + " is not supported: " + EXPECTED, text, null);
        }
        if (!(descr instanceof String text)) {
            throw new NpyFormatException(file, "descr is not a dtype string: " + Npy.abbreviate(PyLiteral.repr(descr))
                    + ", " + EXPECTED);
        }
        int i = 0;
        ByteOrder order = ByteOrder.nativeOrder();
        if (!text.isEmpty() && "<>|=".indexOf(text.charAt(0)) >= 0) {
            if (text.charAt(0) == '<') {
                order = ByteOrder.LITTLE_ENDIAN;
            } else if (text.charAt(0) == '>') {
                order = ByteOrder.BIG_ENDIAN;
            }
            i = 1;
        }
        if (i >= text.length()) {
            throw notADtype(file, text);
        }
        char kind = text.charAt(i++);
        if (kind == 'O') {
            throw new NpyUnsupportedDTypeException(file, "object arrays (dtype " + PyLiteral.repr(text)
                    + ") are not supported: their data is a pickle of Python objects; " + EXPECTED, text, null);
        }
        if ("biufcmMSaUV".indexOf(kind) < 0) {
            throw notADtype(file, text);
        }
        // Item size: decimal digits; datetime kinds may add a unit such as "[ns]".
        int sizeStart = i;
        while (i < text.length() && text.charAt(i) >= '0' && text.charAt(i) <= '9') {
            i++;
        }
        boolean unit = (kind == 'm' || kind == 'M') && i < text.length() && text.charAt(i) == '['
                && text.endsWith("]");
        if (i == sizeStart || i - sizeStart > 9 || (i < text.length() && !unit)) {
            throw notADtype(file, text);
        }
        int size = Integer.parseInt(text.substring(sizeStart, i));
        return new NpyDescr(text, kind, size, order);
    }

    private static NpyFormatException notADtype(Path file, String text) {
        return new NpyFormatException(file, "descr " + PyLiteral.repr(Npy.abbreviate(text))
                + " is not a NumPy dtype string: " + EXPECTED);
    }

    /**
     * Maps a type string to the {@link DType} it stands for, ignoring byte order.
     *
     * @return the type, or null if no {@link DType} matches
     */
    DType dtype() {
        if (kind == 'f' && itemSize == 4) {
            return DType.FLOAT32;
        }
        if (kind == 'f' && itemSize == 2) {
            return DType.FLOAT16;
        }
        if (kind == 'f' && itemSize == 8) {
            return DType.FLOAT64;
        }
        if (kind == 'u' && itemSize == 2) {
            return DType.BFLOAT16; // the bits of a bfloat16, stored as uint16 by convention
        }
        return null;
    }

    /**
     * @param file the file, for the message
     * @return the exception for a type this release does not decode
     */
    NpyUnsupportedDTypeException unsupported(Path file) {
        return new NpyUnsupportedDTypeException(file, "dtype " + text + " is not supported: " + EXPECTED, text,
                dtype());
    }

    /**
     * @param file the file, for the message
     * @return the exception for a {@code u2} file read without asking for bfloat16
     */
    NpyUnsupportedDTypeException bfloat16Only(Path file) {
        return new NpyUnsupportedDTypeException(file, "dtype " + text + " is read only as bfloat16 bits, and only when"
                + " bfloat16 is asked for (Npy.read(file, true)); other uint16 data is not supported", text,
                DType.BFLOAT16);
    }

    /** @return the type string as written in the file */
    String text() {
        return text;
    }

    /** @return bytes per element */
    int itemSize() {
        return itemSize;
    }

    /** @return the byte order of the data ({@code |} and {@code =} mean the platform's order) */
    ByteOrder order() {
        return order;
    }
}
