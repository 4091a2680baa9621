package org.normcl.cli;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.normcl.BatchNorm;
import org.normcl.GroupNorm;
import org.normcl.HostTensor;
import org.normcl.InstanceNorm;
import org.normcl.LayerNorm;
import org.normcl.MeanVarianceNorm;
import org.normcl.MomentumConvention;
import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.RmsNorm;
import org.normcl.Tensor;
import org.normcl.npy.Npy;
import org.normcl.npy.NpyOutputs;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code normcl apply OP}: runs one operator on {@code .npy} files. The options and exit codes are
 * a contract scripts rely on; every output is written to a temporary file and renamed into place
 * only when all outputs are ready, so a failure leaves no output file behind.
 */
@Command(name = "apply", sortOptions = false, mixinStandardHelpOptions = true,
        description = {"Run a normalization on float32 .npy files (C order).",
            "OP: layer-norm, rms-norm, batch-norm, group-norm, instance-norm, mvn.",
            "Exit 0 on success, 2 on bad usage or input, 1 on a runtime failure; no output file is left behind"
                    + " on failure."})
final class ApplyCommand implements Callable<Integer> {

    /** The operators, with the options each accepts besides the common ones. */
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

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "OP", description = "The operator.")
    String opName;

    @Option(names = "--input", required = true, paramLabel = "X.npy", description = "Input tensor X.")
    Path input;

    @Option(names = "--output", required = true, paramLabel = "Y.npy", description = "Output tensor Y.")
    Path output;

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

    @Option(names = "--training", description = "batch-norm: use batch statistics and update the running ones.")
    boolean training;

    @Option(names = "--momentum", paramLabel = "M", description = "batch-norm training momentum. Default: 0.9.")
    Double momentum;

    @Option(names = "--convention", paramLabel = "onnx|pytorch",
            description = "batch-norm running-statistic update convention. Default: onnx.")
    String convention;

    @Option(names = "--output-mean", paramLabel = "F.npy",
            description = "batch-norm training: updated running mean.")
    Path outputMean;

    @Option(names = "--output-var", paramLabel = "F.npy",
            description = "batch-norm training: updated running variance.")
    Path outputVar;

    @Option(names = "--save-mean", paramLabel = "F.npy", description = "The mean used (saved statistics).")
    Path saveMean;

    @Option(names = "--save-inv-std", paramLabel = "F.npy",
            description = "The inverse standard deviation used (inverse RMS for rms-norm).")
    Path saveInvStd;

    @Mixin
    BackendOptions backendOptions;

    @Override
    public Integer call() {
        Op op = Op.parse(opName);
        checkOptions(op);
        checkOutputPaths();
        HostTensor x = read("--input", input);
        HostTensor w = read("--scale", scale);
        HostTensor b = read("--bias", bias);
        HostTensor m = read("--mean", mean);
        HostTensor v = read("--var", var);
        try (NormEngine engine = backendOptions.createEngine(); NormResult r = run(engine, op, x, w, b, m, v);
                NpyOutputs out = new NpyOutputs()) {
            out.stage(output, r.y().toHost());
            stageIfWanted(out, saveMean, r.mean(), "--save-mean");
            stageIfWanted(out, saveInvStd, r.invStdDev(), "--save-inv-std");
            stageIfWanted(out, outputMean, r.runningMean(), "--output-mean");
            stageIfWanted(out, outputVar, r.runningVar(), "--output-var");
            out.commit();
        }
        return ExitCodes.OK;
    }

    private NormResult run(NormEngine engine, Op op, Tensor x, Tensor w, Tensor b, Tensor m, Tensor v) {
        try {
            switch (op) {
                case LAYER_NORM: {
                    LayerNorm s = LayerNorm.defaults().withAxis(axis != null ? axis : -1);
                    return engine.layerNorm(epsilon != null ? s.withEpsilon(epsilon) : s, x, w, b);
                }
                case RMS_NORM: {
                    RmsNorm s = RmsNorm.defaults().withAxis(axis != null ? axis : -1);
                    return engine.rmsNorm(epsilon != null ? s.withEpsilon(epsilon) : s, x, w);
                }
                case GROUP_NORM: {
                    GroupNorm s = GroupNorm.of(groups).withAffine(
                            perGroupAffine ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL);
                    return engine.groupNorm(epsilon != null ? s.withEpsilon(epsilon) : s, x, w, b);
                }
                case INSTANCE_NORM: {
                    InstanceNorm s = InstanceNorm.defaults();
                    return engine.instanceNorm(epsilon != null ? s.withEpsilon(epsilon) : s, x, w, b);
                }
                case MVN: {
                    MeanVarianceNorm s = MeanVarianceNorm.defaults();
                    s = axes != null ? s.withAxes(axes) : s;
                    return engine.meanVarianceNorm(epsilon != null ? s.withEpsilon(epsilon) : s, x);
                }
                case BATCH_NORM:
                default: {
                    BatchNorm s = BatchNorm.defaults().withTraining(training).withConvention(parseConvention());
                    s = momentum != null ? s.withMomentum(momentum) : s;
                    s = epsilon != null ? s.withEpsilon(epsilon) : s;
                    return engine.batchNorm(s, x, w, b, m, v);
                }
            }
        } catch (IllegalArgumentException e) {
            throw new UserInputException(CliNames.translate(e.getMessage()), e);
        }
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

    /** Rejects options that do not apply to the operator, and missing required ones, before any file is read. */
    private void checkOptions(Op op) {
        onlyFor(op, axis != null, "--axis", Op.LAYER_NORM, Op.RMS_NORM);
        onlyFor(op, axes != null, "--axes", Op.MVN);
        onlyFor(op, groups != null, "--groups", Op.GROUP_NORM);
        onlyFor(op, perGroupAffine, "--per-group-affine", Op.GROUP_NORM);
        onlyFor(op, mean != null, "--mean", Op.BATCH_NORM);
        onlyFor(op, var != null, "--var", Op.BATCH_NORM);
        onlyFor(op, training, "--training", Op.BATCH_NORM);
        onlyFor(op, momentum != null, "--momentum", Op.BATCH_NORM);
        onlyFor(op, convention != null, "--convention", Op.BATCH_NORM);
        onlyFor(op, outputMean != null, "--output-mean", Op.BATCH_NORM);
        onlyFor(op, outputVar != null, "--output-var", Op.BATCH_NORM);
        onlyFor(op, scale != null, "--scale", Op.LAYER_NORM, Op.RMS_NORM, Op.BATCH_NORM, Op.GROUP_NORM,
                Op.INSTANCE_NORM);
        onlyFor(op, bias != null, "--bias", Op.LAYER_NORM, Op.BATCH_NORM, Op.GROUP_NORM, Op.INSTANCE_NORM);
        onlyFor(op, saveMean != null, "--save-mean", Op.LAYER_NORM, Op.BATCH_NORM, Op.GROUP_NORM, Op.INSTANCE_NORM,
                Op.MVN);
        if (op == Op.GROUP_NORM && groups == null) {
            throw new UserInputException("--groups is required for group-norm: expected the number of groups, a"
                    + " divisor of C");
        }
        if (op == Op.BATCH_NORM) {
            if ((mean == null) != (var == null)) {
                throw new UserInputException((mean == null ? "--mean" : "--var")
                        + " is missing: --mean and --var are given together");
            }
            if (!training && mean == null) {
                throw new UserInputException("batch-norm inference needs the running statistics: expected --mean"
                        + " M.npy --var V.npy (or --training for batch statistics)");
            }
            if (!training && (outputMean != null || outputVar != null || momentum != null)) {
                throw new UserInputException((outputMean != null ? "--output-mean" : outputVar != null
                        ? "--output-var" : "--momentum") + " applies only with --training");
            }
            if (training && (outputMean != null || outputVar != null) && mean == null) {
                throw new UserInputException("--output-mean/--output-var need the running statistics to update:"
                        + " expected --mean M.npy --var V.npy");
            }
        }
    }

    private static void onlyFor(Op op, boolean given, String option, Op... allowed) {
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

    /** Checks the output paths: distinct, in existing directories, not directories themselves. */
    private void checkOutputPaths() {
        List<Path> outs = new ArrayList<>();
        String[] names = {"--output", "--save-mean", "--save-inv-std", "--output-mean", "--output-var"};
        Path[] paths = {output, saveMean, saveInvStd, outputMean, outputVar};
        for (int i = 0; i < paths.length; i++) {
            if (paths[i] == null) {
                continue;
            }
            Path p = paths[i].toAbsolutePath().normalize();
            Path dir = p.getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                throw new UserInputException(names[i] + " = " + paths[i] + ": directory " + dir + " does not exist");
            }
            if (Files.isDirectory(p)) {
                throw new UserInputException(names[i] + " = " + paths[i] + " is a directory: expected a file path");
            }
            if (outs.contains(p)) {
                throw new UserInputException(names[i] + " = " + paths[i] + " is also given for another output");
            }
            outs.add(p);
        }
    }

    private static HostTensor read(String option, Path file) {
        if (file == null) {
            return null;
        }
        try {
            return Npy.readTensor(file);
        } catch (UncheckedIOException e) {
            if (e.getCause() instanceof NoSuchFileException) {
                throw new UserInputException(option + ": cannot read " + file + ": no such file", e);
            }
            throw new UserInputException(option + ": " + e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new UserInputException(option + ": " + e.getMessage(), e);
        }
    }

    private static void stageIfWanted(NpyOutputs out, Path target, Tensor t, String option) {
        if (target == null) {
            return;
        }
        if (t == null) {
            throw new UserInputException(option + " has nothing to write for this operator");
        }
        out.stage(target, t.toHost());
    }
}
