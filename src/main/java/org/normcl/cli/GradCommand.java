package org.normcl.cli;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;

import org.normcl.GradResult;
import org.normcl.HostTensor;
import org.normcl.NormEngine;
import org.normcl.SavedStats;
import org.normcl.cli.OperatorOptions.Op;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code normcl grad OP}: the backward pass of an operator on {@code .npy} files: dX, and
 * optionally dScale and dBias, from dY. Same inputs, element types, exit codes and
 * no-partial-output rule as {@code apply}; dY has X's type, dX is written in it, dScale and dBias
 * in the parameters' type, and the saved statistics are those {@code apply --save-mean
 * --save-inv-std} wrote (float32, float64 for float64 X). For batch-norm, {@code --training} takes
 * the gradient through the batch statistics; without it the running statistics ({@code --mean},
 * {@code --var}) are constants.
 */
@Command(name = "grad", sortOptions = false, mixinStandardHelpOptions = true,
        description = {"Backward pass of a normalization on .npy files: dX (and dScale, dBias) from dY.",
            "OP: layer-norm, rms-norm, batch-norm, group-norm, instance-norm.",
            "X and dY: float32 (<f4), float16 (<f2), float64 (<f8) or, with --bf16, bfloat16 (<u2); dX is written in"
                    + " X's type, dScale and dBias in the scale's type (float32 or X's type).",
            "Exit 0 on success, 2 on bad usage or input, 1 on a runtime failure; no output file is left behind"
                    + " on failure."})
final class GradCommand implements Callable<Integer> {

    @Mixin
    OperatorOptions op;

    @Option(names = "--grad-output", required = true, paramLabel = "DY.npy",
            description = "The gradient of the loss with respect to Y (shaped as X).")
    Path gradOutput;

    @Option(names = "--saved-mean", paramLabel = "F.npy",
            description = "The forward's mean (from apply --save-mean); recomputed when absent.")
    Path savedMean;

    @Option(names = "--saved-inv-std", paramLabel = "F.npy",
            description = "The forward's inverse standard deviation (apply --save-inv-std); recomputed when absent.")
    Path savedInvStd;

    @Option(names = "--output-grad-input", required = true, paramLabel = "DX.npy", description = "dL/dX.")
    Path outputGradInput;

    @Option(names = "--output-grad-scale", paramLabel = "DW.npy", description = "dL/dScale.")
    Path outputGradScale;

    @Option(names = "--output-grad-bias", paramLabel = "DB.npy", description = "dL/dBias (not for rms-norm).")
    Path outputGradBias;

    @Override
    public Integer call() {
        Op which = op.op();
        if (which == Op.MVN) {
            throw new UserInputException("grad is not available for mvn: expected layer-norm, rms-norm, batch-norm,"
                    + " group-norm or instance-norm");
        }
        op.check(which, !op.training);
        if (op.momentum != null || op.convention != null) {
            throw new UserInputException((op.momentum != null ? "--momentum" : "--convention")
                    + " does not apply to grad: the running-statistic update has no gradient");
        }
        OperatorOptions.onlyFor(which, outputGradBias != null, "--output-grad-bias", Op.LAYER_NORM, Op.BATCH_NORM,
                Op.GROUP_NORM, Op.INSTANCE_NORM);
        OperatorOptions.onlyFor(which, savedMean != null, "--saved-mean", Op.LAYER_NORM, Op.BATCH_NORM,
                Op.GROUP_NORM, Op.INSTANCE_NORM);
        if (which == Op.BATCH_NORM && !op.training && (savedMean != null || savedInvStd != null)) {
            throw new UserInputException((savedMean != null ? "--saved-mean" : "--saved-inv-std")
                    + " applies to batch-norm only with --training: inference uses --mean and --var");
        }
        if (which != Op.RMS_NORM && (savedMean == null) != (savedInvStd == null)) {
            throw new UserInputException((savedMean == null ? "--saved-mean" : "--saved-inv-std")
                    + " is missing: --saved-mean and --saved-inv-std are given together");
        }
        OperatorOptions.checkOutputPaths(
                new String[] {"--output-grad-input", "--output-grad-scale", "--output-grad-bias"},
                new Path[] {outputGradInput, outputGradScale, outputGradBias});
        OperatorOptions.Inputs in = op.read();
        HostTensor dy = op.readData("--grad-output", gradOutput);
        HostTensor sm = op.read("--saved-mean", savedMean);
        HostTensor si = op.read("--saved-inv-std", savedInvStd);
        SavedStats saved = si == null ? null : new SavedStats(sm, si);
        try (NormEngine engine = op.backend.createEngine(); GradResult g = run(engine, which, in, dy, saved)) {
            OperatorOptions.writeAll(Arrays.asList(
                    OperatorOptions.OutputFile.of("--output-grad-input", outputGradInput, g.dx().toHost()),
                    ApplyCommand.wanted("--output-grad-scale", outputGradScale, g.dScale()),
                    ApplyCommand.wanted("--output-grad-bias", outputGradBias, g.dBias())));
        }
        return ExitCodes.OK;
    }

    private GradResult run(NormEngine engine, Op which, OperatorOptions.Inputs in, HostTensor dy, SavedStats saved) {
        try {
            switch (which) {
                case LAYER_NORM:
                    return engine.layerNormBackward(op.layerNorm(), dy, in.x(), in.scale(), saved);
                case RMS_NORM:
                    return engine.rmsNormBackward(op.rmsNorm(), dy, in.x(), in.scale(), saved);
                case GROUP_NORM:
                    return engine.groupNormBackward(op.groupNorm(), dy, in.x(), in.scale(), saved);
                case INSTANCE_NORM:
                    return engine.instanceNormBackward(op.instanceNorm(), dy, in.x(), in.scale(), saved);
                case BATCH_NORM:
                default:
                    return engine.batchNormBackward(op.batchNorm(), dy, in.x(), in.scale(), in.mean(), in.var(), saved);
            }
        } catch (IllegalArgumentException e) {
            throw new UserInputException(CliNames.translate(e.getMessage()), e);
        }
    }
}
