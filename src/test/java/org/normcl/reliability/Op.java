package org.normcl.reliability;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.normcl.BatchNorm;
import org.normcl.DeviceTensor;
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

/**
 * One operator call with its inputs, runnable on any engine with host inputs or with every input
 * uploaded to the engine first (device-resident path). Shared by the Oclgrind workload, the
 * concurrency stress test and the property tests.
 *
 * @param kind the operator
 * @param dims X's shape
 * @param axis layer / RMS axis
 * @param groups group-norm groups
 * @param perGroup group-norm per-group (opset 18) affine
 * @param epsilon the epsilon
 * @param pytorch batch-norm training: PyTorch momentum convention
 * @param axes MVN axes
 * @param x X
 * @param scale scale or null
 * @param bias bias or null
 * @param mean batch-norm running mean or null
 * @param var batch-norm running variance or null
 */
public record Op(Kind kind, long[] dims, int axis, int groups, boolean perGroup, double epsilon, boolean pytorch,
        int[] axes, float[] x, float[] scale, float[] bias, float[] mean, float[] var) {

    /** The operators. */
    public enum Kind {
        LAYER, RMS, GROUP, INSTANCE, BATCH_INFERENCE, BATCH_TRAINING, MVN
    }

    /** Every output of a call, downloaded; absent outputs are null. */
    public record Out(float[] y, float[] mean, float[] invStd, float[] runningMean, float[] runningVar) {
        /** @return the outputs in a fixed order, with their names */
        public List<Named> named() {
            List<Named> l = new ArrayList<>();
            l.add(new Named("Y", y));
            l.add(new Named("Mean", mean));
            l.add(new Named("InvStdDev", invStd));
            l.add(new Named("running_mean", runningMean));
            l.add(new Named("running_var", runningVar));
            return l;
        }

        /** @return whether every output is bitwise equal (NaN payloads included) to {@code o}'s */
        public boolean bitwiseEquals(Out o) {
            List<Named> a = named();
            List<Named> b = o.named();
            for (int i = 0; i < a.size(); i++) {
                if (!bitwise(a.get(i).data(), b.get(i).data())) {
                    return false;
                }
            }
            return true;
        }

        private static boolean bitwise(float[] a, float[] b) {
            if (a == null || b == null) {
                return a == b;
            }
            if (a.length != b.length) {
                return false;
            }
            for (int i = 0; i < a.length; i++) {
                if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                    return false;
                }
            }
            return true;
        }
    }

    /** A named output. */
    public record Named(String name, float[] data) {
    }

    // ------------------------------------------------------------------ factories

    public static Op layer(long[] dims, int axis, double eps, float[] x, float[] scale, float[] bias) {
        return new Op(Kind.LAYER, dims, axis, 0, false, eps, false, null, x, scale, bias, null, null);
    }

    public static Op rms(long[] dims, int axis, double eps, float[] x, float[] scale) {
        return new Op(Kind.RMS, dims, axis, 0, false, eps, false, null, x, scale, null, null, null);
    }

    public static Op group(long[] dims, int groups, boolean perGroup, double eps, float[] x, float[] scale,
            float[] bias) {
        return new Op(Kind.GROUP, dims, 0, groups, perGroup, eps, false, null, x, scale, bias, null, null);
    }

    public static Op instance(long[] dims, double eps, float[] x, float[] scale, float[] bias) {
        return new Op(Kind.INSTANCE, dims, 0, 0, false, eps, false, null, x, scale, bias, null, null);
    }

    public static Op batchInference(long[] dims, double eps, float[] x, float[] scale, float[] bias, float[] mean,
            float[] var) {
        return new Op(Kind.BATCH_INFERENCE, dims, 0, 0, false, eps, false, null, x, scale, bias, mean, var);
    }

    public static Op batchTraining(long[] dims, double eps, boolean pytorch, float[] x, float[] scale, float[] bias,
            float[] mean, float[] var) {
        return new Op(Kind.BATCH_TRAINING, dims, 0, 0, false, eps, pytorch, null, x, scale, bias, mean, var);
    }

    public static Op mvn(long[] dims, int[] axes, double eps, float[] x) {
        return new Op(Kind.MVN, dims, 0, 0, false, eps, false, axes, x, null, null, null, null);
    }

    // ------------------------------------------------------------------ running

    /** @return the shape of the affine inputs (scale, bias) */
    public long[] affineDims() {
        switch (kind) {
            case LAYER:
            case RMS: {
                int a = axis < 0 ? axis + dims.length : axis;
                return Arrays.copyOfRange(dims, a, dims.length);
            }
            case GROUP:
                return new long[] {perGroup ? groups : dims[1]};
            case MVN:
                return new long[0]; // no affine inputs
            default:
                return new long[] {dims[1]};
        }
    }

    /**
     * Runs the call and downloads every output.
     *
     * @param engine the engine
     * @param device true to upload every input first (outputs then stay on the device until read)
     * @return the outputs
     */
    public Out run(NormEngine engine, boolean device) {
        return run(engine, device, Map.of());
    }

    /**
     * Like {@link #run(NormEngine, boolean)}, but an input whose array is a key of {@code shared}
     * (by identity) is passed as that device tensor, which is neither uploaded nor closed here: a
     * tensor that several threads use at once.
     */
    public Out run(NormEngine engine, boolean device, Map<float[], DeviceTensor> shared) {
        List<DeviceTensor> uploaded = new ArrayList<>();
        try {
            Tensor tx = tensor(engine, device, x, dims, uploaded, shared);
            long[] ad = affineDims();
            long[] cd = kind == Kind.LAYER || kind == Kind.RMS ? ad : new long[] {dims.length > 1 ? dims[1] : 0};
            Tensor ts = tensor(engine, device, scale, ad, uploaded, shared);
            Tensor tb = tensor(engine, device, bias, ad, uploaded, shared);
            Tensor tm = tensor(engine, device, mean, cd, uploaded, shared);
            Tensor tv = tensor(engine, device, var, cd, uploaded, shared);
            try (NormResult r = call(engine, tx, ts, tb, tm, tv)) {
                return new Out(host(r.y()), host(r.mean()), host(r.invStdDev()), host(r.runningMean()),
                        host(r.runningVar()));
            }
        } finally {
            uploaded.forEach(DeviceTensor::close);
        }
    }

    private NormResult call(NormEngine e, Tensor tx, Tensor ts, Tensor tb, Tensor tm, Tensor tv) {
        switch (kind) {
            case LAYER:
                return e.layerNorm(LayerNorm.defaults().withAxis(axis).withEpsilon(epsilon), tx, ts, tb);
            case RMS:
                return e.rmsNorm(RmsNorm.defaults().withAxis(axis).withEpsilon(epsilon), tx, ts);
            case GROUP:
                return e.groupNorm(GroupNorm.of(groups).withEpsilon(epsilon)
                        .withAffine(perGroup ? GroupNorm.Affine.PER_GROUP : GroupNorm.Affine.PER_CHANNEL), tx, ts, tb);
            case INSTANCE:
                return e.instanceNorm(InstanceNorm.defaults().withEpsilon(epsilon), tx, ts, tb);
            case BATCH_INFERENCE:
                return e.batchNorm(BatchNorm.defaults().withEpsilon(epsilon), tx, ts, tb, tm, tv);
            case BATCH_TRAINING:
                return e.batchNorm(BatchNorm.defaults().withEpsilon(epsilon).withTraining(true)
                        .withConvention(pytorch ? MomentumConvention.PYTORCH : MomentumConvention.ONNX), tx, ts, tb, tm,
                        tv);
            case MVN:
                return e.meanVarianceNorm(MeanVarianceNorm.defaults().withAxes(axes).withEpsilon(epsilon), tx);
            default:
                throw new IllegalStateException(kind.toString());
        }
    }

    private static Tensor tensor(NormEngine e, boolean device, float[] data, long[] dims, List<DeviceTensor> uploaded,
            Map<float[], DeviceTensor> shared) {
        if (data == null) {
            return null;
        }
        DeviceTensor s = shared.get(data);
        if (s != null) {
            return s;
        }
        HostTensor h = HostTensor.of(data, dims);
        if (!device) {
            return h;
        }
        DeviceTensor d = e.upload(h);
        uploaded.add(d);
        return d;
    }

    private static float[] host(Tensor t) {
        return t == null ? null : t.toHost().data().clone();
    }

    /** @return the number of elements of X */
    public int size() {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return Math.toIntExact(n);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(kind.toString().toLowerCase()).append(Arrays.toString(dims));
        switch (kind) {
            case LAYER:
            case RMS:
                sb.append(" axis=").append(axis);
                break;
            case GROUP:
                sb.append(" G=").append(groups).append(perGroup ? " per-group" : "");
                break;
            case BATCH_TRAINING:
                sb.append(pytorch ? " pytorch" : " onnx");
                break;
            case MVN:
                sb.append(" axes=").append(Arrays.toString(axes));
                break;
            default:
                break;
        }
        sb.append(" eps=").append((float) epsilon);
        sb.append(scale != null ? " +scale" : "").append(bias != null ? " +bias" : "");
        sb.append(mean != null ? " +running" : "");
        return sb.toString();
    }
}
