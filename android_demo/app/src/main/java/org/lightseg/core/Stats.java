package org.lightseg.core;

import java.util.Arrays;

/** Latency summaries as numpy computes them (linear interpolation between order statistics). */
public final class Stats {
    private Stats() {}

    /** The q-th percentile (0..100) of {@code values}; NaN when empty. */
    public static double percentile(double[] values, double q) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] v = values.clone();
        Arrays.sort(v);
        double pos = q / 100.0 * (v.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, v.length - 1);
        return v[lo] + (v[hi] - v[lo]) * (pos - lo);
    }
}
