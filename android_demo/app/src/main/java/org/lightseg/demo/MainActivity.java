package org.lightseg.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Bitmap;
import android.os.Build;
import android.os.Bundle;
import android.widget.ImageView;
import android.widget.TextView;
import java.io.File;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import org.lightseg.core.Json;
import org.lightseg.core.Masks;
import org.lightseg.core.Overlay;
import org.lightseg.core.Pack;
import org.lightseg.core.Preprocessing;
import org.lightseg.core.Stats;

/**
 * Demo mode (default): the bundled int8 .ort model on the bundled phantom slice, the lesion mask
 * drawn over the slice and p50 latency over N runs. Benchmark mode ({@code --es pack DIR}): runs
 * the pack's .ort artifact on the pack's inputs and writes outputs.f32 + timings.json beside them.
 *
 * <pre>
 * adb shell am start -n org.lightseg.demo/.MainActivity --es ep xnnpack --ei runs 50
 * adb shell am start -n org.lightseg.demo/.MainActivity --es pack pack --es ep nnapi
 * </pre>
 */
public class MainActivity extends Activity {
    private static final int WARMUP = 5;

    private ImageView image;
    private TextView status;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        image = (ImageView) findViewById(R.id.image);
        status = (TextView) findViewById(R.id.status);
        Intent intent = getIntent();
        final String ep = orDefault(intent.getStringExtra("ep"), "xnnpack");
        final int runs = intent.getIntExtra("runs", 20);
        final int threads = intent.getIntExtra("threads", 2);
        final String pack = intent.getStringExtra("pack");
        show("running on " + ep + " ...");
        new Thread(new Runnable() {
            @Override
            public void run() {
                try {
                    if (pack != null) {
                        benchmark(new File(getExternalFilesDir(null), pack), ep, runs, threads);
                    } else {
                        demo(ep, runs, threads);
                    }
                } catch (Exception e) {
                    show("error: " + e.getMessage());
                }
            }
        }).start();
    }

    /** The bundled model and sample slice (assets written by android_demo/make_assets.py). */
    private void demo(String ep, int runs, int threads) throws Exception {
        Map<String, Object> demo = Json.parseObject(asset("demo.json"));
        String manifest = asset("manifest.json");
        Preprocessing pre = Preprocessing.fromManifest(manifest);
        byte[] model = Pack.readAll(getAssets().open("model.ort"));
        String sha = Pack.sha256(getAssets().open("model.ort"));
        if (!sha.equals(Json.string(demo, "sha256", ""))) {
            throw new IOException("model.ort sha256 " + sha.substring(0, 12)
                    + " does not match the manifest: re-run make_assets.py");
        }
        int h = (int) Json.number(demo, "height", 0);
        int w = (int) Json.number(demo, "width", 0);
        float[] hu = Pack.decode(Pack.readAll(getAssets().open("sample_hu.f32")));
        float[] x = pre.apply(hu, h, w);
        long[] shape = {1, pre.channels, pre.size, pre.size};
        Segmenter seg = new Segmenter(model, ep, threads);
        try {
            float[] logits = seg.run(x, shape);
            double[] ms = time(seg, x, shape, runs);
            int hw = pre.size * pre.size;
            int[] mask = Masks.argmax(logits, Segmenter.classes(logits.length, hw), hw);
            float[] grey = new float[hw];
            System.arraycopy(x, 0, grey, 0, hw);
            final Bitmap bmp = Bitmap.createBitmap(Overlay.render(grey, mask, Overlay.ALPHA),
                    pre.size, pre.size, Bitmap.Config.ARGB_8888);
            runOnUiThread(new Runnable() {
                @Override
                public void run() {
                    image.setImageBitmap(bmp);
                }
            });
            show(String.format(Locale.US,
                    "%s (%s) on %s, %d threads\nload %.1f ms, p50 %.2f ms, p90 %.2f ms over %d runs"
                            + "\nlesion pixels: %d of %d",
                    Json.string(demo, "artifact", "?"), Json.string(demo, "sample", "?"), ep,
                    threads, seg.loadMs, Stats.percentile(ms, 50), Stats.percentile(ms, 90), runs,
                    Masks.count(mask, 1), hw));
        } finally {
            seg.close();
        }
    }

    /** Device side of the parity protocol: the pack's .ort on the pack's inputs. */
    private void benchmark(File dir, String ep, int runs, int threads) throws Exception {
        Pack pack = Pack.open(dir);
        Map<String, Object> art = pack.ortArtifact();
        if (art == null) {
            throw new IOException(dir + ": the pack holds no .ort artifact");
        }
        File model = pack.verifiedFile(art);
        float[] inputs = pack.readInputs();
        int n = (int) pack.shape[0];
        int per = pack.imageSize();
        long[] one = {1, pack.shape[1], pack.shape[2], pack.shape[3]};
        Segmenter seg = new Segmenter(Pack.readBytes(model), ep, threads);
        try {
            float[] x0 = new float[per];
            float[] all = null;
            for (int i = 0; i < n; i++) {
                float[] xi = new float[per];
                System.arraycopy(inputs, i * per, xi, 0, per);
                float[] y = seg.run(xi, one);
                if (all == null) {
                    all = new float[n * y.length];
                }
                System.arraycopy(y, 0, all, i * y.length, y.length);
            }
            System.arraycopy(inputs, 0, x0, 0, per);
            double[] ms = time(seg, x0, one, runs);
            pack.writeOutputs(all);
            Map<String, Object> versions = new LinkedHashMap<String, Object>();
            versions.put("android", Build.VERSION.RELEASE);
            versions.put("sdk", (double) Build.VERSION.SDK_INT);
            versions.put("provider", ep);
            versions.put("threads", (double) threads);
            String device = Build.MANUFACTURER + " " + Build.MODEL + " (" + Build.HARDWARE + ")";
            String name = Json.string(art, "name", "ort");
            pack.writeTimings("ort-mobile", device, name, ms, seg.loadMs, versions);
            show(String.format(Locale.US, "pack %s: %d images, %s on %s\np50 %.2f ms over %d runs"
                    + "\nwrote %s and %s", dir, n, name, ep, Stats.percentile(ms, 50), runs,
                    Pack.OUTPUTS, Pack.TIMINGS));
        } finally {
            seg.close();
        }
    }

    /** Latency (ms) of {@code runs} runs after {@link #WARMUP} warm-up runs. */
    private static double[] time(Segmenter seg, float[] x, long[] shape, int runs)
            throws Exception {
        for (int i = 0; i < WARMUP; i++) {
            seg.run(x, shape);
        }
        double[] ms = new double[runs];
        for (int i = 0; i < runs; i++) {
            long t0 = System.nanoTime();
            seg.run(x, shape);
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return ms;
    }

    private String asset(String name) throws IOException {
        return new String(Pack.readAll(getAssets().open(name)), "UTF-8");
    }

    private void show(final String text) {
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                status.setText(text);
            }
        });
    }

    private static String orDefault(String s, String d) {
        return s == null ? d : s;
    }
}
