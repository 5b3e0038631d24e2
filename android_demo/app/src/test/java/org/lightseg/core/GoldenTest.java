package org.lightseg.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.Before;
import org.junit.Test;

/**
 * The Java pre/post-processing against golden vectors written by the Python pipeline
 * (tests/demos/test_android_java.py passes -Dlightseg.golden=DIR). Skipped without that folder.
 */
public class GoldenTest {
    private File dir;
    private List<Object> cases;

    @Before
    public void load() throws IOException {
        String p = System.getProperty("lightseg.golden");
        assumeTrue("no -Dlightseg.golden folder", p != null && new File(p, "cases.json").isFile());
        dir = new File(p);
        cases = Json.list(Json.parseObject(Pack.readText(new File(dir, "cases.json"))), "cases");
        assertTrue("no cases", !cases.isEmpty());
    }

    private float[] floats(Map<String, Object> c, String key) throws IOException {
        return Pack.decode(Pack.readBytes(new File(dir, Json.string(c, key, null))));
    }

    private int[] ints(Map<String, Object> c, String key) throws IOException {
        byte[] b = Pack.readBytes(new File(dir, Json.string(c, key, null)));
        int[] out = new int[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> m(Object o) {
        return (Map<String, Object>) o;
    }

    @Test
    public void preprocessingGivesThePythonTensor() throws IOException {
        for (Object o : cases) {
            Map<String, Object> c = m(o);
            Preprocessing pre = Preprocessing.fromJson(Json.object(c, "preprocessing"));
            int h = (int) Json.number(c, "h", 0);
            int w = (int) Json.number(c, "w", 0);
            float[] got = pre.apply(floats(c, "hu"), h, w);
            float[] want = floats(c, "tensor");
            float tol = (float) Json.number(c, "tensor_atol", 0);
            assertEquals(c.get("name") + ": length", want.length, got.length);
            assertArrayEquals(c.get("name") + ": tensor", want, got, tol);
        }
    }

    @Test
    public void logitsGiveThePythonMaskAndProbabilities() throws IOException {
        for (Object o : cases) {
            Map<String, Object> c = m(o);
            int k = (int) Json.number(c, "k", 0);
            float[] logits = floats(c, "logits");
            int hw = logits.length / k;
            assertArrayEquals(c.get("name") + ": mask", ints(c, "mask"), Masks.argmax(logits, k, hw));
            assertArrayEquals(c.get("name") + ": probabilities", floats(c, "probs"),
                    Masks.probabilities(logits, k, hw), 1e-6f);
        }
    }

    @Test
    public void overlayGivesThePythonPixels() throws IOException {
        for (Object o : cases) {
            Map<String, Object> c = m(o);
            float[] tensor = floats(c, "tensor");
            int[] mask = ints(c, "mask");
            float[] grey = new float[mask.length];
            System.arraycopy(tensor, 0, grey, 0, mask.length);
            assertArrayEquals(c.get("name") + ": overlay", ints(c, "overlay"),
                    Overlay.render(grey, mask, Overlay.ALPHA));
        }
    }

    @Test
    public void maskGoesBackToTheOriginalGrid() throws IOException {
        for (Object o : cases) {
            Map<String, Object> c = m(o);
            if (!c.containsKey("mask_original")) {
                continue;
            }
            Preprocessing pre = Preprocessing.fromJson(Json.object(c, "preprocessing"));
            int h = (int) Json.number(c, "h", 0);
            int w = (int) Json.number(c, "w", 0);
            assertArrayEquals(c.get("name") + ": mask on original grid", ints(c, "mask_original"),
                    pre.maskToOriginal(ints(c, "mask"), h, w));
        }
    }

    @Test
    public void percentileMatchesNumpy() throws IOException {
        Map<String, Object> s = Json.object(
                Json.parseObject(Pack.readText(new File(dir, "cases.json"))), "percentile");
        List<Object> values = Json.list(s, "values");
        double[] v = new double[values.size()];
        for (int k = 0; k < v.length; k++) {
            v[k] = (Double) values.get(k);
        }
        assertEquals(Json.number(s, "p50", 0), Stats.percentile(v, 50), 1e-12);
        assertEquals(Json.number(s, "p90", 0), Stats.percentile(v, 90), 1e-12);
    }

    /** Device side of the pack protocol: read inputs, write the golden logits and timings back. */
    @Test
    public void packRoundTrip() throws IOException {
        File packDir = new File(dir, "pack");
        assumeTrue("no pack in the golden folder", new File(packDir, Pack.PACK_JSON).isFile());
        Pack pack = Pack.open(packDir);
        float[] inputs = pack.readInputs();
        Map<String, Object> c = m(cases.get(0));
        assertArrayEquals("pack inputs", floats(c, "tensor"), inputs, 0f);
        assertEquals(pack.preprocessing.size, pack.shape[2]);
        Map<String, Object> art = pack.ortArtifact();
        assertEquals("ort-int8", art.get("name"));
        File model = pack.verifiedFile(art);
        assertEquals("ort-int8", pack.artifactWithSha(Pack.sha256(new java.io.FileInputStream(model))));
        pack.writeOutputs(floats(c, "logits"));
        Map<String, Object> versions = new java.util.LinkedHashMap<String, Object>();
        versions.put("java", "junit");
        pack.writeTimings("ort-mobile", "junit", "ort-int8", new double[] {1.5, 2.25}, 12.0,
                versions);
    }

    /** A modified model file is refused (sha256 differs from the pack's manifest). */
    @Test(expected = IOException.class)
    public void packRefusesAModifiedArtifact() throws IOException {
        File packDir = new File(dir, "pack");
        assumeTrue("no pack in the golden folder", new File(packDir, Pack.PACK_JSON).isFile());
        Pack pack = Pack.open(packDir);
        for (Map<String, Object> a : pack.artifacts()) {
            if ("ort-fp32".equals(a.get("name"))) {
                pack.verifiedFile(a);
            }
        }
    }
}
