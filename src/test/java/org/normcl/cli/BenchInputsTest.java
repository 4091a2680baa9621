package org.normcl.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.io.PrintWriter;
import java.io.Writer;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.normcl.DType;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.testing.Backends;

/**
 * What {@code normcl bench} times runs on the inputs it generated: the Java backend hands out pooled
 * arrays, which held an earlier operator's data (a batch norm after a layer norm of the same size
 * ran on the layer norm's output, a column at a time in two passes: 19 ms instead of 3).
 */
class BenchInputsTest {
    private static final long[] SHAPE = {16, 8, 4, 4};

    @Test
    void everyOperatorRunsOnItsOwnGeneratedInputs() {
        List<String> backends = new ArrayList<>(List.of("java"));
        if (!Backends.requireDevicesInCi().isEmpty()) {
            backends.add("opencl");
        }
        BenchRunner runner = new BenchRunner(new BenchRunner.Config(List.of(), null, backends, null,
                List.of(DType.FLOAT32), false, 0, 0, 1, 2, 4, false), new PrintWriter(Writer.nullWriter()));
        int size = 16 * 8 * 4 * 4;
        float[] expected = BenchRunner.random(size, 0x5eed);
        for (String backend : backends) {
            try (BenchRunner.Side side = runner.open(backend)) {
                // Twice round, so that each operator's X can be an array another one wrote to.
                for (int round = 0; round < 2; round++) {
                    for (String op : BenchRunner.OPS) {
                        BenchRunner.Prepared p = runner.prepare(side, op, SHAPE, DType.FLOAT32);
                        try {
                            float[] x = side.backend.read(p.buffers.get(0), Shape.of(size)).toFloats();
                            assertArrayEquals(expected, x, backend + " " + op + ": X as generated");
                            p.call.run();
                        } finally {
                            p.buffers.forEach(Buffer::close);
                        }
                    }
                }
            }
        }
    }
}
