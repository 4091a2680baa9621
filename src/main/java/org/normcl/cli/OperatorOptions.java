package org.normcl.cli;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import org.normcl.BatchNorm;
import org.normcl.DType;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.Layout;
import org.normcl.MeanVarianceNorm;
import org.normcl.MomentumConvention;
import org.normcl.RmsNorm;
import org.normcl.npy.Npy;
import org.normcl.npy.NpyIOException;
import org.normcl.npy.NpyOutputs;
import org.normcl.npy.NpyUnsupportedDTypeException;

import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * What {@code apply} and {@code grad} share: the operator, its input files and attributes, the
 * element-type and layout switches ({@code --bf16}, {@code --channels-last}) and the backend. One
 * place decides which option applies to which operator and builds the specs.
 *
 * <p>Files are read in the type they store: float32 ({@code <f4}), float16 ({@code <f2}), float64
 * ({@code <f8}) and, with {@code --bf16}, bfloat16 bits ({@code <u2}). Parameters may be float32 or
 * X's type; the engine checks that and its messages name the option.
 */
final class OperatorOptions {

    /** The operators. */
    enum Op {
        LAYER_NORM("layer-norm"), RMS_NORM("rms-norm"), BATCH_NORM("batch-norm"), GROUP_NORM("group-norm"),
        INSTANCE_NORM("instance-norm"), MVN("mvn");

        final String cliName;

        Op(String cliName) {
            this.cliName = cliName;
        }

        static Op parse(String s) {
            for (Op op : values()) {
                if (op.cliName.equals(s.toLowerCase(Locale.ROOT))) {
                    return op;
                }
            }
            throw new UserInputException("OP = '" + s + "': expected one of layer-norm, rms-norm, batch-norm,"
                    + " group-norm, instance-norm, mvn");
        }
    }

    @Parameters(index = "0", paramLabel = "OP", description = "The operator.")
    String opName;

    @Option(names = "--input", required = true, paramLabel = "X.npy", description = "Input tensor X.")
    Path input;

    @Option(names = "--scale", paramLabel = "W.npy", description = "Scale (gamma).")
    Path scale;

    @Option(names = "--bias", paramLabel = "B.npy", description = "Bias (beta).")
    Path bias;

    @Option(names = "--epsilon", paramLabel = "E",
            description = "Epsilon. Default: 1e-5 (1e-9 for mvn, added to the standard deviation).")
    Double epsilon;

    @Option(names = "--axis", paramLabel = "A", description = "layer-norm, rms-norm: first normalized axis. Default: -1.")
    Integer axis;

    @Option(names = "--axes", paramLabel = "A,B,...", split = ",",
            description = "mvn: reduced axes. Default: 0,2,3.")
    int[] axes;

    @Option(names = "--groups", paramLabel = "G", description = "group-norm: number of groups (divides C).")
    Integer groups;

    @Option(names = "--per-group-affine",
            description = "group-norm: scale and bias of shape [G] (ONNX opset 18) instead of [C].")
    boolean perGroupAffine;

    @Option(names = "--mean", paramLabel = "M.npy", description = "batch-norm: running mean, shape [C].")
    Path mean;

    @Option(names = "--var", paramLabel = "V.npy", description = "batch-norm: running variance, shape [C].")
    Path var;

    @Option(names = "--training", description = "batch-norm: use batch statistics (and update the running ones).")
    boolean training;

    @Option(names = "--momentum", paramLabel = "M",
            description = "batch-norm --training: momentum of the running statistics, read as --convention says."
                    + " Default: 0.9 with onnx (the weight of the running value), 0.1 with pytorch (the weight of"
                    + " the new batch); either way the batch gets 0.1.")
    Double momentum;

    @Option(names = "--convention", paramLabel = "onnx|pytorch",
            description = "batch-norm --training: how the running statistics are updated (onnx: biased batch"
                    + " variance, momentum weights the running value; pytorch: unbiased, momentum weights the batch)."
                    + " Default: onnx.")
    String convention;

    @Option(names = "--bf16",
            description = "Files of dtype <u2 hold bfloat16 bits: X (and dY) must be <u2, parameters <u2 or <f4;"
                    + " bfloat16 outputs are written as <u2.")
    boolean bf16;

    @Option(names = "--channels-last",
            description = "batch-norm, group-norm, instance-norm: X is (N, D1, ..., C) (NHWC) instead of"
                    + " (N, C, D1, ...).")
    boolean channelsLast;

    @Mixin
    BackendOptions backend;

    /** The inputs read from disk. */
    record Inputs(HostTensor x, HostTensor scale, HostTensor bias, HostTensor mean, HostTensor var) {
    }

    Op op() {
        return Op.parse(opName);
    }

    /**
     * Rejects options that do not apply to the operator, and missing required ones, before any
     * file is read.
     *
     * @param op the operator
     * @param runningStatsNeeded whether batch-norm needs --mean/--var in the current mode
     */
    void check(Op op, boolean runningStatsNeeded) {
        if (channelsLast && op != Op.BATCH_NORM && op != Op.GROUP_NORM && op != Op.INSTANCE_NORM) {
            throw new UserInputException("--channels-last applies to batch-norm, group-norm, instance-norm, not to "
                    + op.cliName);
        }
        onlyFor(op, axis != null, "--axis", Op.LAYER_NORM, Op.RMS_NORM);
        onlyFor(op, axes != null, "--axes", Op.MVN);
        onlyFor(op, groups != null, "--groups", Op.GROUP_NORM);
        onlyFor(op, perGroupAffine, "--per-group-affine", Op.GROUP_NORM);
        onlyFor(op, mean != null, "--mean", Op.BATCH_NORM);
        onlyFor(op, var != null, "--var", Op.BATCH_NORM);
        onlyFor(op, training, "--training", Op.BATCH_NORM);
        onlyFor(op, momentum != null, "--momentum", Op.BATCH_NORM);
        onlyFor(op, convention != null, "--convention", Op.BATCH_NORM);
        onlyFor(op, scale != null, "--scale", Op.LAYER_NORM, Op.RMS_NORM, Op.BATCH_NORM, Op.GROUP_NORM,
                Op.INSTANCE_NORM);
        onlyFor(op, bias != null, "--bias", Op.LAYER_NORM, Op.BATCH_NORM, Op.GROUP_NORM, Op.INSTANCE_NORM);
        if (op == Op.GROUP_NORM && groups == null) {
            throw new UserInputException("--groups is required for group-norm: expected the number of groups, a"
                    + " divisor of C");
        }
        if (op == Op.BATCH_NORM) {
            if ((mean == null) != (var == null)) {
                throw new UserInputException((mean == null ? "--mean" : "--var")
                        + " is missing: --mean and --var are given together");
            }
            if (runningStatsNeeded && mean == null) {
                throw new UserInputException("batch-norm inference needs the running statistics: expected --mean"
                        + " M.npy --var V.npy (or --training for batch statistics)");
            }
        }
    }

    static void onlyFor(Op op, boolean given, String option, Op... allowed) {
        if (!given) {
            return;
        }
        for (Op a : allowed) {
            if (a == op) {
                return;
            }
        }
        List<String> names = new ArrayList<>();
        for (Op a : allowed) {
            names.add(a.cliName);
        }
        throw new UserInputException(option + " does not apply to " + op.cliName + ": it is for "
                + String.join(", ", names));
    }

    Inputs read() {
        return new Inputs(readData("--input", input), read("--scale", scale), read("--bias", bias),
                read("--mean", mean), read("--var", var));
    }

    /**
     * Reads a parameter or statistics file: float32, float16, float64, or with {@code --bf16}
     * bfloat16 bits ({@code <u2}). Whether its type fits X is the engine's check.
     *
     * @return the tensor, or null if the option is absent
     */
    HostTensor read(String option, Path file) {
        return read(option, file, bf16);
    }

    /**
     * Reads a data file (X or dY): as {@link #read(String, Path)}, and with {@code --bf16} it must be
     * {@code <u2}.
     */
    HostTensor readData(String option, Path file) {
        HostTensor t = read(option, file);
        if (bf16 && t != null && t.dtype() != DType.BFLOAT16) {
            throw new UserInputException(option + ": " + file + " holds " + CliNames.dtypeName(t.dtype())
                    + ": --bf16 expects <u2 files (bfloat16 bits) for X and dY");
        }
        return t;
    }

    static HostTensor read(String option, Path file, boolean bf16) {
        if (file == null) {
            return null;
        }
        try {
            return Npy.readTensor(file, bf16);
        } catch (UncheckedIOException e) {
            if (e.getCause() instanceof NoSuchFileException) {
                throw new UserInputException(option + ": cannot read " + file + ": no such file", e);
            }
            throw new UserInputException(option + ": " + e.getMessage(), e);
        } catch (NpyUnsupportedDTypeException e) {
            if (!bf16 && e.dtype().orElse(null) == DType.BFLOAT16) {
                throw new UserInputException(option + ": " + file + ": dtype " + e.descr()
                        + " holds bfloat16 only with --bf16 (other uint16 data is not supported)", e);
            }
            throw new UserInputException(option + ": " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new UserInputException(option + ": " + e.getMessage(), e);
        }
    }

    /**
     * Checks output paths: in existing, writable directories, not directories, pipes or devices
     * themselves, and distinct files (as {@link NpyOutputs#sameTarget}: not one entry spelt twice, nor
     * hard links).
     *
     * @param names the options
     * @param paths their values (null when not given)
     */
    static void checkOutputPaths(String[] names, Path[] paths) {
        for (int i = 0; i < paths.length; i++) {
            if (paths[i] == null) {
                continue;
            }
            Path p = paths[i].toAbsolutePath().normalize();
            Path dir = p.getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                throw new UserInputException(names[i] + " = " + paths[i] + ": directory " + dir + " does not exist");
            }
            if (!Files.isWritable(dir)) {
                throw new UserInputException(names[i] + " = " + paths[i] + ": directory " + dir
                        + " is not writable: expected a directory this user may write to");
            }
            if (Files.isDirectory(p)) {
                throw new UserInputException(names[i] + " = " + paths[i] + " is a directory: expected a file path");
            }
            try {
                // A named pipe, a device (/dev/null), a socket: refused before any work, not replaced.
                NpyOutputs.checkTarget(p);
            } catch (IllegalArgumentException e) {
                throw new UserInputException(names[i] + " = " + paths[i] + ": " + e.getMessage());
            }
            for (int j = 0; j < i; j++) {
                // The same directory entry by another spelling (alias/y.npy, alias -> .) or a hard
                // link: a commit would back the file up twice, and undoing it would lose the user's.
                if (paths[j] != null && NpyOutputs.sameTarget(paths[j], paths[i])) {
                    throw new UserInputException(names[i] + " = " + paths[i] + " is also given for another output: "
                            + names[j] + " = " + paths[j] + " names the same file");
                }
            }
        }
    }

    /**
     * An output file of a command, named in messages by its option ({@code --json}), and how to
     * stage it.
     */
    record OutputFile(String option, Path target, java.util.function.Consumer<NpyOutputs> stager) {
        /** @return bytes a command writes ({@code --json}, {@code --plot}, the tuning file) */
        static OutputFile of(String option, Path target, NpyOutputs.Content content) {
            return new OutputFile(option, target, out -> out.stage(target, content));
        }

        /** @return a tensor written as {@code .npy} ({@code --output}, {@code --save-mean}, ...) */
        static OutputFile of(String option, Path target, HostTensor tensor) {
            return new OutputFile(option, target, out -> out.stage(target, tensor));
        }
    }

    /**
     * Writes a command's output files all or nothing, through {@link NpyOutputs} (backups, undo,
     * the shutdown hook's cleanup): a failure names the file's option, {@code "--plot: cannot write
     * p.png: File name too long"}, and leaves every target as it was.
     *
     * @param files the files, null entries for files not asked for
     */
    static void writeAll(List<OutputFile> files) {
        OutputFile current = null;
        try (NpyOutputs out = new NpyOutputs()) {
            for (OutputFile f : files) {
                if (f != null) {
                    current = f;
                    f.stager().accept(out);
                }
            }
            current = null;
            out.commit();
        } catch (UncheckedIOException | IllegalArgumentException e) {
            // A staging failure is the file being staged; a commit's names its file.
            OutputFile failed = current;
            Path file = e instanceof NpyIOException io ? io.file() : null;
            for (OutputFile f : files) {
                if (failed == null && f != null && file != null && sameFile(f.target(), file)) {
                    failed = f;
                }
            }
            if (failed == null) {
                throw e;
            }
            String message = failed.option() + ": " + e.getMessage();
            throw e instanceof UncheckedIOException u ? new UncheckedIOException(message, u.getCause())
                    : new IllegalArgumentException(message, e);
        }
    }

    private static boolean sameFile(Path a, Path b) {
        return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
    }

    // ---------------------------------------------------------------- specs

    /** @return the layout {@code --channels-last} selects */
    Layout layout() {
        return channelsLast ? Layout.CHANNELS_LAST : Layout.CHANNELS_FIRST;
    }

    LayerNorm layerNorm() {
        LayerNorm s = LayerNorm.defaults().withAxis(axis != null ? axis : -1);
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    RmsNorm rmsNorm() {
        RmsNorm s = RmsNorm.defaults().withAxis(axis != null ? axis : -1);
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    GroupNorm groupNorm() {
        GroupNorm s = GroupNorm.of(groups)
                .withAffine(perGroupAffine ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL)
                .withLayout(layout());
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    InstanceNorm instanceNorm() {
        InstanceNorm s = InstanceNorm.defaults().withLayout(layout());
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    MeanVarianceNorm meanVarianceNorm() {
        MeanVarianceNorm s = MeanVarianceNorm.defaults();
        s = axes != null ? s.withAxes(axes) : s;
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    BatchNorm batchNorm() {
        BatchNorm s = BatchNorm.defaults().withTraining(training).withConvention(parseConvention())
                .withLayout(layout());
        s = momentum != null ? s.withMomentum(momentum) : s;
        return epsilon != null ? s.withEpsilon(epsilon) : s;
    }

    private MomentumConvention parseConvention() {
        if (convention == null) {
            return MomentumConvention.ONNX;
        }
        switch (convention.toLowerCase(Locale.ROOT)) {
            case "onnx":
                return MomentumConvention.ONNX;
            case "pytorch":
                return MomentumConvention.PYTORCH;
            default:
                throw new UserInputException("--convention = '" + convention + "': expected onnx or pytorch");
        }
    }
}
