package org.normcl.cli;

import java.util.List;
import java.util.Map;

/** A small JSON writer for the CLI's reports: maps, lists, strings, numbers, booleans and null. */
final class Json {
    private Json() {
    }

    /** @return {@code value} as indented JSON; non-finite numbers become null */
    static String write(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0);
        return sb.append('\n').toString();
    }

    private static void write(StringBuilder sb, Object v, int indent) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String s) {
            quote(sb, s);
        } else if (v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Double d) {
            sb.append(Double.isFinite(d) ? d.toString() : "null");
        } else if (v instanceof Float f) {
            sb.append(Float.isFinite(f) ? f.toString() : "null");
        } else if (v instanceof Number) {
            sb.append(v);
        } else if (v instanceof Map<?, ?> m) {
            if (m.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append("{\n");
            int i = 0;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                pad(sb, indent + 2);
                quote(sb, String.valueOf(e.getKey()));
                sb.append(": ");
                write(sb, e.getValue(), indent + 2);
                sb.append(++i < m.size() ? ",\n" : "\n");
            }
            pad(sb, indent);
            sb.append('}');
        } else if (v instanceof List<?> l) {
            boolean flat = l.stream().allMatch(x -> x == null || x instanceof Number || x instanceof Boolean);
            if (flat || l.isEmpty()) {
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    write(sb, l.get(i), indent);
                    if (i + 1 < l.size()) {
                        sb.append(", ");
                    }
                }
                sb.append(']');
                return;
            }
            sb.append("[\n");
            for (int i = 0; i < l.size(); i++) {
                pad(sb, indent + 2);
                write(sb, l.get(i), indent + 2);
                sb.append(i + 1 < l.size() ? ",\n" : "\n");
            }
            pad(sb, indent);
            sb.append(']');
        } else {
            quote(sb, v.toString());
        }
    }

    private static void pad(StringBuilder sb, int n) {
        sb.append(" ".repeat(n));
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
