package org.normcl.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * The {@code normcl} command line: {@code probe}, {@code apply}, {@code grad}, {@code demo}, {@code bench} and
 * {@code tune}. The only class
 * that calls {@link System#exit}: tests call {@link #run(PrintWriter, PrintWriter, String...)}.
 */
@Command(name = "normcl", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        subcommands = {ProbeCommand.class, ApplyCommand.class, GradCommand.class, DemoCommand.class, BenchCommand.class,
            TuneCommand.class, CommandLine.HelpCommand.class},
        description = "Neural-network normalization on OpenCL devices, with a pure-Java fallback.")
public final class Main implements Runnable {
    @Spec
    CommandSpec spec;

    /** Runs without a subcommand: a usage error listing the commands there are. */
    @Override
    public void run() {
        List<String> names = new ArrayList<>(spec.subcommands().keySet());
        names.remove("help");
        String last = names.remove(names.size() - 1);
        throw new ParameterException(spec.commandLine(), "missing command: expected " + String.join(", ", names)
                + " or " + last + " ('normcl help COMMAND' describes one)");
    }

    /**
     * Entry point.
     *
     * @param args command-line arguments
     */
    public static void main(String[] args) {
        if (System.getProperty("logback.configurationFile") == null) {
            System.setProperty("logback.configurationFile", "org/normcl/cli/logback-cli.xml");
        }
        PrintWriter out = new PrintWriter(System.out, true);
        PrintWriter err = new PrintWriter(System.err, true);
        System.exit(run(out, err, args));
    }

    /**
     * Runs the CLI without exiting the JVM.
     *
     * @param out standard output
     * @param err standard error
     * @param args command-line arguments
     * @return the exit code: 0 success, 1 runtime failure (running out of Java heap included), 2 bad
     *     usage or input
     */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            Throwable oom = ex;
            while (oom != null && !(oom instanceof OutOfMemoryError)) {
                oom = oom.getCause(); // one a worker thread threw, wrapped
            }
            report(commandLine.getErr(), commandLine.getCommandSpec().qualifiedName(), oom != null
                    ? outOfMemory((OutOfMemoryError) oom, Runtime.getRuntime().maxMemory()) : ExitCodes.message(ex), ex);
            return ExitCodes.of(ex);
        });
        int code;
        try {
            code = cl.execute(args);
        } catch (OutOfMemoryError e) {
            // Picocli hands only Exceptions to the handler above; an Error would end the JVM with a
            // stack trace. The commands' try-with-resources have removed their temporary files.
            report(cl.getErr(), commandName(cl), outOfMemory(e, Runtime.getRuntime().maxMemory()), e);
            code = ExitCodes.FAILURE;
        }
        out.flush();
        err.flush();
        return code;
    }

    /** Prints {@code NAME: error: MESSAGE}, and the stack trace only when debugging is on. */
    private static void report(PrintWriter err, String name, String message, Throwable t) {
        err.println(name + ": error: " + message);
        if (Boolean.getBoolean("normcl.debug") || System.getenv("NORMCL_DEBUG") != null) {
            t.printStackTrace(err);
        }
        err.flush();
    }

    /** @return the qualified name of the (sub)command that ran, such as {@code normcl apply} */
    private static String commandName(CommandLine cl) {
        CommandLine.ParseResult pr = cl.getParseResult();
        while (pr != null && pr.subcommand() != null) {
            pr = pr.subcommand();
        }
        return pr != null ? pr.commandSpec().qualifiedName() : cl.getCommandSpec().qualifiedName();
    }

    /**
     * @param e the error
     * @param maxHeap the JVM's maximum heap in bytes ({@link Runtime#maxMemory})
     * @return one line: what ran out and how to raise it ({@code scripts/normcl} passes
     *     {@code JAVA_OPTS} to {@code java})
     */
    static String outOfMemory(OutOfMemoryError e, long maxHeap) {
        String what = e.getMessage() == null || e.getMessage().isBlank() ? "out of memory" : e.getMessage();
        long suggested = Math.max(1, (4 * maxHeap + (1L << 30) - 1) >> 30); // 4x, in whole GiB
        String how = " (scripts/normcl passes JAVA_OPTS to java)";
        // "Direct buffer memory" (Java 11), "Cannot reserve N bytes of direct buffer memory" (17): its
        // limit is the maximum heap unless set.
        if (what.toLowerCase(Locale.ROOT).contains("direct buffer memory")) {
            return "not enough direct buffer memory (" + what + "): raise it with JAVA_OPTS=-XX:MaxDirectMemorySize="
                    + suggested + "g" + how;
        }
        return "not enough Java heap (" + what + "; the maximum is " + (maxHeap >> 20) + " MiB): raise it with"
                + " JAVA_OPTS=-Xmx" + suggested + "g" + how;
    }

    static String version() {
        String v = Main.class.getPackage().getImplementationVersion();
        return v != null ? v : "dev";
    }

    /** Reports the version from the jar manifest. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"normcl " + version()};
        }
    }
}
