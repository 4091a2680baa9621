package org.normcl.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;

import org.normcl.BackendKind;
import org.normcl.EngineOptions;
import org.normcl.NormEngine;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code normcl demo}: the README's main job. Picks the best device, runs every operator on a
 * transformer activation (4096x1024) and an image batch (32x64x56x56), checks each against the
 * Java backend and prints device, time and max error. Works without OpenCL (Java only, saying so).
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run every operator on realistic tensors on the best device and check it against the Java"
                + " backend.")
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    BackendOptions backendOptions;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        try (NormEngine engine = backendOptions.createEngine();
                NormEngine java = NormEngine.create(EngineOptions.java())) {
            boolean onJava = engine.backendKind() == BackendKind.JAVA;
            out.println("NormCL " + Main.version() + " demo");
            out.println("Device: " + engine.description());
            out.println("Chosen because: " + engine.selectionReason());
            if (onJava) {
                NormEngine.openClUnavailableReason().ifPresent(r -> out.println("OpenCL: not available: " + r));
                out.println("Running on the Java backend only; there is no second backend to compare with.");
            }
            out.println();
            List<SelfTest.Outcome> results = SelfTest.run(engine, onJava ? null : java, SelfTest.demoCases(), 3);
            out.printf("%-14s %-18s %-10s %-12s %s%n", "operator", "shape", "time (ms)", "max error", "check");
            boolean ok = true;
            for (SelfTest.Outcome o : results) {
                out.printf("%-14s %-18s %-10s %-12s %s%n", o.op(), o.shape(),
                        Double.isNaN(o.millis()) ? "-" : String.format("%.2f", o.millis()),
                        Double.isNaN(o.maxError()) ? "n/a" : String.format("%.2e", o.maxError()),
                        o.error() != null ? "ERROR: " + o.error() : onJava ? "-" : o.passed() ? "PASS" : "FAIL");
                ok &= o.passed();
            }
            out.println();
            out.println("time: median of 3 runs after a warm-up, host arrays in and out (transfers included);"
                    + " max error: largest |difference| from the Java backend.");
            out.flush();
            return ok ? ExitCodes.OK : ExitCodes.FAILURE;
        }
    }
}
