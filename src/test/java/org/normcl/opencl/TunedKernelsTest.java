package org.normcl.opencl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.normcl.BatchNorm;
import org.normcl.DeviceInfo;
import org.normcl.EngineOptions;
import org.normcl.HostTensor;
import org.normcl.LayerNorm;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.reference.Reference64;
import org.normcl.testing.Backends;
import org.normcl.testing.Data;
import org.normcl.testing.SystemProperties;
import org.normcl.testing.Tolerances;

/**
 * Kernels launched with tuned, non-default parameters still compute the float64 reference's
 * results within the bounds of {@link Tolerances}: each tuning is stored in a file that
 * {@code normcl.tuning} names, so the engine reads it as it reads a device's stored tuning.
 * Vector widths 4 and 16 against row lengths that leave tails; serial work-group caps of 8 and
 * 256; rows pipelined from 0 bytes with 2 and 32 work-items per compute unit; work-group kernels
 * capped at 16 and 1024.
 */
class TunedKernelsTest {
    @TempDir
    static Path dir;

    static Stream<Arguments> tunings() {
        List<DeviceInfo> devices = Backends.requireDevicesInCi();
        List<Arguments> args = new ArrayList<>();
        for (DeviceInfo d : devices) {
            if (d.platformName().contains("Oclgrind")) {
                continue; // the simulator runs these kernels in OclgrindWorkload, with the default tuning
            }
            args.add(Arguments.of(d, "serial", new Tuning(4, 8, Tuning.NEVER, 8, 256)));
            args.add(Arguments.of(d, "serial", new Tuning(16, 256, 0, 2, 256)));
            args.add(Arguments.of(d, "serial", new Tuning(4, 32, 0, 32, 256)));
            args.add(Arguments.of(d, "group", new Tuning(16, 64, 16384, 8, 16)));
            args.add(Arguments.of(d, "group", new Tuning(4, 64, 16384, 8, 1024)));
        }
        assumeFalse(args.isEmpty(), "no OpenCL device besides Oclgrind");
        return args.stream();
    }

    @ParameterizedTest(name = "{0} {1}: {2}")
    @MethodSource("tunings")
    void tunedKernelsMatchTheFloat64Reference(DeviceInfo device, String family, Tuning tuning) throws IOException {
        Path file = dir.resolve("t" + Integer.toHexString(tuning.hashCode()) + ".properties");
        tuning.write(file, device, "test");
        NormEngine engine;
        try (SystemProperties p = SystemProperties.set(Tuning.PROPERTY, file.toString())
                .and(WorkSizing.STRATEGY_PROPERTY, family)) {
            assertEquals(tuning, Tuning.forDevice(device), "the file is read back for the device");
            engine = NormEngine.create(EngineOptions.opencl(Integer.toString(device.index())));
        }
        try (engine) {
            layerNorm(engine, tuning + " ln rows of 20 KiB + 4", 37, 5001);
            layerNorm(engine, tuning + " ln short rows", 300, 257);
            rmsNorm(engine, tuning + " rms", 33, 4099);
            batchNorm(engine, tuning + " bn1d (columns)", new long[] {515, 37});
            batchNorm(engine, tuning + " bn NCHW", new long[] {4, 6, 9, 11});
        }
    }

    private static void layerNorm(NormEngine engine, String name, int rows, int cols) {
        long[] dims = {rows, cols};
        float[] x = Data.gaussian(name, rows * cols, 3, 2);
        float[] w = Data.gaussian(name + "w", cols, 1, 0.5);
        float[] b = Data.gaussian(name + "b", cols, 0, 0.5);
        try (NormResult r = engine.layerNorm(LayerNorm.defaults(), HostTensor.of(x, dims), HostTensor.of(w, cols),
                HostTensor.of(b, cols))) {
            Reference64.Normalized ref = Reference64.layerNorm(x, dims, -1, 1e-5f, w, b);
            double[] bound = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                int row = i / cols;
                double inv = ref.invStd()[row];
                bound[i] = Tolerances.element((x[i] - ref.mean()[row]) * inv, Math.abs(ref.mean()[row]) * inv,
                        w[i % cols], b[i % cols], ref.y()[i]);
            }
            Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
            double[] meanBound = new double[rows];
            for (int i = 0; i < rows; i++) {
                meanBound[i] = Tolerances.mean(ref.mean()[i], 1 / ref.invStd()[i]);
            }
            Tolerances.assertWithin(name + " Mean", r.mean().toHost().data(), ref.mean(), meanBound);
        }
    }

    private static void rmsNorm(NormEngine engine, String name, int rows, int cols) {
        long[] dims = {rows, cols};
        float[] x = Data.gaussian(name, rows * cols, 0.5, 2);
        float[] w = Data.gaussian(name + "w", cols, 1, 0.5);
        try (NormResult r = engine.rmsNorm(RmsNorm.defaults(), HostTensor.of(x, dims), HostTensor.of(w, cols))) {
            Reference64.RmsNormalized ref = Reference64.rmsNorm(x, dims, -1, 1e-5f, w);
            double[] bound = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                bound[i] = Tolerances.element(x[i] * ref.invRms()[i / cols], 0, w[i % cols], 0, ref.y()[i]);
            }
            Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
        }
    }

    private static void batchNorm(NormEngine engine, String name, long[] dims) {
        int n = Data.size(dims);
        int c = (int) dims[1];
        int spatial = n / (int) (dims[0] * c);
        float[] x = Data.gaussian(name, n, 2, 3);
        float[] w = Data.gaussian(name + "w", c, 1, 0.5);
        float[] b = Data.gaussian(name + "b", c, 0, 0.5);
        float[] rm = new float[c];
        float[] rv = Data.uniform(name + "v", c, 0.5, 2);
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        try (NormResult r = engine.batchNorm(spec, HostTensor.of(x, dims), HostTensor.of(w, c), HostTensor.of(b, c),
                HostTensor.of(rm, c), HostTensor.of(rv, c))) {
            Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, dims, w, b, rm, rv, 1e-5f,
                    spec.momentum(), false);
            double[] bound = new double[n];
            for (int i = 0; i < n; i++) {
                int ch = (i / spatial) % c;
                double inv = ref.invStd()[ch];
                bound[i] = Tolerances.element((x[i] - ref.mean()[ch]) * inv, Math.abs(ref.mean()[ch]) * inv, w[ch],
                        b[ch], ref.y()[i]);
            }
            Tolerances.assertWithin(name + " Y", r.y().toHost().data(), ref.y(), bound);
        }
    }
}
