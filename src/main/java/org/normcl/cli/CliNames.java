package org.normcl.cli;

import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Rewrites the API's parameter names in error messages into the CLI's option names. */
final class CliNames {
    private static final Map<String, String> ANYWHERE = Map.of("runningMean", "--mean", "runningVar", "--var",
            "numGroups", "--groups", "saved.mean", "--saved-mean", "saved.invStdDev", "--saved-inv-std");
    private static final Map<String, String> LEADING = Map.of("X", "--input", "scale", "--scale", "bias", "--bias",
            "axis", "--axis", "axes", "--axes", "epsilon", "--epsilon", "momentum", "--momentum", "dY", "--grad-output");
    private static final Pattern WORD = Pattern.compile(
            "\\b(runningMean|runningVar|numGroups|saved\\.mean|saved\\.invStdDev)\\b");

    private CliNames() {
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
