package org.lightseg.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void parsesNestedValues() {
        Map<String, Object> o = Json.parseObject(
                "{\"a\": [1, 2.5e1, -3], \"b\": {\"c\": \"x\\\"\\u00e9\"}, \"d\": null, \"e\": true}");
        List<Object> a = Json.list(o, "a");
        assertEquals(3, a.size());
        assertEquals(25.0, (Double) a.get(1), 0);
        assertEquals(-3.0, (Double) a.get(2), 0);
        assertEquals("x\"\u00e9", Json.string(Json.object(o, "b"), "c", null));
        assertNull(o.get("d"));
        assertEquals(Boolean.TRUE, o.get("e"));
    }

    @Test
    public void writesWhatItReads() {
        String text = "{\"n\": 3, \"f\": 0.5, \"s\": \"a\\nb\", \"l\": [1, 2], \"z\": null}";
        assertEquals(text, Json.write(Json.parse(text)));
    }

    @Test(expected = IllegalArgumentException.class)
    public void refusesTrailingGarbage() {
        Json.parse("{} x");
    }

    @Test
    public void preprocessingFromManifestUsesDefaults() {
        Preprocessing p = Preprocessing.fromManifest(
                "{\"schema_version\": 1, \"preprocessing\": {\"size\": 64, \"channels\": 1}}");
        assertEquals(0f, p.windowLevel, 0);
        assertEquals(600f, p.windowWidth, 0);
        assertEquals(64, p.size);
        assertEquals(1, p.channels);
        assertEquals("pad", p.fit);
    }

    @Test
    public void preprocessingRefusesBadValues() {
        try {
            new Preprocessing(0, 600, 3, 64, "stretch");
            throw new AssertionError("accepted fit=stretch");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("fit"));
        }
        try {
            new Preprocessing(0, 600, 1, 4, "pad").window(new float[] {Float.NaN});
            throw new AssertionError("accepted NaN");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("NaN"));
        }
    }
}
