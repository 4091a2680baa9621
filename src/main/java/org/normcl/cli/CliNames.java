package org.normcl.cli;

import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.normcl.DType;

/**
 * Rewrites the API's parameter names in error messages into the CLI's option names, and its
 * element-type names into the CLI's ({@code FLOAT16} into {@code float16 (<f2)}).
 */
final class CliNames {
    private static final Map<String, String> ANYWHERE = Map.of("runningMean", "--mean", "runningVar", "--var",
            "numGroups", "--groups", "saved.mean", "--saved-mean", "saved.invStdDev", "--saved-inv-std");
    private static final Map<String, String> LEADING = Map.of("X", "--input", "scale", "--scale", "bias", "--bias",
            "axis", "--axis", "axes", "--axes", "epsilon", "--epsilon", "momentum", "--momentum", "dY", "--grad-output");
    private static final Pattern WORD = Pattern.compile(
            "\\b(runningMean|runningVar|numGroups|saved\\.mean|saved\\.invStdDev)\\b");
    /** A parameter named after "but" in a message about mixed parameter types. */
    private static final Pattern BUT_PARAM = Pattern.compile("\\bbut (scale|bias) has\\b");
    /** The API's element-type names, as the CLI spells them (with the .npy dtype). */
    private static final Pattern DTYPE = Pattern.compile("\\b(FLOAT32|FLOAT16|BFLOAT16|FLOAT64)\\b");

    private CliNames() {
    }

    /** @return how messages name an element type: {@code float16 (<f2)}, {@code bfloat16 (<u2 with --bf16)} */
    static String dtypeName(DType t) {
        return t.name().toLowerCase(Locale.ROOT) + " (" + t.npyDescr() + (t == DType.BFLOAT16 ? " with --bf16" : "")
                + ")";
    }

    static String translate(String message) {
        if (message == null) {
            return "invalid argument";
        }
        Matcher m = WORD.matcher(message);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            m.appendReplacement(sb, Matcher.quoteReplacement(ANYWHERE.get(m.group(1))));
        }
        m.appendTail(sb);
        String named = BUT_PARAM.matcher(sb.toString()).replaceAll("but --$1 has");
        Matcher d = DTYPE.matcher(named);
        sb = new StringBuilder();
        while (d.find()) {
            d.appendReplacement(sb, Matcher.quoteReplacement(dtypeName(DType.valueOf(d.group(1)))));
        }
        d.appendTail(sb);
        String s = sb.toString();
        int end = 0;
        while (end < s.length() && Character.isLetter(s.charAt(end))) {
            end++;
        }
        String first = s.substring(0, end);
        if (LEADING.containsKey(first)) {
            s = LEADING.get(first) + s.substring(end);
        }
        return s;
    }
}
