package org.normcl.bench;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * NormCL's Java backend, ONNX Runtime's LayerNormalization and a copy of the same bytes, timed in
 * turn (rounds of a few consecutive calls of each, so a noisy neighbour slows all alike, and the
 * first call of each block, which finds the caches full of the previous workload's arrays, is not
 * counted), with the medians as GB/s and ratios.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/benchmarks.jar org.normcl.bench.SideBySide \
 *     [--shapes 8192x1024,65536x128,1024x8192,512x65536] [--threads 2] [--rounds 10] [--block 6] [--warmup-ms 2000]
 * </pre>
 */
public final class SideBySide {
    private SideBySide() {
    }

    public static void main(String[] args) throws Exception {
        List<String> shapes = List.of("8192x1024", "65536x128", "1024x8192", "512x65536");
        int threads = 2;
        int rounds = 10;
        int block = 6;
        long warmupMs = 2000;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes" -> shapes = Arrays.asList(args[++i].split(","));
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--rounds" -> rounds = Integer.parseInt(args[++i]);
                case "--block" -> block = Math.max(2, Integer.parseInt(args[++i]));
                case "--warmup-ms" -> warmupMs = Long.parseLong(args[++i]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + ": expected --shapes, --threads, --rounds, --block or --warmup-ms");
            }
        }
        System.out.printf(Locale.ROOT, "%-10s %9s %9s %9s %9s | %8s %8s %8s | %9s %9s %9s | %7s%n", "shape",
                "LN ms", "RMS ms", "ORT ms", "copy ms", "LN GB/s", "RMS GB/s", "ORT GB/s", "LN/copy", "RMS/copy",
                "ORT/copy", "LN/ORT");
        String device = null;
        for (String shape : shapes) {
            long[] s = Workloads.shape(shape);
            long lnBytes = Workloads.layerNormBytes(s[0], s[1]);
            long rmsBytes = Workloads.rmsNormBytes(s[0], s[1]);
            try (Workloads.Java ln = new Workloads.Java(s[0], s[1], false, threads);
                    Workloads.Java rms = new Workloads.Java(s[0], s[1], true, threads);
                    Workloads.Ort ort = new Workloads.Ort(s[0], s[1], threads);
                    Workloads.Copy copy = new Workloads.Copy(lnBytes, threads)) {
                device = ln.description();
                long end = System.nanoTime() + warmupMs * 1_000_000L;
                while (System.nanoTime() < end) {
                    ln.run();
                    rms.run();
                    ort.run();
                    copy.run();
                }
                // Rounds of `block` consecutive calls of each workload in turn; the first call of a block
                // (caches still holding the previous workload's arrays) is not counted.
                double[] tl = new double[rounds * (block - 1)];
                double[] tr = new double[tl.length];
                double[] to = new double[tl.length];
                double[] tc = new double[tl.length];
                int n = 0;
                for (int r = 0; r < rounds; r++) {
                    for (int j = 0; j < block; j++) {
                        long t0 = System.nanoTime();
                        ln.run();
                        if (j > 0) {
                            tl[n + j - 1] = (System.nanoTime() - t0) / 1e6;
                        }
                    }
                    for (int j = 0; j < block; j++) {
                        long t0 = System.nanoTime();
                        rms.run();
                        if (j > 0) {
                            tr[n + j - 1] = (System.nanoTime() - t0) / 1e6;
                        }
                    }
                    for (int j = 0; j < block; j++) {
                        long t0 = System.nanoTime();
                        ort.run();
                        if (j > 0) {
                            to[n + j - 1] = (System.nanoTime() - t0) / 1e6;
                        }
                    }
                    for (int j = 0; j < block; j++) {
                        long t0 = System.nanoTime();
                        copy.run();
                        if (j > 0) {
                            tc[n + j - 1] = (System.nanoTime() - t0) / 1e6;
                        }
                    }
                    n += block - 1;
                }
                double ml = median(tl);
                double mr = median(tr);
                double mo = median(to);
                double mc = median(tc);
                double gl = lnBytes / ml / 1e6;
                double gr = rmsBytes / mr / 1e6;
                double go = lnBytes / mo / 1e6;
                double gc = copy.bytes() / mc / 1e6;
                System.out.printf(Locale.ROOT, "%-10s %9.3f %9.3f %9.3f %9.3f | %8.1f %8.1f %8.1f | %9.2f %9.2f %9.2f"
                        + " | %7.2f%n", shape, ml, mr, mo, mc, gl, gr, go, gl / gc, gr / gc, go / gc, gl / go);
            }
        }
        System.out.println("copy GB/s and ms: " + threads + "-thread System.arraycopy of the layer norm's bytes;"
                + " medians of " + rounds + " rounds of " + (block - 1) + " timed calls of each in turn; Java backend: "
                + device
                + "; ONNX Runtime: LayerNormalization, intra-op threads " + threads + ", outputs preallocated.");
    }

    static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
}
