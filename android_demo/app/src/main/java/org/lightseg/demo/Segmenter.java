package org.lightseg.demo;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

/** The .ort model in an ORT Mobile session: float32 NCHW in, float32 logits out. */
final class Segmenter implements AutoCloseable {
    /** Execution providers the demo offers; "cpu" is ORT's default CPU provider. */
    static final String[] PROVIDERS = {"xnnpack", "nnapi", "cpu"};

    private final OrtEnvironment env;
    private final OrtSession session;
    private final String inputName;
    final String provider;
    final double loadMs;

    Segmenter(byte[] model, String provider, int threads) throws OrtException {
        this.env = OrtEnvironment.getEnvironment();
        this.provider = provider;
        long t0 = System.nanoTime();
        OrtSession.SessionOptions so = new OrtSession.SessionOptions();
        try {
            if ("xnnpack".equals(provider)) {
                // XNNPACK brings its own thread pool; ORT's intra-op pool stays at 1 thread.
                Map<String, String> opts = new HashMap<String, String>();
                opts.put("intra_op_num_threads", Integer.toString(threads));
                so.addXnnpack(opts);
                so.setIntraOpNumThreads(1);
                so.addConfigEntry("session.intra_op.allow_spinning", "0");
            } else if ("nnapi".equals(provider)) {
                so.addNnapi();
                so.setIntraOpNumThreads(threads);
            } else if ("cpu".equals(provider)) {
                so.setIntraOpNumThreads(threads);
            } else {
                throw new IllegalArgumentException("unknown provider '" + provider + "'");
            }
            this.session = env.createSession(model, so);
        } finally {
            so.close();
        }
        this.loadMs = (System.nanoTime() - t0) / 1e6;
        this.inputName = session.getInputNames().iterator().next();
    }

    /** Run one batch; {@code shape} is [N, C, H, W]; returns N*K*H*W logits. */
    float[] run(float[] x, long[] shape) throws OrtException {
        OnnxTensor in = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), shape);
        try {
            OrtSession.Result r = session.run(Collections.singletonMap(inputName, in));
            try {
                FloatBuffer fb = ((OnnxTensor) r.get(0)).getFloatBuffer();
                float[] out = new float[fb.remaining()];
                fb.get(out);
                return out;
            } finally {
                r.close();
            }
        } finally {
            in.close();
        }
    }

    /** Number of output channels (classes) K for an output of {@code n} values over H*W. */
    static int classes(int n, int hw) {
        return n / hw;
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
