package org.normcl.cli;

import java.io.PrintWriter;

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

    /** Runs without a subcommand: a usage error. */
    @Override
    public void run() {
        throw new ParameterException(spec.commandLine(), "missing command: expected probe, apply or demo");
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
     * @return the exit code: 0 success, 1 runtime failure, 2 bad usage or input
     */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            String name = commandLine.getCommandSpec().qualifiedName();
            commandLine.getErr().println(name + ": error: " + ExitCodes.message(ex));
            if (Boolean.getBoolean("normcl.debug") || System.getenv("NORMCL_DEBUG") != null) {
                ex.printStackTrace(commandLine.getErr());
            }
            commandLine.getErr().flush();
            return ExitCodes.of(ex);
        });
        int code = cl.execute(args);
        out.flush();
        err.flush();
        return code;
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
