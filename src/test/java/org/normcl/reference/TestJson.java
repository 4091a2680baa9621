package org.normcl.reference;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal JSON parser for test metadata ({@code case.json}), no dependencies.
 *
 * <p>Values map to: object → {@code LinkedHashMap<String, Object>} (key order kept), array →
 * {@code List<Object>}, string → {@code String}, number → {@code BigDecimal} (exact, so a float32
 * attribute can be rounded once, correctly, with {@link #asFloat}), true/false → {@code Boolean},
 * null → {@code null}.
 */
public final class TestJson {

    private final String s;
    private int pos;

    private TestJson(String s) {
        this.s = s;
    }

    /** Parses one JSON document. */
    public static Object parse(String text) {
        TestJson p = new TestJson(text);
        p.skipWs();
        Object v = p.value();
        p.skipWs();
        if (p.pos != p.s.length()) {
            throw p.error("trailing characters");
        }
        return v;
    }

    /** Parses a UTF-8 file whose top-level value is an object. */
    public static Map<String, Object> parseObject(Path file) {
        try {
            return object(parse(Files.readString(file, StandardCharsets.UTF_8)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // ---- accessors ----------------------------------------------------------------------------

    @SuppressWarnings("unchecked")
    public static Map<String, Object> object(Object v) {
        if (!(v instanceof Map)) {
            throw new IllegalArgumentException("not a JSON object: " + v);
        }
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    public static List<Object> array(Object v) {
        if (!(v instanceof List)) {
            throw new IllegalArgumentException("not a JSON array: " + v);
        }
        return (List<Object>) v;
    }

    public static String string(Object v) {
        if (!(v instanceof String)) {
            throw new IllegalArgumentException("not a JSON string: " + v);
        }
        return (String) v;
    }

    public static BigDecimal number(Object v) {
        if (!(v instanceof BigDecimal)) {
            throw new IllegalArgumentException("not a JSON number: " + v);
        }
        return (BigDecimal) v;
    }

    public static boolean bool(Object v) {
        if (!(v instanceof Boolean)) {
            throw new IllegalArgumentException("not a JSON boolean: " + v);
        }
        return (Boolean) v;
    }

    /** The number rounded once, correctly, to float32 (as ONNX float attributes are). */
    public static float asFloat(Object v) {
        return Float.parseFloat(number(v).toString());
    }

    /** The number rounded once, correctly, to float64. */
    public static double asDouble(Object v) {
        return Double.parseDouble(number(v).toString());
    }

    /** An integral number; fails if it has a fraction or overflows. */
    public static long asLong(Object v) {
        return number(v).longValueExact();
    }

    public static int asInt(Object v) {
        return number(v).intValueExact();
    }

    public static long[] asLongArray(Object v) {
        return array(v).stream().mapToLong(TestJson::asLong).toArray();
    }

    public static int[] asIntArray(Object v) {
        return array(v).stream().mapToInt(TestJson::asInt).toArray();
    }

    /**
     * Follows object keys (or, for a numeric-string key on an array, indices) from {@code root}.
     *
     * @return the value, or {@code null} if a key is missing
     */
    public static Object path(Object root, String... keys) {
        Object cur = root;
        for (String k : keys) {
            if (cur instanceof Map<?, ?> m) {
                cur = m.get(k);
            } else if (cur instanceof List<?> l) {
                int i = Integer.parseInt(k);
                cur = i < l.size() ? l.get(i) : null;
            } else {
                return null;
            }
            if (cur == null) {
                return null;
            }
        }
        return cur;
    }

    // ---- parser -------------------------------------------------------------------------------

    private Object value() {
        if (pos >= s.length()) {
            throw error("unexpected end of input");
        }
        char c = s.charAt(pos);
        switch (c) {
            case '{':
                return obj();
            case '[':
                return arr();
            case '"':
                return str();
            case 't':
                literal("true");
                return Boolean.TRUE;
            case 'f':
                literal("false");
                return Boolean.FALSE;
            case 'n':
                literal("null");
                return null;
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return num();
                }
                throw error("unexpected character '" + c + "'");
        }
    }

    private Map<String, Object> obj() {
        Map<String, Object> m = new LinkedHashMap<>();
        pos++; // {
        skipWs();
        if (peek() == '}') {
            pos++;
            return m;
        }
        while (true) {
            skipWs();
            if (peek() != '"') {
                throw error("expected a string key");
            }
            String key = str();
            skipWs();
            expect(':');
            skipWs();
            if (m.containsKey(key)) {
                throw error("duplicate key \"" + key + "\"");
            }
            m.put(key, value());
            skipWs();
            char c = next();
            if (c == '}') {
                return m;
            }
            if (c != ',') {
                throw error("expected ',' or '}'");
            }
        }
    }

    private List<Object> arr() {
        List<Object> l = new ArrayList<>();
        pos++; // [
        skipWs();
        if (peek() == ']') {
            pos++;
            return l;
        }
        while (true) {
            skipWs();
            l.add(value());
            skipWs();
            char c = next();
            if (c == ']') {
                return l;
            }
            if (c != ',') {
                throw error("expected ',' or ']'");
            }
        }
    }

    private String str() {
        pos++; // opening quote
        StringBuilder b = new StringBuilder();
        while (true) {
            char c = next();
            if (c == '"') {
                return b.toString();
            }
            if (c < 0x20) {
                throw error("control character in string");
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            char e = next();
            switch (e) {
                case '"' -> b.append('"');
                case '\\' -> b.append('\\');
                case '/' -> b.append('/');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'n' -> b.append('\n');
                case 'r' -> b.append('\r');
                case 't' -> b.append('\t');
                case 'u' -> {
                    if (pos + 4 > s.length()) {
                        throw error("truncated \\u escape");
                    }
                    b.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                    pos += 4;
                }
                default -> throw error("bad escape \\" + e);
            }
        }
    }

    private BigDecimal num() {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        digits();
        if (pos < s.length() && s.charAt(pos) == '.') {
            pos++;
            digits();
        }
        if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
            pos++;
            if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                pos++;
            }
            digits();
        }
        return new BigDecimal(s.substring(start, pos));
    }

    private void digits() {
        int start = pos;
        while (pos < s.length() && Character.isDigit(s.charAt(pos))) {
            pos++;
        }
        if (pos == start) {
            throw error("expected a digit");
        }
    }

    private void literal(String word) {
        if (!s.startsWith(word, pos)) {
            throw error("expected " + word);
        }
        pos += word.length();
    }

    private void skipWs() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private char peek() {
        if (pos >= s.length()) {
            throw error("unexpected end of input");
        }
        return s.charAt(pos);
    }

    private char next() {
        char c = peek();
        pos++;
        return c;
    }

    private void expect(char c) {
        if (next() != c) {
            throw error("expected '" + c + "'");
        }
    }

    private IllegalArgumentException error(String msg) {
        return new IllegalArgumentException("JSON: " + msg + " at offset " + pos);
    }
}
