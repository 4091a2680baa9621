package org.normcl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.function.Predicate;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.normcl.reference.Reference64;
import org.normcl.reference.Reference64Backward;
import org.normcl.reference.TestData;
import org.normcl.reference.Tolerance;
import org.normcl.testing.Data;
import org.normcl.testing.ReadmeCode;
import org.normcl.testing.ReadmeCode.Block;
import org.normcl.testing.ReadmeCode.Free;
import org.normcl.testing.ReadmeCode.Source;
import org.normcl.testing.ReadmeCode.Span;

/**
 * Guards README.md's Java examples: each {@code ```java} block, read from the README at test
 * time, must compile as written against the library and, run on the Java backend, do what its
 * prose and comments say; and the all-reduce recipe of "Batch statistics across devices and
 * hosts" (numbered steps 1-4), its inline code compiled from the README too, must give what one
 * batchNorm over the whole batch gives.
 *
 * <p>How a block is run ({@link ReadmeCode#wrap}): a generated class declares the variables the
 * block uses without declaring them (realistic shapes, seeded data), then holds the block line
 * for line, so that every compiler error and exception names its README line. The test rewrites
 * the text only where it must, each rewrite an exact string that has to be present:
 * <ul>
 * <li>a placeholder statement {@code ...} becomes the empty statement {@code ;};</li>
 * <li>{@code NormEngine.create()} becomes {@code NormEngine.create(EngineOptions.java())} and
 *     {@code MultiDeviceBatchNorm.onAllDevices()} becomes {@code MultiDeviceBatchNorm.on(shardEngines)}
 *     (two Java engines), so the run is the same with or without an OpenCL device, and fast; each
 *     such block is also compiled unchanged;</li>
 * <li>each try-with-resources variable is handed to the test when the try body starts, which
 *     copies its tensors to the host, so the checks below can see the results.</li>
 * </ul>
 * A new {@code ```java} block fails {@link #everyJavaBlockIsChecked()} until it gets a test here.
 */
class ReadmeExamplesTest {
    private static final Path README = TestData.root().getParent().resolve("README.md");
    private static final String API = "Java API";
    private static final String TRAINING = "Training";
    private static final String SHARDS = "Batch statistics across devices and hosts";
    /** The sections with exactly one checked {@code ```java} block each. */
    private static final Set<String> CHECKED = Set.of(API, TRAINING, SHARDS);

    @TempDir
    Path classes;

    private final List<String> readme = ReadmeCode.readme(README);

    @Test
    void everyJavaBlockIsChecked() {
        List<Block> blocks = ReadmeCode.javaBlocks(readme);
        assertFalse(blocks.isEmpty(), "no ```java block found in " + README);
        Map<String, List<Integer>> bySection = blocks.stream().collect(Collectors.groupingBy(Block::section,
                LinkedHashMap::new, Collectors.mapping(Block::fenceLine, Collectors.toList())));
        assertEquals(CHECKED, bySection.keySet(), "sections with ```java blocks (and their fence lines) "
                + bySection + ": each needs a test in ReadmeExamplesTest");
        bySection.forEach((section, lines) -> assertEquals(1, lines.size(),
                "section \"" + section + "\" has ```java blocks at lines " + lines + ": expected one"));
    }

    // ------------------------------------------------------------------------------------------ the blocks

    /** The "Java API" block: host arrays in and out, then a device-resident chain. */
    @Test
    void javaApiBlock() {
        long[] shape = {4096, 1024};
        float[] activations = Data.gaussian("readme activations", Data.size(shape), 0.5, 2);
        float[] weights = scale("readme weights", 1024);
        float[] biases = shift("readme biases", 1024);
        Map<String, Object> seen = runBlock(API, List.of(
                new Free("float[]", "activations", activations),
                new Free("float[]", "weights", weights),
                new Free("float[]", "biases", biases)),
                Map.of("NormEngine.create()", "NormEngine.create(EngineOptions.java())"));

        assertEquals(BackendKind.JAVA, seen.get("engine"), "the block's engine (rewritten to the Java backend)");
        // Host arrays in, host arrays out: layerNorm with epsilon 1e-6.
        Reference64.Normalized ref = Reference64.layerNorm(activations, shape, -1, 1e-6f, weights, biases);
        Tolerance.assertClose("r.y() against a float64 layer norm (epsilon 1e-6)",
                finite("r.y()", tensor(seen, "r", "y"), false, shape), ref.y(), 1e-5, 1e-5);
        Tolerance.assertClose("r.mean(), 'shape [4096, 1]'",
                finite("r.mean()", tensor(seen, "r", "mean"), false, 4096, 1), ref.mean(), 1e-6, 1e-6);
        // Device-resident: the upload, RMS norm, then layer norm (defaults, epsilon 1e-5) of its Y.
        assertArrayEquals(activations, finite("dx", (Copy) seen.get("dx"), true, shape), "dx = engine.upload(x)");
        float[] rms = finite("a.y()", tensor(seen, "a", "y"), true, shape);
        Tolerance.assertClose("a.y() against a float64 RMS norm",
                rms, Reference64.rmsNorm(activations, shape, -1, 1e-5f, weights).y(), 1e-5, 1e-5);
        Tolerance.assertClose("b.y() against a float64 layer norm of a.y()",
                finite("b.y()", tensor(seen, "b", "y"), true, shape),
                Reference64.layerNorm(rms, shape, -1, 1e-5f, weights, biases).y(), 1e-5, 1e-5);
    }

    /** The "Training" block: a layer norm forward and its backward from the saved statistics. */
    @Test
    void trainingBlock() {
        long[] shape = {64, 768};
        float[] x = Data.gaussian("readme training x", Data.size(shape), 0.3, 1.7);
        float[] dy = Data.gaussian("readme training dy", Data.size(shape), 0, 1);
        float[] gamma = scale("readme training gamma", 768);
        float[] beta = shift("readme training beta", 768);
        Map<String, Object> seen;
        try (NormEngine engine = java()) {
            seen = runBlock(TRAINING, List.of(new Free("NormEngine", "engine", engine),
                    new Free("LayerNorm", "spec", LayerNorm.defaults()),
                    new Free("HostTensor", "x", HostTensor.of(x, shape)),
                    new Free("HostTensor", "gamma", HostTensor.of(gamma, 768)),
                    new Free("HostTensor", "beta", HostTensor.of(beta, 768)),
                    new Free("HostTensor", "dy", HostTensor.of(dy, shape))), Map.of());
        }
        Tolerance.assertClose("fwd.y() against a float64 layer norm", finite("fwd.y()", tensor(seen, "fwd", "y"),
                false, shape), Reference64.layerNorm(x, shape, -1, 1e-5f, gamma, beta).y(), 1e-5, 1e-5);
        // "g.dx(), g.dScale(), g.dBias() live where dy lives": dy is on the host.
        Reference64Backward.Grads ref = Reference64Backward.backward(Reference64Backward.layer(shape, -1, 1e-5f, false),
                Reference64Backward.widen(x), Reference64Backward.widen(dy), Reference64Backward.widen(gamma));
        Tolerance.assertClose("g.dx()", finite("g.dx()", tensor(seen, "g", "dx"), false, shape), ref.dx(), 1e-4, 1e-4);
        Tolerance.assertClose("g.dScale()", finite("g.dScale()", tensor(seen, "g", "dScale"), false, 768),
                ref.dScale(), 1e-4, 1e-4);
        Tolerance.assertClose("g.dBias()", finite("g.dBias()", tensor(seen, "g", "dBias"), false, 768), ref.dBias(),
                1e-4, 1e-4);
    }

    /** The MultiDeviceBatchNorm block: its result is "what one device gives, to float32 rounding". */
    @Test
    void multiDeviceBlock() {
        BatchCase c = BatchCase.seeded("readme multi-device");
        Map<String, Object> seen;
        try (NormEngine e0 = java(); NormEngine e1 = java()) {
            seen = runBlock(SHARDS, List.of(
                    new Free("java.util.List<NormEngine>", "shardEngines", List.of(e0, e1)),
                    new Free("HostTensor", "x", c.host(c.x, c.shape)),
                    new Free("HostTensor", "gamma", c.host(c.gamma)),
                    new Free("HostTensor", "beta", c.host(c.beta)),
                    new Free("HostTensor", "runMean", c.host(c.runMean)),
                    new Free("HostTensor", "runVar", c.host(c.runVar))),
                    Map.of("MultiDeviceBatchNorm.onAllDevices()", "MultiDeviceBatchNorm.on(shardEngines)"));
        }
        assertEquals(List.of(BackendKind.JAVA, BackendKind.JAVA), seen.get("bn"), "bn's engines (rewritten)");
        c.assertTraining("the MultiDeviceBatchNorm block's r", tensor(seen, "r", "y"), tensor(seen, "r", "mean"),
                tensor(seen, "r", "invStdDev"), tensor(seen, "r", "runningMean"), tensor(seen, "r", "runningVar"));
    }

    // ------------------------------------------------------------------------------------------ the recipe

    /**
     * The all-reduce recipe, steps 1-4, on two ranks with shards of unequal size. The inline code
     * of each step is taken from the README and compiled into one method per step; the test
     * plays the all-gather (step 2) by handing each rank copies of every rank's arrays.
     */
    @Test
    void allReduceRecipe() {
        List<List<Span>> steps = ReadmeCode.numberedSteps(readme, SHARDS);
        assertEquals(4, steps.size(), "numbered steps in section \"" + SHARDS + "\": " + steps);
        Span moments = only(steps.get(0), 1, s -> s.text().contains("="));
        List<Span> gathered = spans(steps.get(1), 2, 3, s -> s.text().matches("\\w+\\.\\w+\\(\\)"));
        Span merge = only(steps.get(2), 3, s -> s.text().contains("="));
        Span entry = only(steps.get(2), 3, s -> s.text().contains("(") && !s.text().contains("="));
        Span normalize = only(steps.get(3), 4, s -> s.text().startsWith("engine."));

        String cls = "ReadmeAllReduceRecipe";
        Source src = new ReadmeCode.SourceBuilder(cls)
                .generated("import org.normcl.*;")
                .generated("import java.util.*;")
                .generated("public final class " + cls + " {")
                .generated("    public static ChannelMoments step1(NormEngine engine, BatchNorm spec,"
                        + " HostTensor localShard) {")
                .line("        " + statement(moments), moments.line())
                .generated("        return m;")
                .generated("    }")
                .generated("    public static Object[] step2(ChannelMoments m) {")
                // The types step 2 names: "a long and two double[C]".
                .line("        long count = " + gathered.get(0).text() + ";", gathered.get(0).line())
                .line("        double[] mean = " + gathered.get(1).text() + ";", gathered.get(1).line())
                .line("        double[] m2 = " + gathered.get(2).text() + ";", gathered.get(2).line())
                .generated("        return new Object[] {count, mean, m2};")
                .generated("    }")
                .generated("    public static ChannelMoments step3(List<Object[]> gatheredInRankOrder) {")
                .generated("        List<ChannelMoments> listInRankOrder = new ArrayList<>();")
                .generated("        for (Object[] rank : gatheredInRankOrder) {")
                .generated("            long count = (Long) rank[0];")
                .generated("            double[] mean = (double[]) rank[1];")
                .generated("            double[] m2 = (double[]) rank[2];")
                .line("            listInRankOrder.add(" + entry.text() + ");", entry.line())
                .generated("        }")
                .line("        " + statement(merge), merge.line())
                .generated("        return global;")
                .generated("    }")
                .generated("    public static NormResult step4(NormEngine engine, BatchNorm spec,"
                        + " HostTensor localShard, HostTensor gamma, HostTensor beta, HostTensor runMean,"
                        + " HostTensor runVar, ChannelMoments global) {")
                .line("        return " + normalize.text() + ";", normalize.line())
                .generated("    }")
                .generated("}")
                .build();
        String what = "the all-reduce recipe of README section \"" + SHARDS + "\"";
        ClassLoader loader = ReadmeCode.compile(classes, readme, what, List.of(src));
        followTheRecipe((step, args) -> ReadmeCode.invoke(loader, readme, src, what + ", " + step, step, args));
    }

    /** Calls a step of the recipe as compiled from the README: "step1" to "step4". */
    private interface Recipe {
        Object step(String name, Object... args);
    }

    private static void followTheRecipe(Recipe recipe) {
        BatchCase c = BatchCase.seeded("readme all-reduce");
        BatchNorm spec = BatchNorm.defaults().withTraining(true);
        long n0 = 2;   // rank 0 holds samples [0, 2), rank 1 the other 4: unequal counts weigh the merge
        long perSample = Data.size(c.shape) / c.shape[0];
        HostTensor[] shards = {
            c.host(Arrays.copyOfRange(c.x, 0, (int) (n0 * perSample)), shardShape(c.shape, n0)),
            c.host(Arrays.copyOfRange(c.x, (int) (n0 * perSample), c.x.length), shardShape(c.shape, c.shape[0] - n0)),
        };
        HostTensor runMean = c.host(c.runMean);
        HostTensor runVar = c.host(c.runVar);
        NormEngine[] ranks = {java(), java()};
        try {
            // 1. each rank: its shard's moments.
            List<Object[]> sent = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                ChannelMoments m = (ChannelMoments) recipe.step("step1", ranks[r], spec, shards[r]);
                // 2. all-gather count, mean and M2: every rank receives copies, in rank order.
                sent.add((Object[]) recipe.step("step2", m));
            }
            ChannelMoments[] global = new ChannelMoments[2];
            NormResult[] results = new NormResult[2];
            for (int r = 0; r < 2; r++) {
                List<Object[]> received = new ArrayList<>();
                for (Object[] s : sent) {
                    received.add(new Object[] {s[0], ((double[]) s[1]).clone(), ((double[]) s[2]).clone()});
                }
                // 3. each rank merges the same list in the same order ...
                global[r] = (ChannelMoments) recipe.step("step3", received);
                // 4. ... and normalizes its shard with the global statistics.
                results[r] = (NormResult) recipe.step("step4", ranks[r], spec, shards[r], c.host(c.gamma),
                        c.host(c.beta), runMean, runVar, global[r]);
            }
            // "the same list in the same order gives every rank the same bits"
            assertEquals(c.shape[0] * perSample / c.shape[1], global[0].count(), "global count");
            assertArrayEquals(global[0].mean(), global[1].mean(), "global mean, rank 0 against rank 1");
            assertArrayEquals(global[0].m2(), global[1].m2(), "global M2, rank 0 against rank 1");
            c.assertMoments(global[0]);
            // "runningMean() and runningVar() are the running statistics updated from them, the same bits
            // on every rank (runMean and runVar themselves are not changed)"; and every rank used the
            // same global statistics.
            for (String t : List.of("mean", "invStdDev", "runningMean", "runningVar")) {
                assertArrayEquals(statistic(results[0], t), statistic(results[1], t), t + ", rank 0 against rank 1");
            }
            assertArrayEquals(c.runMean, runMean.data(), "runMean is not changed: the update is returned");
            assertArrayEquals(c.runVar, runVar.data(), "runVar is not changed: the update is returned");
            float[] y = new float[c.x.length];
            for (int r = 0; r < 2; r++) {
                float[] part = finite("rank " + r + " Y", Copy.of(results[r].y()), false, shards[r].shape().dims());
                System.arraycopy(part, 0, y, r == 0 ? 0 : (int) (n0 * perSample), part.length);
            }
            NormResult r0 = results[0];
            c.assertTraining("the all-reduce recipe", new Copy(false, HostTensor.of(y, c.shape)), Copy.of(r0.mean()),
                    Copy.of(r0.invStdDev()), Copy.of(r0.runningMean()), Copy.of(r0.runningVar()));
        } finally {
            for (NormEngine e : ranks) {
                e.close();
            }
        }
    }

    private static float[] statistic(NormResult r, String which) {
        return Copy.of(switch (which) {
            case "mean" -> r.mean();
            case "invStdDev" -> r.invStdDev();
            case "runningMean" -> r.runningMean();
            default -> r.runningVar();
        }).floats();
    }

    private static long[] shardShape(long[] shape, long n) {
        long[] d = shape.clone();
        d[0] = n;
        return d;
    }

    /** The README text of a step's code span as a statement (its own semicolon or one added). */
    private static String statement(Span s) {
        return s.text().endsWith(";") ? s.text() : s.text() + ";";
    }

    private static Span only(List<Span> spans, int step, Predicate<Span> which) {
        return spans(spans, step, 1, which).get(0);
    }

    /** The step's spans that {@code which} selects, {@code count} of them, else a failure saying what changed. */
    private static List<Span> spans(List<Span> spans, int step, int count, Predicate<Span> which) {
        List<Span> found = spans.stream().filter(which).toList();
        if (found.size() != count) {
            fail("README.md all-reduce recipe, step " + step + ": expected " + count + " inline code span(s) of the"
                    + " form the test compiles, found " + found + " among " + spans + ": update ReadmeExamplesTest");
        }
        return found;
    }

    // ------------------------------------------------------------------------------------------ batch-norm data

    /**
     * A training-mode batch norm case, (N, C, H, W) = (6, 8, 7, 7) with a per-sample spread around
     * a mean of 40, and its checks against one engine's batchNorm over the whole batch and a
     * float64 reference computed here.
     */
    private record BatchCase(long[] shape, float[] x, float[] gamma, float[] beta, float[] runMean, float[] runVar) {
        static BatchCase seeded(String seed) {
            long[] shape = {6, 8, 7, 7};
            return new BatchCase(shape, Data.gaussian(seed + " x", Data.size(shape), 40, 3),
                    scale(seed + " gamma", 8), shift(seed + " beta", 8),
                    Data.uniform(seed + " runMean", 8, -1, 1), Data.uniform(seed + " runVar", 8, 0.5, 2));
        }

        HostTensor host(float[] data, long... dims) {
            return HostTensor.of(data.clone(), dims.length == 0 ? new long[] {data.length} : dims);
        }

        /** The per-channel moments against an inline float64 two-pass computation. */
        void assertMoments(ChannelMoments m) {
            int c = (int) shape[1];
            int inner = Data.size(shape) / (int) shape[0] / c;
            double[] mean = new double[c];
            double[] m2 = new double[c];
            for (int ch = 0; ch < c; ch++) {
                for (int i = 0; i < x.length; i++) {
                    mean[ch] += i / inner % c == ch ? x[i] : 0;
                }
                mean[ch] /= m.count();
                for (int i = 0; i < x.length; i++) {
                    double d = x[i] - mean[ch];
                    m2[ch] += i / inner % c == ch ? d * d : 0;
                }
            }
            Tolerance.assertClose("global mean against float64", m.mean(), mean, 0, 1e-6);
            Tolerance.assertClose("global M2 against float64", m.m2(), m2, 0, 1e-5);
        }

        /**
         * Y, the statistics used and the running statistics (ONNX convention, momentum 0.9) are
         * those of one engine's batchNorm over the whole batch to float32 rounding (not to the
         * bit: the moments are merged in another order; 1e-6 absolute plus 1e-6 relative, where
         * the differences seen are up to 1.2e-6 for |Y| up to 4), and both match a float64
         * reference.
         */
        void assertTraining(String what, Copy y, Copy mean, Copy invStd, Copy newMean, Copy newVar) {
            Copy[] got = {y, mean, invStd, newMean, newVar};
            String[] names = {"y", "mean", "invStdDev", "runningMean", "runningVar"};
            long c = shape[1];
            long[][] dims = {shape, {c}, {c}, {c}, {c}};
            Reference64.BatchNormTraining ref = Reference64.batchNormTraining(x, shape, gamma, beta, runMean, runVar,
                    1e-5f, 0.9f, false);
            double[][] want = {ref.y(), ref.mean(), ref.invStd(), ref.newRunningMean(), ref.newRunningVar()};
            try (NormEngine one = java();
                 NormResult single = one.batchNorm(BatchNorm.defaults().withTraining(true), host(x, shape),
                         host(gamma), host(beta), host(runMean), host(runVar))) {
                Tensor[] whole = {single.y(), single.mean(), single.invStdDev(), single.runningMean(),
                    single.runningVar()};
                for (int i = 0; i < got.length; i++) {
                    float[] v = finite(what + " " + names[i], got[i], false, dims[i]);
                    Tolerance.assertClose(what + " " + names[i] + " against one batchNorm over the whole batch", v,
                            Reference64.toDouble(Copy.of(whole[i]).floats()), 1e-6, 1e-6);
                    Tolerance.assertClose(what + " " + names[i] + " against float64", v, want[i], 2e-5, 2e-5);
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------ running a block

    /** A tensor the README code handed over, copied to the host, and whether it was on a device. */
    private record Copy(boolean onDevice, HostTensor host) {
        static Copy of(Tensor t) {
            assertNotNull(t, "a tensor the README code returns");
            return new Copy(t instanceof DeviceTensor, t.toHost());
        }

        float[] floats() {
            return host.toFloats();
        }
    }

    /**
     * Compiles the section's block as written, then runs it with the rewrites and returns what
     * it handed over: for each try resource, by name, its tensors (result name to {@link Copy}),
     * its copy (a tensor), its backend (an engine) or its engines' backends (MultiDeviceBatchNorm).
     */
    private Map<String, Object> runBlock(String section, List<Free> free, Map<String, String> rewrites) {
        List<Block> found = ReadmeCode.javaBlocks(readme).stream().filter(b -> b.section().equals(section)).toList();
        assertEquals(1, found.size(), "```java blocks in README section \"" + section + "\"");
        Block block = found.get(0);
        String name = "ReadmeBlockAtLine" + block.fenceLine();
        Source run = ReadmeCode.wrap(block, name, free, rewrites);
        List<Source> sources = new ArrayList<>(List.of(run));
        if (!rewrites.isEmpty()) {
            sources.add(ReadmeCode.wrap(block, name + "AsWritten", free, Map.of()));
        }
        ClassLoader loader = ReadmeCode.compile(classes, readme, block.where(), sources);
        Map<String, Object> seen = new LinkedHashMap<>();
        Map<String, Object> io = new HashMap<>();
        for (Free f : free) {
            io.put(f.name(), f.value());
        }
        io.put(ReadmeCode.RECORDER, (BiConsumer<String, Object>) (n, v) -> {
            if (seen.put(n, snapshot(v)) != null) {
                fail(block.where() + " has two try resources named " + n + ": the test cannot tell them apart");
            }
        });
        ReadmeCode.run(loader, readme, run, block.where(), io);
        return seen;
    }

    private static Object snapshot(Object v) {
        if (v instanceof NormResult r) {
            return tensors("y", r.y(), "mean", r.mean(), "invStdDev", r.invStdDev(), "runningMean", r.runningMean(),
                    "runningVar", r.runningVar());
        } else if (v instanceof GradResult g) {
            return tensors("dx", g.dx(), "dScale", g.dScale(), "dBias", g.dBias());
        } else if (v instanceof Tensor t) {
            return Copy.of(t);
        } else if (v instanceof NormEngine e) {
            return e.backendKind();
        } else if (v instanceof MultiDeviceBatchNorm m) {
            return m.engines().stream().map(NormEngine::backendKind).toList();
        }
        return v;
    }

    private static Map<String, Copy> tensors(Object... nameThenTensor) {
        Map<String, Copy> out = new LinkedHashMap<>();
        for (int i = 0; i < nameThenTensor.length; i += 2) {
            if (nameThenTensor[i + 1] != null) {
                out.put((String) nameThenTensor[i], Copy.of((Tensor) nameThenTensor[i + 1]));
            }
        }
        return out;
    }

    /** The tensor {@code which} of the try resource {@code resource} the block handed over. */
    @SuppressWarnings("unchecked")
    private static Copy tensor(Map<String, Object> seen, String resource, String which) {
        Object r = seen.get(resource);
        assertInstanceOf(Map.class, r, "try resource " + resource + " of the README block, among " + seen.keySet());
        Copy c = ((Map<String, Copy>) r).get(which);
        assertNotNull(c, resource + "." + which + "() is null");
        return c;
    }

    /** Asserts where a tensor lives, its shape and that every value is finite; returns its values. */
    private static float[] finite(String what, Copy c, boolean onDevice, long... dims) {
        assertEquals(onDevice, c.onDevice(), what + (onDevice ? " stays on the device" : " is on the host"));
        assertArrayEquals(dims, c.host().shape().dims(), what + " shape " + c.host().shape());
        float[] v = c.floats();
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                fail(what + "[" + i + "] = " + v[i] + ": expected finite values");
            }
        }
        return v;
    }

    /** @return seeded scale (gamma) values in [0.5, 1.5) */
    private static float[] scale(String seed, int n) {
        return Data.uniform(seed, n, 0.5, 1.5);
    }

    /** @return seeded bias (beta) values in [-0.5, 0.5) */
    private static float[] shift(String seed, int n) {
        return Data.uniform(seed, n, -0.5, 0.5);
    }

    private static NormEngine java() {
        return NormEngine.create(EngineOptions.java());
    }

    @Test
    void placeholdersAndTryResourcesKeepEveryLine() {
        String code = "try (A a = f(\"(\"); // (\n     B b = g()) {\n    ...   // x\n}";
        String out = ReadmeCode.recordTryResources(ReadmeCode.emptyPlaceholders(code), "rec");
        assertEquals("try (A a = f(\"(\"); // (\n     B b = g()) { rec.accept(\"a\", a); rec.accept(\"b\", b);\n"
                + "    ;     // x\n}", out);
        assertTrue(ReadmeCode.emptyPlaceholders("long... dims;").contains("..."), "varargs are not placeholders");
    }
}
