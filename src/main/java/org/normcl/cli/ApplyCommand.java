package org.normcl.cli;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;

import org.normcl.NormEngine;
import org.normcl.NormResult;
import org.normcl.Tensor;
import org.normcl.cli.OperatorOptions.Op;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code normcl apply OP}: runs one operator on {@code .npy} files of any supported element type
 * (see {@link OperatorOptions}), writing Y in X's type. The options and exit codes are
 * a contract scripts rely on; every output is written to a temporary file and renamed into place
 * only when all outputs are ready, so a failure leaves no output file behind.
 */
@Command(name = "apply", sortOptions = false, mixinStandardHelpOptions = true,
        description = {"Run a normalization on .npy files (C order).",
            "OP: layer-norm, rms-norm, batch-norm, group-norm, instance-norm, mvn.",
            "X: float32 (<f4), float16 (<f2), float64 (<f8) or, with --bf16, bfloat16 (<u2); parameters float32 or"
                    + " X's type. Y is written in X's type, saved statistics in float32 (float64 for float64 X),"
                    + " running statistics in the parameters' type.",
            "Exit 0 on success, 2 on bad usage or input, 1 on a runtime failure; no output file is left behind"
                    + " on failure."})
final class ApplyCommand implements Callable<Integer> {

    @Mixin
    OperatorOptions op;

    @Option(names = "--output", required = true, paramLabel = "Y.npy", description = "Output tensor Y.")
    Path output;

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

    @Override
    public Integer call() {
        Op which = op.op();
        op.check(which, !op.training);
        OperatorOptions.onlyFor(which, outputMean != null, "--output-mean", Op.BATCH_NORM);
        OperatorOptions.onlyFor(which, outputVar != null, "--output-var", Op.BATCH_NORM);
        OperatorOptions.onlyFor(which, saveMean != null, "--save-mean", Op.LAYER_NORM, Op.BATCH_NORM, Op.GROUP_NORM,
                Op.INSTANCE_NORM, Op.MVN);
        if (which == Op.BATCH_NORM) {
            // --momentum and --convention say how training updates the running statistics: inference
            // would ignore them, so they are rejected rather than silently dropped.
            if (!op.training && (outputMean != null || outputVar != null || op.momentum != null
                    || op.convention != null)) {
                throw new UserInputException((outputMean != null ? "--output-mean" : outputVar != null
                        ? "--output-var" : op.momentum != null ? "--momentum" : "--convention")
                        + " applies only with --training (inference does not update the running statistics)");
            }
            if (op.training && (outputMean != null || outputVar != null) && op.mean == null) {
                throw new UserInputException("--output-mean/--output-var need the running statistics to update:"
                        + " expected --mean M.npy --var V.npy");
            }
        }
        OperatorOptions.checkOutputPaths(
                new String[] {"--output", "--save-mean", "--save-inv-std", "--output-mean", "--output-var"},
                new Path[] {output, saveMean, saveInvStd, outputMean, outputVar});
        OperatorOptions.Inputs in = op.read();
        try (NormEngine engine = op.backend.createEngine(); NormResult r = run(engine, which, in)) {
            OperatorOptions.writeAll(Arrays.asList(
                    OperatorOptions.OutputFile.of("--output", output, r.y().toHost()),
                    wanted("--save-mean", saveMean, r.mean()),
                    wanted("--save-inv-std", saveInvStd, r.invStdDev()),
                    wanted("--output-mean", outputMean, r.runningMean()),
                    wanted("--output-var", outputVar, r.runningVar())));
        }
        return ExitCodes.OK;
    }

    private NormResult run(NormEngine engine, Op which, OperatorOptions.Inputs in) {
        try {
            switch (which) {
                case LAYER_NORM:
                    return engine.layerNorm(op.layerNorm(), in.x(), in.scale(), in.bias());
                case RMS_NORM:
                    return engine.rmsNorm(op.rmsNorm(), in.x(), in.scale());
                case GROUP_NORM:
                    return engine.groupNorm(op.groupNorm(), in.x(), in.scale(), in.bias());
                case INSTANCE_NORM:
                    return engine.instanceNorm(op.instanceNorm(), in.x(), in.scale(), in.bias());
                case MVN:
                    return engine.meanVarianceNorm(op.meanVarianceNorm(), in.x());
                case BATCH_NORM:
                default:
                    return engine.batchNorm(op.batchNorm(), in.x(), in.scale(), in.bias(), in.mean(), in.var());
            }
        } catch (IllegalArgumentException e) {
            String message = CliNames.translate(e.getMessage());
            if (which == Op.MVN && op.axes == null && message.startsWith("--axes")) {
                // The user gave no --axes: say that the default is what does not fit.
                message = "--axes not given: its default 0,2,3 (N, H, W of an (N, C, H, W) input) does not fit"
                        + " --input: " + message.substring("--".length()) + "; give --axes (for example --axes -1"
                        + " for the last axis)";
            }
            throw new UserInputException(message, e);
        }
    }

    /** @return {@code t} to write at {@code target} for {@code option}, or null when not asked for */
    static OperatorOptions.OutputFile wanted(String option, Path target, Tensor t) {
        if (target == null) {
            return null;
        }
        if (t == null) {
            throw new UserInputException(option + " has nothing to write for this operator");
        }
        return OperatorOptions.OutputFile.of(option, target, t.toHost());
    }
}
