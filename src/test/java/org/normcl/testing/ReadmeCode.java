package org.normcl.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.InvocationTargetException;
import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.ToolProvider;

/**
 * Java code taken from README.md at test time, wrapped in generated classes, compiled with the
 * system Java compiler against the test class path and run, with every compiler message and
 * every exception traced back to the README line it came from.
 *
 * <p>A generated class keeps the README's lines one for one (rewrites never add or remove a line
 * break), so a line of the class maps to exactly one README line; the lines the generator adds
 * map to none.
 */
public final class ReadmeCode {
    private static final Pattern FENCE = Pattern.compile("^```(\\w*)\\s*$");
    private static final Pattern TRY = Pattern.compile("\\btry\\s*\\(");
    private static final Pattern DECLARATION =
            Pattern.compile("^(?:final\\s+)?[\\w.]+(?:<[^=]*>)?(?:\\[\\])*\\s+(\\w+)\\s*=", Pattern.DOTALL);
    private static final Pattern RESOURCE_NAME = Pattern.compile("^[\\w.]+$");

    private ReadmeCode() {
    }

    /**
     * A fenced {@code ```java} block of the README.
     *
     * @param fenceLine the README line of the opening fence (1-based)
     * @param section the heading the block stands under, without its {@code #}s
     * @param lines the code, one entry per README line, starting at {@code fenceLine + 1}
     */
    public record Block(int fenceLine, String section, List<String> lines) {
        /** @return where the block is, for messages */
        public String where() {
            return "README.md ```java block at line " + fenceLine + " (section \"" + section + "\")";
        }
    }

    /**
     * A span of inline code ({@code `...`}) of the README.
     *
     * @param line its README line
     * @param text the code between the backticks
     */
    public record Span(int line, String text) {
    }

    /**
     * A Java source built from README text.
     *
     * @param className the class it declares (in the unnamed package)
     * @param text the source
     * @param readmeLines for each line of the source, the README line it came from, or 0 for a
     *     line the generator wrote
     */
    public record Source(String className, String text, int[] readmeLines) {
    }

    /** @return the README's lines */
    public static List<String> readme(Path readme) {
        try {
            return Files.readAllLines(readme, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + readme, e);
        }
    }

    /** @return every {@code ```java} block of the README, in order, with the heading above it */
    public static List<Block> javaBlocks(List<String> readme) {
        List<Block> blocks = new ArrayList<>();
        String section = "(before any heading)";
        for (int i = 0; i < readme.size(); i++) {
            String line = readme.get(i);
            if (line.startsWith("#")) {
                section = line.replaceFirst("^#+\\s*", "").strip();
                continue;
            }
            Matcher open = FENCE.matcher(line);
            if (!open.matches()) {
                continue;
            }
            int fence = i;
            List<String> code = new ArrayList<>();
            for (i++; i < readme.size() && !readme.get(i).startsWith("```"); i++) {
                code.add(readme.get(i));
            }
            if (open.group(1).equals("java")) {
                blocks.add(new Block(fence + 1, section, List.copyOf(code)));
            }
        }
        return blocks;
    }

    /**
     * The inline code of the numbered steps ({@code 1. ...}, with their indented continuation
     * lines) of a README section.
     *
     * @return for each step in order, its spans
     */
    public static List<List<Span>> numberedSteps(List<String> readme, String section) {
        List<List<Span>> steps = new ArrayList<>();
        boolean inSection = false;
        boolean inStep = false;
        Pattern span = Pattern.compile("`([^`]+)`");
        for (int i = 0; i < readme.size(); i++) {
            String line = readme.get(i);
            if (line.startsWith("#")) {
                inSection = line.replaceFirst("^#+\\s*", "").strip().equals(section);
                inStep = false;
                continue;
            }
            if (!inSection) {
                continue;
            }
            if (line.matches("^" + (steps.size() + 1) + "\\.\\s.*")) {
                steps.add(new ArrayList<>());
                inStep = true;
            } else if (line.isBlank() || !line.startsWith(" ")) {
                inStep = false;
            }
            if (inStep) {
                Matcher m = span.matcher(line);
                while (m.find()) {
                    steps.get(steps.size() - 1).add(new Span(i + 1, m.group(1)));
                }
            }
        }
        return steps;
    }

    /**
     * Replaces each placeholder statement {@code ...} (a line whose code is only {@code ...}) by the
     * empty statement {@code ;}, keeping the line's comment.
     */
    public static String emptyPlaceholders(String code) {
        return Pattern.compile("(?m)^(\\s*)\\.\\.\\.(?=\\s*(//.*)?$)").matcher(code).replaceAll("$1;  ");
    }

    /**
     * Hands every try-with-resources variable to {@code recorder} as soon as the try body starts:
     * {@code recorder.accept("r", r);} is inserted right after the {@code {} that opens the body,
     * on the same line.
     */
    public static String recordTryResources(String code, String recorder) {
        String masked = maskCommentsAndLiterals(code);
        TreeMap<Integer, String> inserts = new TreeMap<>();
        Matcher m = TRY.matcher(masked);
        while (m.find()) {
            int open = m.end() - 1;
            int close = closing(masked, open);
            int brace = close + 1;
            while (brace < masked.length() && Character.isWhitespace(masked.charAt(brace))) {
                brace++;
            }
            if (close < 0 || brace >= masked.length() || masked.charAt(brace) != '{') {
                throw new IllegalArgumentException("a try ( at offset " + open + " has no body: " + code);
            }
            StringBuilder calls = new StringBuilder();
            for (String resource : topLevel(masked.substring(open + 1, close))) {
                Matcher d = DECLARATION.matcher(resource);
                String name = d.find() ? d.group(1) : RESOURCE_NAME.matcher(resource).matches() ? resource : null;
                if (name != null) {
                    calls.append(' ').append(recorder).append(".accept(\"").append(name).append("\", ").append(name)
                            .append(");");
                }
            }
            inserts.put(brace + 1, calls.toString());
        }
        StringBuilder out = new StringBuilder(code);
        inserts.descendingMap().forEach(out::insert);
        return out.toString();
    }

    /** The offset of the ')' that closes the '(' at {@code open}, or -1. */
    private static int closing(String masked, int open) {
        int depth = 0;
        for (int i = open; i < masked.length(); i++) {
            char c = masked.charAt(i);
            if (c == '(') {
                depth++;
            } else if (c == ')' && --depth == 0) {
                return i;
            }
        }
        return -1;
    }

    /** The ';'-separated parts of a resource list that are not inside brackets, stripped, empty ones left out. */
    private static List<String> topLevel(String header) {
        List<String> parts = new ArrayList<>();
        int depth = 0;
        int from = 0;
        for (int i = 0; i <= header.length(); i++) {
            char c = i < header.length() ? header.charAt(i) : ';';
            if (c == '(' || c == '{' || c == '[') {
                depth++;
            } else if (c == ')' || c == '}' || c == ']') {
                depth--;
            } else if (c == ';' && depth == 0) {
                String part = header.substring(from, i).strip();
                if (!part.isEmpty()) {
                    parts.add(part);
                }
                from = i + 1;
            }
        }
        return parts;
    }

    /** The code with comments and the insides of string and char literals blanked (same length, same lines). */
    private static String maskCommentsAndLiterals(String code) {
        char[] c = code.toCharArray();
        int i = 0;
        while (i < c.length) {
            if (c[i] == '/' && i + 1 < c.length && c[i + 1] == '/') {
                while (i < c.length && c[i] != '\n') {
                    c[i++] = ' ';
                }
            } else if (c[i] == '/' && i + 1 < c.length && c[i + 1] == '*') {
                int end = code.indexOf("*/", i + 2);
                end = end < 0 ? c.length : end + 2;
                for (; i < end; i++) {
                    c[i] = c[i] == '\n' ? '\n' : ' ';
                }
            } else if (c[i] == '"' || c[i] == '\'') {
                char quote = c[i++];
                while (i < c.length && c[i] != quote && c[i] != '\n') {
                    if (c[i] == '\\' && i + 1 < c.length) {
                        c[i++] = ' ';
                    }
                    c[i++] = ' ';
                }
                i++;
            } else {
                i++;
            }
        }
        return new String(c);
    }

    /** The name, in generated code, of the map {@code run} takes. */
    public static final String INPUTS = "io$";
    /** The name, in generated code, of the {@code BiConsumer<String, Object>} that try resources are handed to. */
    public static final String RECORDER = "seen$";

    /**
     * A variable a README block uses without declaring it: the wrapper declares it from the map
     * {@code run} takes.
     *
     * @param type its Java type, as written in the declaration
     * @param name its name in the block
     * @param value its value
     */
    public record Free(String type, String name, Object value) {
    }

    /**
     * Wraps a block in a class whose {@code public static void run(Map<String, Object>)} declares
     * the free variables (from the map, which also holds the {@link #RECORDER} under that name)
     * and then runs the block. Every step keeps each of the block's lines on a line of its own:
     * <ol>
     * <li>{@code import} lines move to the top of the class; a block without any gets
     *     {@code import org.normcl.*;}, which the README's first block declares for all;</li>
     * <li>{@link #emptyPlaceholders placeholders} {@code ...} become the empty statement;</li>
     * <li>each rewrite replaces exact text, which must occur in the block;</li>
     * <li>{@link #recordTryResources try resources} are handed to the recorder.</li>
     * </ol>
     */
    public static Source wrap(Block block, String className, List<Free> free, Map<String, String> rewrites) {
        SourceBuilder src = new SourceBuilder(className);
        List<String> body = new ArrayList<>();
        for (int i = 0; i < block.lines().size(); i++) {
            String line = block.lines().get(i);
            boolean isImport = line.strip().startsWith("import ");
            if (isImport) {
                src.line(line.strip(), block.fenceLine() + 1 + i);
            }
            body.add(isImport ? "" : line);
        }
        if (body.equals(block.lines())) {
            src.generated("import org.normcl.*;");
        }
        String code = emptyPlaceholders(String.join("\n", body));
        for (Map.Entry<String, String> r : rewrites.entrySet()) {
            if (!code.contains(r.getKey()) || r.getValue().contains("\n")) {
                throw new AssertionError(block.where() + " no longer contains `" + r.getKey() + "`, which the test"
                        + " rewrites to `" + r.getValue() + "`: update ReadmeExamplesTest to the README");
            }
            code = code.replace(r.getKey(), r.getValue());
        }
        code = recordTryResources(code, RECORDER);
        src.generated("public final class " + className + " {");
        src.generated("    @SuppressWarnings(\"unchecked\")");
        src.generated("    public static void run(java.util.Map<String, Object> " + INPUTS + ") throws Exception {");
        src.generated("        java.util.function.BiConsumer<String, Object> " + RECORDER
                + " = (java.util.function.BiConsumer<String, Object>) " + INPUTS + ".get(\"" + RECORDER + "\");");
        for (Free f : free) {
            src.generated("        " + f.type() + " " + f.name() + " = (" + f.type() + ") " + INPUTS + ".get(\""
                    + f.name() + "\");");
        }
        String[] lines = code.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            src.line(lines[i], block.fenceLine() + 1 + i);
        }
        src.generated("    }");
        src.generated("}");
        return src.build();
    }

    /** Builds a {@link Source} line by line, remembering where each line came from. */
    public static final class SourceBuilder {
        private final String className;
        private final StringBuilder text = new StringBuilder();
        private final List<Integer> lines = new ArrayList<>();

        /** @param className the class the source declares */
        public SourceBuilder(String className) {
            this.className = className;
        }

        /** Adds a line the generator wrote. */
        public SourceBuilder generated(String line) {
            return line(line, 0);
        }

        /** Adds one line (no line break in it) that came from README line {@code readmeLine}. */
        public SourceBuilder line(String line, int readmeLine) {
            if (line.indexOf('\n') >= 0) {
                throw new IllegalArgumentException("one line at a time: " + line);
            }
            text.append(line).append('\n');
            lines.add(readmeLine);
            return this;
        }

        /** @return the source */
        public Source build() {
            return new Source(className, text.toString(), lines.stream().mapToInt(Integer::intValue).toArray());
        }
    }

    /**
     * Compiles sources against the test class path ({@code java.class.path}) into {@code out} and
     * loads them.
     *
     * @param what what is compiled, for the failure message
     * @return a class loader that sees the compiled classes and the test classes
     * @throws AssertionError naming each error's README line and the line's text when a source
     *     does not compile (deprecation and removal warnings count as errors)
     */
    public static ClassLoader compile(Path out, List<String> readme, String what, List<Source> sources) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            throw new AssertionError("no system Java compiler (javax.tools): run the tests on a JDK, not a JRE");
        }
        List<JavaFileObject> units = new ArrayList<>();
        for (Source s : sources) {
            units.add(new SimpleJavaFileObject(URI.create("string:///" + s.className() + ".java"),
                    JavaFileObject.Kind.SOURCE) {
                @Override
                public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                    return s.text();
                }
            });
        }
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        List<String> options = List.of("-d", out.toString(), "-classpath", System.getProperty("java.class.path"),
                "-proc:none", "-implicit:none", "-Xlint:deprecation,removal", "-Werror");
        boolean ok = javac.getTask(null, null, diagnostics, options, null, units).call();
        if (!ok) {
            // A block compiled both rewritten and as written gives most errors twice: each is listed once.
            Set<String> errors = new LinkedHashSet<>();
            for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
                if (d.getKind() != Diagnostic.Kind.NOTE) {
                    errors.add("\n  " + origin(readme, sources, d) + ": "
                            + d.getMessage(Locale.ROOT).replace("\n", "\n      "));
                }
            }
            throw new AssertionError(what + " does not compile:" + String.join("", errors));
        }
        try {
            return new URLClassLoader(new URL[] {out.toUri().toURL()}, ReadmeCode.class.getClassLoader());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** "README.md line N: `text`" for a diagnostic, or the generated line when it came from no README line. */
    private static String origin(List<String> readme, List<Source> sources, Diagnostic<? extends JavaFileObject> d) {
        Source s = d.getSource() == null ? null : sources.stream()
                .filter(x -> d.getSource().toUri().getPath().equals("/" + x.className() + ".java"))
                .findFirst().orElse(null);
        if (s == null || d.getLineNumber() < 1) {
            return "(no line)";
        }
        return origin(readme, s, (int) d.getLineNumber());
    }

    private static String origin(List<String> readme, Source s, int sourceLine) {
        int line = sourceLine <= s.readmeLines().length ? s.readmeLines()[sourceLine - 1] : 0;
        if (line == 0) {
            return "line " + sourceLine + " of the generated " + s.className() + " (not from the README): `"
                    + s.text().lines().skip(sourceLine - 1).findFirst().orElse("").strip() + "`";
        }
        return "README.md line " + line + ": `" + readme.get(line - 1).strip() + "`";
    }

    /**
     * Runs {@code public static void run(Map<String, Object>)} of a compiled source.
     *
     * @throws AssertionError naming the README line that threw, with the exception as its cause
     */
    public static void run(ClassLoader loader, List<String> readme, Source source, String what,
            Map<String, Object> inputs) {
        invoke(loader, readme, source, what, "run", inputs);
    }

    /**
     * Calls the public static method {@code method} (the only one of that name) of a compiled source.
     *
     * @return what it returned
     * @throws AssertionError naming the README line that threw, with the exception as its cause
     */
    public static Object invoke(ClassLoader loader, List<String> readme, Source source, String what, String method,
            Object... args) {
        try {
            for (java.lang.reflect.Method m : loader.loadClass(source.className()).getMethods()) {
                if (m.getName().equals(method)) {
                    return m.invoke(null, args);
                }
            }
            throw new AssertionError("the generated " + source.className() + " has no method " + method);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw new AssertionError(what + " threw " + cause + " at " + throwingLine(readme, source, cause), cause);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("cannot call " + method + " of the generated " + source.className(), e);
        }
    }

    /** The README line of the innermost frame of the generated class in the exception (or its causes). */
    private static String throwingLine(List<String> readme, Source source, Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            for (StackTraceElement f : c.getStackTrace()) {
                String cls = f.getClassName();
                if ((cls.equals(source.className()) || cls.startsWith(source.className() + "$"))
                        && f.getLineNumber() > 0) {
                    return origin(readme, source, f.getLineNumber());
                }
            }
        }
        return "(no frame of " + source.className() + ")";
    }
}
