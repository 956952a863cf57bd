// Per-node times of an ONNX model's forward pass in ONNX Runtime (npm
// onnxruntime-node), from its built-in profiler: the other side of
// residual's per-layer benchmark (`go test -bench ResNet50Convs
// ./internal/kernels`), to see which layers each library runs faster.
//
// Usage: NODE_PATH=testdata/external/ort/node_modules \
//   node bench/ort_layers.js MODEL.onnx BATCH SIDE [RUNS] [THREADS]
// Runs RUNS passes (default 30) with profiling on and prints, per node of
// the optimized graph in execution order, its operator and its median
// time over the passes after the first 5 (ms), then the median pass. The
// profile's JSON is written to a temporary folder and removed.
const ort = require('onnxruntime-node');
const fs = require('fs');
const os = require('os');
const path = require('path');

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const [model, batch, side, runs = '30', threads = '2'] = process.argv.slice(2);
  if (!model || !batch || !side) {
    console.error('usage: node bench/ort_layers.js MODEL.onnx BATCH SIDE [RUNS] [THREADS]');
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort_layers-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
      enableProfiling: true, profileFilePrefix: path.join(dir, 'profile'),
    });
    const n = Number(batch), s = Number(side);
    const data = new Float32Array(n * 3 * s * s).map((_, i) => Math.sin(i));
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [n, 3, s, s]) };
    for (let i = 0; i < Number(runs); i++) await session.run(feeds);
    session.endProfiling();
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const passes = events.filter((e) => e.name === 'model_run').map((e) => e.dur / 1000);
    const nodes = new Map(); // name → {op, times}, in first-seen (execution) order
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const name = e.name.slice(0, -'_kernel_time'.length);
      if (!nodes.has(name)) nodes.set(name, { op: e.args.op_name, times: [] });
      nodes.get(name).times.push(e.dur / 1000);
    }
    let sum = 0;
    for (const [name, { op, times }] of nodes) {
      const m = median(times.slice(Math.min(5, times.length - 1)));
      sum += m;
      console.log(`${name}\t${op}\t${m.toFixed(3)}`);
    }
    console.log(`sum of node medians\t\t${sum.toFixed(3)}`);
    console.log(`median pass\t\t${median(passes.slice(Math.min(5, passes.length - 1))).toFixed(3)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
