package org.normcl.opencl;

import java.nio.file.Path;
import java.util.Optional;

import org.normcl.DType;
import org.normcl.EngineOptions;
import org.normcl.HostTensor;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.Shape;
import org.normcl.backend.Buffer;
import org.normcl.backend.RowNormPlan;
import org.normcl.backend.StatMode;

/**
 * Cold and warm start, as docs/performance.md reports them: the time from creating an OpenCL
 * engine on device 0 to the first 1024x1024 layer norm read back, in a fresh process. Logging
 * set-up and the platform scan (loading JOCL's native library) come first, outside the timing:
 * a process pays them whatever the caches hold.
 *
 * <pre>
 *   StartupTimer engine          NormEngine as configured (on PoCL: PoCL's own kernel cache)
 *   StartupTimer cache DIR       the backend with NormCL's program cache in DIR (run with
 *                                POCL_KERNEL_CACHE=0 to see that cache alone)
 * </pre>
 * Prints the seconds. Cold: an empty cache directory; warm: the same directory again.
 */
public final class StartupTimer {
    private StartupTimer() {
    }

    public static void main(String[] args) {
        float[] x = new float[1024 * 1024];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.1);
        }
        HostTensor xh = HostTensor.of(x, 1024, 1024);
        org.slf4j.LoggerFactory.getLogger(StartupTimer.class).debug("logging is set up");
        ClRuntime.devices();
        long t0 = System.nanoTime();
        if (args[0].equals("engine")) {
            try (NormEngine e = NormEngine.create(EngineOptions.opencl("0"));
                    NormResult r = e.layerNorm(xh, null, null)) {
                ((HostTensor) r.y()).data();
            }
        } else {
            try (ClBackend be = ClRuntime.open("0", Optional.of(ProgramCache.at(Path.of(args[1]))));
                    Buffer xb = be.importHost(xh);
                    Buffer yb = be.allocate(DType.FLOAT32, x.length)) {
                RowNormPlan p = RowNormPlan.contiguous(1024, 1024, StatMode.MEAN_VAR, 1e-5f, 1, 1024, 1, false, false);
                be.rowNorm(p, xb, null, null, yb, null, null);
                be.read(yb, Shape.of(x.length));
            }
        }
        System.out.printf("%.3f%n", (System.nanoTime() - t0) / 1e9);
    }
}
