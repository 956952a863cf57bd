// The anchor of docs/SERVING.md: the simplest server a user would deploy
// instead of residual serve, ONNX Runtime (npm onnxruntime-node) behind
// Node's http module, one session.run per request (no batching). It speaks
// the same Open Inference Protocol request as residual serve for the
// load generator (bench/serveload): POST /v2/models/NAME/infer with one
// FP32 input "input" in NHWC, as JSON data or as Triton's binary tensor
// extension, and answers the logits as JSON. It listens on 127.0.0.1 only.
//
// Usage: NODE_PATH=testdata/external/ort/node_modules \
//   node bench/ort_serve.js MODEL.onnx [PORT] [THREADS]
// MODEL.onnx is residual's export (residual export onnx ...): input
// "input" NCHW; this server transposes NHWC requests to it.
const http = require('http');
const ort = require('onnxruntime-node');

const MAX_BODY = 32 << 20;

function nhwcToNchw(src, [n, h, w, c]) {
  const dst = new Float32Array(src.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++)
          dst[((b * c + k) * h + y) * w + x] = src[((b * h + y) * w + x) * c + k];
  return dst;
}

function fail(res, status, msg) {
  const b = JSON.stringify({ error: msg });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
  res.end(b);
}

async function main() {
  const [model, port = '8090', threads = '2'] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const outName = session.outputNames[0];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v2/health/ready') return fail(res, 200, 'ready');
    if (req.method !== 'POST' || !/^\/v2\/models\/[^/]+\/infer$/.test(req.url)) return fail(res, 404, 'not found');
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) { fail(res, 413, 'body too large'); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', async () => {
      try {
        const body = Buffer.concat(chunks);
        const hl = req.headers['inference-header-content-length'];
        const header = JSON.parse(body.subarray(0, hl ? Number(hl) : body.length).toString());
        const inp = header.inputs[0];
        let data;
        if (hl) {
          const raw = body.subarray(Number(hl));
          data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
        } else {
          data = Float32Array.from(inp.data.flat(Infinity));
        }
        const [n, h, w, c] = inp.shape;
        const out = await session.run({ input: new ort.Tensor('float32', nhwcToNchw(data, inp.shape), [n, c, h, w]) });
        const y = out[outName];
        const b = JSON.stringify({ model_name: 'ort', outputs: [{ name: 'logits', datatype: 'FP32', shape: y.dims, data: Array.from(y.data) }] });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
        res.end(b);
      } catch (e) {
        fail(res, 400, String(e));
      }
    });
  });
  server.listen(Number(port), '127.0.0.1', () => console.log(`onnxruntime-node serving ${model} on http://127.0.0.1:${port}`));
  // On SIGTERM stop accepting, drop idle keep-alive connections (without
  // that, close waits on clients that never hang up) and exit once in-flight
  // requests are answered, or after 5 s regardless.
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  });
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
