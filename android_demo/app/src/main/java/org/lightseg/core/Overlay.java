package org.lightseg.core;

/**
 * The demo picture: the windowed slice in grey with each non-background class blended in its
 * colour. Integer arithmetic only, so Python, Java and JavaScript give the same ARGB pixels:
 * grey g = floor(v * 255 + 0.5); blended channel = (g * (255 - A) + colour * A + 127) / 255.
 */
public final class Overlay {
    /** Class colours (RGB); class 0 (background) is never blended. Class 1 (lesion) is red. */
    public static final int[] PALETTE = {0x000000, 0xFF3030, 0x30FF30, 0x3080FF, 0xFFD030};

    /** Default blend strength (0..255). */
    public static final int ALPHA = 128;

    private Overlay() {}

    /** Opaque ARGB pixels (row-major) of grey values in [0, 1] and a label mask, same size. */
    public static int[] render(float[] grey, int[] mask, int alpha) {
        if (grey.length != mask.length) {
            throw new IllegalArgumentException("overlay: image and mask sizes differ");
        }
        if (alpha < 0 || alpha > 255) {
            throw new IllegalArgumentException("overlay: alpha must be 0..255");
        }
        int[] out = new int[grey.length];
        for (int p = 0; p < grey.length; p++) {
            float v = grey[p] < 0f ? 0f : (grey[p] > 1f ? 1f : grey[p]);
            int g = (int) Math.floor(v * 255f + 0.5f);
            int m = mask[p];
            if (m <= 0) {
                out[p] = 0xFF000000 | (g << 16) | (g << 8) | g;
                continue;
            }
            int c = PALETTE[1 + (m - 1) % (PALETTE.length - 1)];
            int r = blend(g, (c >> 16) & 0xFF, alpha);
            int gr = blend(g, (c >> 8) & 0xFF, alpha);
            int b = blend(g, c & 0xFF, alpha);
            out[p] = 0xFF000000 | (r << 16) | (gr << 8) | b;
        }
        return out;
    }

    private static int blend(int g, int c, int a) {
        return (g * (255 - a) + c * a + 127) / 255;
    }
}
