package org.normcl.npy;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small parser for the Python literals that appear in {@code .npy} headers: dicts, lists,
 * tuples, strings, integers, floats, {@code True}, {@code False} and {@code None}.
 *
 * <p>Values map to Java as: dict to {@link Map} (keys are strings, insertion order kept, a
 * repeated key keeps its last value as Python does), list to {@link List}, tuple to {@link Tuple},
 * string to {@link String}, integer to {@link BigInteger}, float to {@link PyFloat}, booleans to
 * {@link Boolean}, {@code None} to {@link #NONE}. Integers may carry the {@code L} suffix that
 * Python 2 wrote; an integer with a leading zero ({@code 010}) is a syntax error, as in Python 3
 * (Python 2 read it as octal), while zero may be written {@code 00} and floats may start with zeros. Nesting is limited to {@value #MAX_DEPTH} levels so that a hostile header cannot
 * overflow the stack, and integers to {@value #MAX_INT_DIGITS} digits so that it cannot make the
 * parse slow: {@link BigInteger}'s decimal parsing takes time quadratic in the number of digits.
 */
final class PyLiteral {
    /** Deepest nesting of containers accepted. */
    static final int MAX_DEPTH = 32;
    /**
     * Most digits accepted in an integer literal: twice the 20 digits of the largest 64-bit value,
     * so that dimensions just past the range of a {@code long} still parse and get a message about
     * their value. Python 3.11 and later refuse integer literals of
     * more than 4300 digits, for the same reason.
     */
    static final int MAX_INT_DIGITS = 40;

    /** Python's {@code None}. */
    static final Object NONE = new Object() {
        @Override
        public String toString() {
            return "None";
        }
    };

    /** A Python tuple. */
    record Tuple(List<Object> items) {
    }

    /** A Python float (or other non-integer number), kept as its source text. */
    record PyFloat(String text) {
    }

    /** A syntax error, with the offset in the parsed text where it was found. */
    static final class SyntaxError extends Exception {
        private static final long serialVersionUID = 1L;
        private final int offset;

        SyntaxError(String message, int offset) {
            super(message);
            this.offset = offset;
        }

        int offset() {
            return offset;
        }
    }

    private final String s;
    private int pos;
    private int depth;

    private PyLiteral(String s) {
        this.s = s;
    }

    /**
     * Parses a text holding exactly one literal, surrounded by optional whitespace.
     *
     * @param text the text
     * @return the value
     * @throws SyntaxError if the text is not a single literal
     */
    static Object parse(String text) throws SyntaxError {
        PyLiteral p = new PyLiteral(text);
        p.skipSpace();
        Object value = p.value();
        p.skipSpace();
        if (p.pos < text.length()) {
            throw p.error("unexpected " + p.describeHere() + " after the end of the literal");
        }
        return value;
    }

    private Object value() throws SyntaxError {
        if (pos >= s.length()) {
            throw error("unexpected end of text, expected a value");
        }
        char c = s.charAt(pos);
        switch (c) {
            case '{':
                return dict();
            case '[':
                return new ArrayList<>(sequence('[', ']'));
            case '(':
                return parenthesized();
            case '\'':
            case '"':
                return string();
            default:
                break;
        }
        if (c == '-' || c == '+' || c == '.' || isDigit(c)) {
            return number();
        }
        if (Character.isLetter(c) || c == '_') {
            int start = pos;
            while (pos < s.length() && (Character.isLetterOrDigit(s.charAt(pos)) || s.charAt(pos) == '_')) {
                pos++;
            }
            String name = s.substring(start, pos);
            if ((name.equals("u") || name.equals("U")) && pos < s.length()
                    && (s.charAt(pos) == '\'' || s.charAt(pos) == '"')) {
                return string(); // Python 2 unicode literal
            }
            switch (name) {
                case "True":
                    return Boolean.TRUE;
                case "False":
                    return Boolean.FALSE;
                case "None":
                    return NONE;
                default:
                    pos = start;
                    throw error("unexpected name '" + name + "', expected a literal");
            }
        }
        throw error("unexpected " + describeHere() + ", expected a value");
    }

    private Map<String, Object> dict() throws SyntaxError {
        enter();
        pos++; // '{'
        Map<String, Object> map = new LinkedHashMap<>();
        skipSpace();
        while (!peek('}')) {
            int keyAt = pos;
            Object key = value();
            if (!(key instanceof String k)) {
                pos = keyAt;
                throw error("dict key " + repr(key) + " is not a string");
            }
            skipSpace();
            expect(':');
            skipSpace();
            map.put(k, value());
            skipSpace();
            if (!peek('}')) {
                expect(',');
                skipSpace();
            }
        }
        pos++; // '}'
        depth--;
        return map;
    }

    /** Parses {@code open item, item, ... [,] close} and returns the items. */
    private List<Object> sequence(char open, char close) throws SyntaxError {
        enter();
        pos++; // open
        List<Object> items = new ArrayList<>();
        skipSpace();
        while (!peek(close)) {
            items.add(value());
            skipSpace();
            if (!peek(close)) {
                expect(',');
                skipSpace();
            }
        }
        pos++; // close
        depth--;
        return items;
    }

    /** {@code ()} is an empty tuple, {@code (x)} is just x, {@code (x,)} and {@code (x, y)} are tuples. */
    private Object parenthesized() throws SyntaxError {
        enter();
        pos++; // '('
        skipSpace();
        if (peek(')')) {
            pos++;
            depth--;
            return new Tuple(List.of());
        }
        Object first = value();
        skipSpace();
        if (peek(')')) {
            pos++;
            depth--;
            return first;
        }
        expect(',');
        skipSpace();
        List<Object> items = new ArrayList<>();
        items.add(first);
        while (!peek(')')) {
            items.add(value());
            skipSpace();
            if (!peek(')')) {
                expect(',');
                skipSpace();
            }
        }
        pos++; // ')'
        depth--;
        return new Tuple(items);
    }

    private String string() throws SyntaxError {
        int start = pos;
        char quote = s.charAt(pos++);
        StringBuilder b = new StringBuilder();
        while (true) {
            if (pos >= s.length()) {
                pos = start;
                throw error("unterminated string");
            }
            char c = s.charAt(pos++);
            if (c == quote) {
                return b.toString();
            }
            if (c == '\n' || c == '\r') {
                pos = start;
                throw error("unterminated string");
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (pos >= s.length()) {
                pos = start;
                throw error("unterminated string");
            }
            char e = s.charAt(pos++);
            switch (e) {
                case '\n':
                    break; // line continuation
                case '\\':
                case '\'':
                case '"':
                    b.append(e);
                    break;
                case 'n':
                    b.append('\n');
                    break;
                case 't':
                    b.append('\t');
                    break;
                case 'r':
                    b.append('\r');
                    break;
                case '0':
                    b.append('\0');
                    break;
                case 'x':
                    b.append((char) hex(2));
                    break;
                case 'u':
                    b.append((char) hex(4));
                    break;
                default:
                    b.append('\\').append(e); // Python keeps unknown escapes as written
                    break;
            }
        }
    }

    private int hex(int digits) throws SyntaxError {
        if (pos + digits > s.length()) {
            throw error("truncated escape sequence in string");
        }
        int v = 0;
        for (int i = 0; i < digits; i++) {
            int d = Character.digit(s.charAt(pos), 16);
            if (d < 0) {
                throw error("invalid escape sequence in string");
            }
            v = v * 16 + d;
            pos++;
        }
        return v;
    }

    private Object number() throws SyntaxError {
        int start = pos;
        boolean negative = false;
        if (s.charAt(pos) == '-' || s.charAt(pos) == '+') {
            negative = s.charAt(pos) == '-';
            pos++;
            skipSpace(); // Python allows "- 1"
        }
        int bodyStart = pos;
        boolean isFloat = false;
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (isDigit(c)) {
                pos++;
            } else if (c == '.' || c == 'e' || c == 'E') {
                isFloat = true;
                pos++;
            } else if ((c == '+' || c == '-') && (s.charAt(pos - 1) == 'e' || s.charAt(pos - 1) == 'E')) {
                pos++;
            } else {
                break;
            }
        }
        String body = s.substring(bodyStart, pos);
        String text = (negative ? "-" : "") + body;
        if (body.isEmpty() || !isDigit(body.charAt(0)) && !(body.length() > 1 && body.charAt(0) == '.')) {
            pos = bodyStart;
            throw error("unexpected " + describeHere() + ", expected a number");
        }
        if (isFloat) {
            try {
                Double.parseDouble(body);
            } catch (NumberFormatException e) {
                pos = start;
                throw error("malformed number '" + text + "'");
            }
            return new PyFloat(text);
        }
        if (body.length() > MAX_INT_DIGITS) {
            pos = start;
            throw error("integer literal has " + body.length() + " digits, more than the " + MAX_INT_DIGITS
                    + " accepted");
        }
        if (body.length() > 1 && body.charAt(0) == '0' && !body.chars().allMatch(ch -> ch == '0')) {
            // Python 3: a SyntaxError ("leading zeros in decimal integer literals are not permitted");
            // Python 2 read 010 as octal 8. Only zero may be written with several zeros.
            pos = start;
            throw error("integer literal '" + text + "' has a leading zero: expected no leading zeros"
                    + " (Python 3 refuses them; Python 2 read them as octal)");
        }
        if (pos < s.length() && (s.charAt(pos) == 'L' || s.charAt(pos) == 'l')) {
            pos++; // Python 2 long suffix
        }
        return new BigInteger(text);
    }

    private void enter() throws SyntaxError {
        if (++depth > MAX_DEPTH) {
            throw error("containers nested deeper than " + MAX_DEPTH + " levels");
        }
    }

    private boolean peek(char c) throws SyntaxError {
        if (pos >= s.length()) {
            throw error("unexpected end of text");
        }
        return s.charAt(pos) == c;
    }

    private void expect(char c) throws SyntaxError {
        if (pos >= s.length()) {
            throw error("unexpected end of text, expected '" + c + "'");
        }
        if (s.charAt(pos) != c) {
            throw error("expected '" + c + "', found " + describeHere());
        }
        pos++;
    }

    private void skipSpace() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0x0B) {
                pos++;
            } else {
                break;
            }
        }
    }

    private String describeHere() {
        return pos >= s.length() ? "end of text" : "character " + quoteChar(s.charAt(pos));
    }

    private SyntaxError error(String message) {
        return new SyntaxError(message, pos);
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private static String quoteChar(char c) {
        return repr(String.valueOf(c));
    }

    /**
     * Formats a parsed value the way Python's {@code repr} would.
     *
     * @param value a value returned by {@link #parse}
     * @return its Python text
     */
    static String repr(Object value) {
        if (value instanceof String str) {
            char quote = str.indexOf('\'') >= 0 && str.indexOf('"') < 0 ? '"' : '\''; // as Python picks
            return quote + escape(str, quote) + quote;
        }
        if (value instanceof Boolean b) {
            return b ? "True" : "False";
        }
        if (value instanceof PyFloat f) {
            return f.text();
        }
        if (value instanceof Tuple t) {
            if (t.items().size() == 1) {
                return "(" + repr(t.items().get(0)) + ",)";
            }
            return join("(", t.items(), ")");
        }
        if (value instanceof List<?> list) {
            return join("[", list, "]");
        }
        if (value instanceof Map<?, ?> map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (b.length() > 1) {
                    b.append(", ");
                }
                b.append(repr(e.getKey())).append(": ").append(repr(e.getValue()));
            }
            return b.append('}').toString();
        }
        return String.valueOf(value);
    }

    private static String join(String open, List<?> items, String close) {
        StringBuilder b = new StringBuilder(open);
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) {
                b.append(", ");
            }
            b.append(repr(items.get(i)));
        }
        return b.append(close).toString();
    }

    /**
     * Escapes a text for display inside quotes: backslash, the quote, and anything that is not
     * printable ASCII.
     */
    static String escape(String text, char quote) {
        StringBuilder b = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '\\' || c == quote) {
                b.append('\\').append(c);
            } else if (c == '\n') {
                b.append("\\n");
            } else if (c == '\t') {
                b.append("\\t");
            } else if (c == '\r') {
                b.append("\\r");
            } else if (c < 0x20 || c == 0x7F) {
                b.append(String.format("\\x%02x", (int) c));
            } else if (c > 0x7F && c <= 0xFF) {
                b.append(String.format("\\x%02x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
