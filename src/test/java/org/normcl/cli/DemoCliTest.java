package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;
import org.normcl.NormEngine;

/** {@code normcl demo}: every operator on realistic tensors (about 5 s per run). */
class DemoCliTest {
    private static final List<String> OPS = List.of("layer-norm", "rms-norm", "batch-norm", "group-norm",
            "instance-norm");

    @Test
    void javaBackendPrintsATableOfEveryOperator() {
        CliTestSupport.Result r = CliTestSupport.run("demo", "--backend", "java").assertOk().assertNoStackTrace();
        assertTrue(r.out().contains("Java"), r::toString);
        assertTrue(r.out().contains("operator") && r.out().contains("time (ms)"), () -> "no table header\n" + r);
        for (String op : OPS) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(op + " ")), () -> "no row for " + op + "\n" + r);
        }
        assertFalse(r.out().contains("ERROR") || r.out().contains("FAIL"), r::toString);
    }

    @Test
    void defaultBackendPassesEveryOperator() {
        if (NormEngine.devices().isEmpty()) {
            CliTestSupport.requireOpenCl(); // fails under CI, else skips loudly
        }
        CliTestSupport.Result r = CliTestSupport.run("demo").assertOk().assertNoStackTrace();
        assertTrue(r.out().contains("Device: OpenCL"), () -> "AUTO did not pick the OpenCL device\n" + r);
        for (String op : OPS) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(op + " ") && l.endsWith("PASS")),
                    () -> op + " did not PASS\n" + r);
        }
        assertFalse(r.out().contains("FAIL") || r.out().contains("ERROR"), r::toString);
    }

    @Test
    void badBackendIsAUsageError() {
        CliTestSupport.Result r = CliTestSupport.run("demo", "--backend", "cuda");
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains("--backend"), r::toString);
        r.assertNoStackTrace();
    }
}
