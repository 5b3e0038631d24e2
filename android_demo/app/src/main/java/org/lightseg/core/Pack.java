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
 * The device side of the parity pack protocol (lightseg.benchmarks.pack). A pack folder holds
 * {@code pack.json} {schema_version, kind "lightseg-parity-pack", manifest, preprocessing,
 * input {name, shape [N, C, H, W], dtype, file}, output {name, shape [N, K, H, W]}}, the inputs
 * file (raw little-endian float32, N*C*H*W) and the artifacts at their manifest paths. The device
 * writes {@code outputs.f32} (raw little-endian float32 logits, N*K*H*W) and {@code timings.json}
 * {backend, device, artifact, latency_ms: [...], load_ms, versions}. Files are written to a
 * temporary name and renamed.
 */
public final class Pack {
    public static final String PACK_JSON = "pack.json";
    public static final String KIND = "lightseg-parity-pack";
    public static final String OUTPUTS = "outputs.f32";
    public static final String TIMINGS = "timings.json";

    public final File dir;
    public final Map<String, Object> meta;
    /** Input shape [N, C, H, W] and output shape [N, K, H, W]. */
    public final long[] shape;
    public final long[] outputShape;
    public final Preprocessing preprocessing;
    private final String inputFile;

    private Pack(File dir, Map<String, Object> meta) {
        this.dir = dir;
        this.meta = meta;
        Map<String, Object> in = Json.object(meta, "input");
        this.shape = shape4(in, "input");
        this.outputShape = shape4(Json.object(meta, "output"), "output");
        this.inputFile = Json.string(in, "file", "inputs.f32");
        this.preprocessing = Preprocessing.fromJson(Json.object(meta, "preprocessing"));
    }

    private static long[] shape4(Map<String, Object> spec, String what) {
        List<Object> s = Json.list(spec, "shape");
        if (s.size() != 4) {
            throw new IllegalArgumentException(
                    PACK_JSON + ": " + what + " shape must have 4 dims, got " + s);
        }
        long[] out = new long[4];
        for (int k = 0; k < 4; k++) {
            out[k] = ((Double) s.get(k)).longValue();
        }
        return out;
    }

    /** Read and check {@code dir/pack.json}. */
    public static Pack open(File dir) throws IOException {
        File f = new File(dir, PACK_JSON);
        if (!f.isFile()) {
            throw new IOException(dir + ": no " + PACK_JSON + " (push a pack made by lightseg)");
        }
        Map<String, Object> meta = Json.parseObject(readText(f));
        if (!KIND.equals(meta.get("kind")) || Json.number(meta, "schema_version", 0) != 1) {
            throw new IOException(f + ": not a " + KIND + " v1");
        }
        return new Pack(dir, meta);
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
        byte[] b = readBytes(new File(dir, inputFile));
        long n = shape[0] * imageSize();
        if (b.length != n * 4) {
            throw new IOException(inputFile + ": " + b.length + " bytes, expected " + (n * 4)
                    + " for shape " + shape[0] + "x" + shape[1] + "x" + shape[2] + "x" + shape[3]);
        }
        return decode(b);
    }

    /** The pack's artifacts (manifest entries: name, path, format, precision, sha256, ...). */
    @SuppressWarnings("unchecked")
    public List<Map<String, Object>> artifacts() {
        return (List<Map<String, Object>>) (List<?>) Json.list(manifest(), "artifacts");
    }

    /**
     * The artifact a phone runs: format "ort" (ORT Mobile), int8 first, else the first ".ort";
     * null when the pack holds none.
     */
    public Map<String, Object> ortArtifact() {
        Map<String, Object> first = null;
        for (Map<String, Object> a : artifacts()) {
            if ("ort".equals(a.get("format"))) {
                if ("int8".equals(a.get("precision"))) {
                    return a;
                }
                first = first == null ? a : first;
            }
        }
        return first;
    }

    /** The artifact's file inside the pack, after checking its sha256 against the manifest. */
    public File verifiedFile(Map<String, Object> artifact) throws IOException {
        File f = new File(dir, Json.string(artifact, "path", ""));
        if (!f.isFile()) {
            throw new IOException("artifact " + artifact.get("name") + ": " + f + " is missing");
        }
        String want = Json.string(artifact, "sha256", "");
        String got = sha256(new FileInputStream(f));
        if (!got.equalsIgnoreCase(want)) {
            throw new IOException("artifact " + artifact.get("name") + ": sha256 " + got.substring(0, 12)
                    + " but the manifest says " + want + ": re-push the pack");
        }
        return f;
    }

    /** Name of the manifest artifact whose sha256 equals {@code sha256}, or null. */
    public String artifactWithSha(String sha256) {
        for (Map<String, Object> a : artifacts()) {
            if (sha256.equalsIgnoreCase(Json.string(a, "sha256", ""))) {
                return Json.string(a, "name", null);
            }
        }
        return null;
    }

    /** Write N*K*H*W logits to outputs.f32. */
    public void writeOutputs(float[] logits) throws IOException {
        long n = outputShape[0] * outputShape[1] * outputShape[2] * outputShape[3];
        if (logits.length != n) {
            throw new IOException("outputs: " + logits.length + " values, the pack expects " + n);
        }
        atomicWrite(new File(dir, OUTPUTS), encode(logits));
    }

    /** Write timings.json. */
    public void writeTimings(String backend, String device, String artifact, double[] latencyMs,
            double loadMs, Map<String, Object> versions) throws IOException {
        Map<String, Object> t = new LinkedHashMap<String, Object>();
        t.put("backend", backend);
        t.put("device", device);
        t.put("artifact", artifact);
        t.put("latency_ms", latencyMs);
        t.put("load_ms", loadMs);
        t.put("versions", versions);
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
