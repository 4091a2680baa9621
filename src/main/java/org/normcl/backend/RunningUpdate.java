package org.normcl.backend;

/**
 * How running statistics are updated from batch statistics, in one form for every convention:
 * <pre>
 *   running_mean' = running_mean * (1 - batchWeight) + batch_mean * batchWeight
 *   running_var'  = running_var  * (1 - batchWeight) + v * batchWeight
 *   v = unbiased ? M2 / (n - 1) : M2 / n
 * </pre>
 *
 * @param batchWeight the weight of the new batch statistic
 * @param unbiased whether the running variance takes the unbiased estimate
 */
public record RunningUpdate(float batchWeight, boolean unbiased) {
}
