package org.normcl.bench;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Layer norm forward, float32, over the last axis with scale and bias, two threads each: NormCL's
 * Java backend, ONNX Runtime 1.26.0's LayerNormalization, and a two-thread copy of the same bytes
 * (the bandwidth ceiling). Sample time, so the report carries the median (p0.50).
 *
 * <pre>
 * mvn -Pbench -DskipTests package
 * java -jar target/benchmarks.jar LayerNormBenchmark            # all shapes, all three
 * java -jar target/benchmarks.jar LayerNormBenchmark -p shape=8192x1024 -rf json
 * </pre>
 * GB/s = {@link Workloads#layerNormBytes} / time (RMS: {@link Workloads#rmsNormBytes}); the copy
 * moves the same bytes. {@code java -cp target/benchmarks.jar org.normcl.bench.SideBySide} prints
 * those numbers directly, timing the three alternately.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
@State(Scope.Benchmark)
public class LayerNormBenchmark {
    @Param({"8192x1024", "65536x128", "1024x8192", "512x65536"})
    public String shape;

    @Param({"2"})
    public int threads;

    private Workloads.Java java;
    private Workloads.Java javaRms;
    private Workloads.Ort ort;
    private Workloads.Copy copy;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        long[] s = Workloads.shape(shape);
        java = new Workloads.Java(s[0], s[1], false, threads);
        javaRms = new Workloads.Java(s[0], s[1], true, threads);
        ort = new Workloads.Ort(s[0], s[1], threads);
        copy = new Workloads.Copy(Workloads.layerNormBytes(s[0], s[1]), threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        java.close();
        javaRms.close();
        ort.close();
        copy.close();
    }

    @Benchmark
    public void normclLayerNorm() {
        java.run();
    }

    @Benchmark
    public void normclRmsNorm() {
        javaRms.run();
    }

    @Benchmark
    public void onnxRuntimeLayerNorm() throws Exception {
        ort.run();
    }

    @Benchmark
    public void copySameBytes() throws Exception {
        copy.run();
    }
}
