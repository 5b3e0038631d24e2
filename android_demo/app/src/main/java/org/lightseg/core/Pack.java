package org.lightseg.core;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The device side of the parity pack protocol. A pack folder holds {@code pack.json}
 * (schema_version, a copy of the manifest, preprocessing, input shape [N, C, H, W]) and
 * {@code inputs.f32} (raw little-endian float32, N*C*H*W). The device writes {@code outputs.f32}
 * (raw little-endian float32 logits, N*K*H*W) and {@code timings.json} {backend, device, artifact,
 * latency_ms: [...], load_ms}. Files are written to a temporary name and renamed.
 */
public final class Pack {
    public static final String PACK_JSON = "pack.json";
    public static final String INPUTS = "inputs.f32";
    public static final String OUTPUTS = "outputs.f32";
    public static final String TIMINGS = "timings.json";

    public final File dir;
    public final Map<String, Object> meta;
    public final long[] shape;
    public final Preprocessing preprocessing;

    private Pack(File dir, Map<String, Object> meta, long[] shape, Preprocessing preprocessing) {
        this.dir = dir;
        this.meta = meta;
        this.shape = shape;
        this.preprocessing = preprocessing;
    }

    /** Read and check {@code dir/pack.json}. */
    public static Pack open(File dir) throws IOException {
        File f = new File(dir, PACK_JSON);
        if (!f.isFile()) {
            throw new IOException(dir + ": no " + PACK_JSON + " (push a pack made by lightseg)");
        }
        Map<String, Object> meta = Json.parseObject(readText(f));
        Object key = meta.containsKey("input_shape") ? "input_shape" : "shape";
        List<Object> s = Json.list(meta, (String) key);
        if (s.size() != 4) {
            throw new IOException(PACK_JSON + ": input shape must be [N, C, H, W], got " + s);
        }
        long[] shape = new long[4];
        for (int k = 0; k < 4; k++) {
            shape[k] = ((Double) s.get(k)).longValue();
        }
        Map<String, Object> pre = meta.get("preprocessing") instanceof Map
                ? Json.object(meta, "preprocessing")
                : Json.object(manifest(meta), "preprocessing");
        return new Pack(dir, meta, shape, Preprocessing.fromJson(pre));
    }

    private static Map<String, Object> manifest(Map<String, Object> meta) {
        return Json.object(meta, "manifest");
    }

    /** The manifest copied into the pack. */
    public Map<String, Object> manifest() {
        return manifest(meta);
    }

    /** Number of floats in one input image (C*H*W). */
    public int imageSize() {
        return (int) (shape[1] * shape[2] * shape[3]);
    }

    /** All inputs, N*C*H*W floats. */
    public float[] readInputs() throws IOException {
        byte[] b = readBytes(new File(dir, INPUTS));
        long n = shape[0] * imageSize();
        if (b.length != n * 4) {
            throw new IOException(INPUTS + ": " + b.length + " bytes, expected " + (n * 4)
                    + " for shape " + shape[0] + "x" + shape[1] + "x" + shape[2] + "x" + shape[3]);
        }
        return decode(b);
    }

    /** Name of the manifest artifact whose sha256 equals {@code sha256}, or null. */
    @SuppressWarnings("unchecked")
    public String artifactWithSha(String sha256) {
        for (Object o : Json.list(manifest(), "artifacts")) {
            Map<String, Object> a = (Map<String, Object>) o;
            if (sha256.equalsIgnoreCase(Json.string(a, "sha256", ""))) {
                return Json.string(a, "name", null);
            }
        }
        return null;
    }

    /** Write N*K*H*W logits to outputs.f32. */
    public void writeOutputs(float[] logits) throws IOException {
        atomicWrite(new File(dir, OUTPUTS), encode(logits));
    }

    /** Write timings.json. */
    public void writeTimings(String backend, String device, String artifact, double[] latencyMs,
            double loadMs) throws IOException {
        Map<String, Object> t = new LinkedHashMap<String, Object>();
        t.put("backend", backend);
        t.put("device", device);
        t.put("artifact", artifact);
        t.put("latency_ms", latencyMs);
        t.put("load_ms", loadMs);
        atomicWrite(new File(dir, TIMINGS), (Json.write(t) + "\n").getBytes(StandardCharsets.UTF_8));
    }

    /** Little-endian float32 bytes -> floats. */
    public static float[] decode(byte[] b) {
        float[] out = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    /** Floats -> little-endian float32 bytes. */
    public static byte[] encode(float[] v) {
        ByteBuffer bb = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bb.asFloatBuffer().put(v);
        return bb.array();
    }

    /** Hex sha256 of a stream (closes it). */
    public static String sha256(InputStream in) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
            StringBuilder b = new StringBuilder();
            for (byte x : md.digest()) {
                b.append(String.format("%02x", x & 0xFF));
            }
            return b.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IOException("sha256 unavailable", e);
        } finally {
            in.close();
        }
    }

    /** Whole stream as bytes (closes it). */
    public static byte[] readAll(InputStream in) throws IOException {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }

    public static byte[] readBytes(File f) throws IOException {
        return readAll(new FileInputStream(f));
    }

    public static String readText(File f) throws IOException {
        return new String(readBytes(f), StandardCharsets.UTF_8);
    }

    /** Write to a temporary file beside {@code f}, then rename it into place. */
    public static void atomicWrite(File f, byte[] data) throws IOException {
        File tmp = new File(f.getParentFile(), "." + f.getName() + ".tmp");
        OutputStream out = new FileOutputStream(tmp);
        try {
            out.write(data);
        } finally {
            out.close();
        }
        if (!tmp.renameTo(f)) {
            tmp.delete();
            throw new IOException("could not rename " + tmp + " to " + f);
        }
    }
}
