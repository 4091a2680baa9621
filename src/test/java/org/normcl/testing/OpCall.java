package org.normcl.testing;

import java.util.Map;

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

/**
 * An operator call described the way test-data cases describe it: an op name
 * ({@code layer-norm}, {@code rms-norm}, {@code batch-norm}, {@code group-norm},
 * {@code instance-norm}, {@code mvn}), attributes and named inputs ({@code X}, {@code scale},
 * {@code bias}, {@code mean}, {@code var}).
 *
 * @param op the operator
 * @param axis layer/rms axis
 * @param epsilon epsilon (NaN: the operator's default)
 * @param groups group-norm groups
 * @param perGroupAffine group-norm opset-18 affine
 * @param training batch-norm mode
 * @param momentum batch-norm momentum (NaN: default)
 * @param pytorch batch-norm convention
 * @param axes mvn axes (null: default)
 * @param inputs named inputs
 */
public record OpCall(String op, int axis, double epsilon, int groups, boolean perGroupAffine, boolean training,
        double momentum, boolean pytorch, int[] axes, Map<String, HostTensor> inputs) {

    /** Runs the call on an engine. */
    public NormResult run(NormEngine e) {
        HostTensor x = inputs.get("X");
        HostTensor scale = inputs.get("scale");
        HostTensor bias = inputs.get("bias");
        boolean eps = !Double.isNaN(epsilon);
        switch (op) {
            case "layer-norm": {
                LayerNorm s = LayerNorm.defaults().withAxis(axis);
                return e.layerNorm(eps ? s.withEpsilon(epsilon) : s, x, scale, bias);
            }
            case "rms-norm": {
                RmsNorm s = RmsNorm.defaults().withAxis(axis);
                return e.rmsNorm(eps ? s.withEpsilon(epsilon) : s, x, scale);
            }
            case "group-norm": {
                GroupNorm s = GroupNorm.of(groups)
                        .withAffine(perGroupAffine ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL);
                return e.groupNorm(eps ? s.withEpsilon(epsilon) : s, x, scale, bias);
            }
            case "instance-norm": {
                InstanceNorm s = InstanceNorm.defaults();
                return e.instanceNorm(eps ? s.withEpsilon(epsilon) : s, x, scale, bias);
            }
            case "batch-norm": {
                BatchNorm s = BatchNorm.defaults().withTraining(training)
                        .withConvention(pytorch ? MomentumConvention.PYTORCH : MomentumConvention.ONNX);
                s = eps ? s.withEpsilon(epsilon) : s;
                s = Double.isNaN(momentum) ? s : s.withMomentum(momentum);
                return e.batchNorm(s, x, scale, bias, inputs.get("mean"), inputs.get("var"));
            }
            case "mvn": {
                MeanVarianceNorm s = MeanVarianceNorm.defaults();
                s = axes == null ? s : s.withAxes(axes);
                return e.meanVarianceNorm(eps ? s.withEpsilon(epsilon) : s, x);
            }
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
    }
}
