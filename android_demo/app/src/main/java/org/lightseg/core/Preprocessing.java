package org.lightseg.core;

import java.util.Map;

/**
 * The manifest's preprocessing, applied exactly as lightseg/data/preprocessing.py does: HU -> window
 * [level - width/2, level + width/2] -> [0, 1] (float32 arithmetic) -> centre pad/crop with 0 (or
 * bilinear resize, scipy.ndimage.zoom order 1) to size x size -> replicated to channels (CHW).
 */
public final class Preprocessing {
    public final float windowLevel;
    public final float windowWidth;
    public final int channels;
    public final int size;
    public final String fit;

    public Preprocessing(double windowLevel, double windowWidth, int channels, int size, String fit) {
        if (windowWidth <= 0 || channels < 1 || size < 1) {
            throw new IllegalArgumentException(
                    "preprocessing: window_width, channels and size must be positive");
        }
        if (!"pad".equals(fit) && !"resize".equals(fit)) {
            throw new IllegalArgumentException(
                    "preprocessing: fit must be 'pad' or 'resize', got '" + fit + "'");
        }
        this.windowLevel = (float) windowLevel;
        this.windowWidth = (float) windowWidth;
        this.channels = channels;
        this.size = size;
        this.fit = fit;
        lowF = (float) (windowLevel - windowWidth / 2.0);
    }

    private final float lowF;

    /** From the preprocessing object (defaults as in Python for absent fields). */
    public static Preprocessing fromJson(Map<String, Object> d) {
        return new Preprocessing(
                Json.number(d, "window_level", 0.0),
                Json.number(d, "window_width", 600.0),
                (int) Json.number(d, "channels", 3),
                (int) Json.number(d, "size", 256),
                Json.string(d, "fit", "pad"));
    }

    /** From a manifest.json (or pack.json) text: its "preprocessing" member. */
    public static Preprocessing fromManifest(String manifestJson) {
        return fromJson(Json.object(Json.parseObject(manifestJson), "preprocessing"));
    }

    /** HU -> [0, 1] with the window; NaN or Inf is refused. */
    public float[] window(float[] hu) {
        float[] out = new float[hu.length];
        for (int k = 0; k < hu.length; k++) {
            float v = hu[k];
            if (Float.isNaN(v) || Float.isInfinite(v)) {
                throw new IllegalArgumentException(
                        "preprocessing: image contains NaN or Inf values");
            }
            float y = (v - lowF) / windowWidth;
            out[k] = y < 0f ? 0f : (y > 1f ? 1f : y);
        }
        return out;
    }

    /** Where an h x w image lands in the size x size grid: {sy, sx, dy, dx, ch, cw} (pad). */
    public int[] padGeometry(int h, int w) {
        int s = size;
        return new int[] {
            Math.max(0, (h - s) / 2), Math.max(0, (w - s) / 2),
            Math.max(0, (s - h) / 2), Math.max(0, (s - w) / 2),
            Math.min(h, s), Math.min(w, s)
        };
    }

    /** Bring an h x w plane to size x size (centre pad/crop with 0, or bilinear resize). */
    public float[] fit2d(float[] a, int h, int w) {
        if (a.length != h * w) {
            throw new IllegalArgumentException(
                    "preprocessing: " + a.length + " values is not " + h + " x " + w);
        }
        int s = size;
        if ("resize".equals(fit)) {
            return (h == s && w == s) ? a.clone() : resize(a, h, w);
        }
        float[] out = new float[s * s];
        int[] g = padGeometry(h, w);
        for (int y = 0; y < g[4]; y++) {
            System.arraycopy(a, (g[0] + y) * w + g[1], out, (g[2] + y) * s + g[3], g[5]);
        }
        return out;
    }

    private float[] resize(float[] a, int h, int w) {
        int s = size;
        float[] out = new float[s * s];
        double zy = s > 1 ? (h - 1) / (double) (s - 1) : 0;
        double zx = s > 1 ? (w - 1) / (double) (s - 1) : 0;
        for (int oy = 0; oy < s; oy++) {
            double fy = oy * zy;
            int y0 = Math.min((int) Math.floor(fy), h - 1);
            int y1 = Math.min(y0 + 1, h - 1);
            double ty = fy - y0;
            for (int ox = 0; ox < s; ox++) {
                double fx = ox * zx;
                int x0 = Math.min((int) Math.floor(fx), w - 1);
                int x1 = Math.min(x0 + 1, w - 1);
                double tx = fx - x0;
                double top = a[y0 * w + x0] * (1 - tx) + a[y0 * w + x1] * tx;
                double bot = a[y1 * w + x0] * (1 - tx) + a[y1 * w + x1] * tx;
                out[oy * s + ox] = (float) (top * (1 - ty) + bot * ty);
            }
        }
        return out;
    }

    /** HU slice (h x w, row-major) -> model input (channels x size x size) float32. */
    public float[] apply(float[] hu, int h, int w) {
        float[] plane = fit2d(window(hu), h, w);
        int n = plane.length;
        float[] out = new float[channels * n];
        for (int c = 0; c < channels; c++) {
            System.arraycopy(plane, 0, out, c * n, n);
        }
        return out;
    }

    /** A size x size mask back on the original h x w grid (pad mode; cropped-away pixels 0). */
    public int[] maskToOriginal(int[] mask, int h, int w) {
        if (!"pad".equals(fit)) {
            throw new UnsupportedOperationException("maskToOriginal: only fit='pad' is invertible");
        }
        int s = size;
        int[] out = new int[h * w];
        int[] g = padGeometry(h, w);
        for (int y = 0; y < g[4]; y++) {
            System.arraycopy(mask, (g[2] + y) * s + g[3], out, (g[0] + y) * w + g[1], g[5]);
        }
        return out;
    }
}
