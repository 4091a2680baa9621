package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@code normcl bench}'s usage errors, beside {@code jvm.BenchCommandTest} (records and
 * arithmetic): malformed or empty lists exit 2 naming the option, before anything is measured.
 * Runs are tiny (4x4, one iteration, no warm-up).
 */
class BenchCliTest {
    /** Quick settings; an option the case gives itself is left out (list options accumulate). */
    private static final String[][] QUICK = {{"--ops", "layer-norm"}, {"--shapes", "4x4"}, {"--backends", "java"},
        {"--warmup", "0"}, {"--warmup-ms", "0"}, {"--iterations", "1"}, {"--no-engine"}};

    private static String[] bench(String... args) {
        List<String> argv = new ArrayList<>(List.of("bench"));
        for (String[] q : QUICK) {
            if (Arrays.stream(args).noneMatch(a -> a.equals(q[0]) || a.startsWith(q[0] + "="))) {
                argv.addAll(List.of(q));
            }
        }
        argv.addAll(List.of(args));
        return argv.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        // A trailing 'x' used to be dropped: 8192x ran shape 8192, 8192x1024x ran 8192x1024.
        "--shapes=8192x | --shapes: '8192x': expected dimensions >= 1 joined by 'x'",
        "--shapes=4x4x | --shapes: '4x4x'",
        "--shapes=x4 | --shapes: 'x4'", // a leading one was always an error
        // Element counts past a long: was "error: long overflow", exit 1.
        "--shapes=100000000000x100000000000 | --shapes: '100000000000x100000000000' has more than",
        "--shapes=9223372036854775807x2 | --shapes: '9223372036854775807x2' has more than",
        // Empty lists ran nothing and exited 0.
        "--dtype=, | --dtype: the list is empty",
        "--backends=, | --backends: the list is empty",
        "--shapes=, | --shapes: the list is empty",
        "--ops=, | --ops: the list is empty",
        // No file name: was a NullPointerException's message, exit 1.
        "--plot=/ | --plot /: expected a .png file name",
    })
    void badListsAndShapesExit2NamingTheOption(String arg, String message) {
        CliTestSupport.Result r = CliTestSupport.run(bench(arg.trim()));
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains(message.trim()), r::toString);
        assertFalse(r.err().contains("bench: [1/"), () -> "nothing is measured\n" + r);
        r.assertNoStackTrace();
    }
}
