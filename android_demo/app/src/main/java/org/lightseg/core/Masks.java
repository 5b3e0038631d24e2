package org.lightseg.core;

/**
 * Logits (K x H x W, one image) -> probabilities and a label mask, with the harness's rule:
 * K >= 2: argmax over classes (ties go to the lowest index, as numpy.argmax); K == 1: logit > 0
 * (probability > 0.5).
 */
public final class Masks {
    private Masks() {}

    /** Label mask (H*W) of one image's logits laid out K x H x W. */
    public static int[] argmax(float[] logits, int k, int hw) {
        check(logits, k, hw);
        int[] mask = new int[hw];
        if (k == 1) {
            for (int p = 0; p < hw; p++) {
                mask[p] = logits[p] > 0f ? 1 : 0;
            }
            return mask;
        }
        for (int p = 0; p < hw; p++) {
            float best = logits[p];
            int arg = 0;
            for (int c = 1; c < k; c++) {
                float v = logits[c * hw + p];
                if (v > best || (Float.isNaN(v) && !Float.isNaN(best))) {
                    best = v;
                    arg = c;
                }
            }
            mask[p] = arg;
        }
        return mask;
    }

    /** Softmax over classes (sigmoid when K == 1), same K x H x W layout, float32. */
    public static float[] probabilities(float[] logits, int k, int hw) {
        check(logits, k, hw);
        float[] out = new float[logits.length];
        if (k == 1) {
            for (int p = 0; p < hw; p++) {
                out[p] = (float) (1.0 / (1.0 + Math.exp(-logits[p])));
            }
            return out;
        }
        for (int p = 0; p < hw; p++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < k; c++) {
                max = Math.max(max, logits[c * hw + p]);
            }
            double sum = 0;
            for (int c = 0; c < k; c++) {
                sum += Math.exp(logits[c * hw + p] - max);
            }
            for (int c = 0; c < k; c++) {
                out[c * hw + p] = (float) (Math.exp(logits[c * hw + p] - max) / sum);
            }
        }
        return out;
    }

    /** Number of pixels labelled {@code cls}. */
    public static int count(int[] mask, int cls) {
        int n = 0;
        for (int v : mask) {
            if (v == cls) {
                n++;
            }
        }
        return n;
    }

    private static void check(float[] logits, int k, int hw) {
        if (k < 1 || logits.length != k * hw) {
            throw new IllegalArgumentException(
                    "masks: " + logits.length + " logits is not " + k + " x " + hw);
        }
    }
}
