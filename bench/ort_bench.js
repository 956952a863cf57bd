// Inference speed of an ONNX model in ONNX Runtime (npm onnxruntime-node),
// the other side of residual's resnet50-infer benchmark.
//
// Usage: NODE_PATH=testdata/external/ort/node_modules \
//   node bench/ort_bench.js MODEL.onnx BATCH SIDE [RUNS] [THREADS]
// Prints one JSON line: name, unit, median, min, max (images/s) over RUNS
// timed runs after 3 warm-up runs, as `residual bench --json` does.
const ort = require('onnxruntime-node');

async function main() {
  const [model, batch, side, runs = '10', threads = '2'] = process.argv.slice(2);
  const n = Number(batch), s = Number(side);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const data = new Float32Array(n * 3 * s * s).map((_, i) => Math.sin(i));
  const feeds = { input: new ort.Tensor('float32', data, [n, 3, s, s]) };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const rates = [];
  for (let i = 0; i < Number(runs); i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    rates.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  rates.sort((a, b) => a - b);
  const med = rates.length % 2 ? rates[(rates.length - 1) / 2] : (rates[rates.length / 2 - 1] + rates[rates.length / 2]) / 2;
  console.log(JSON.stringify({ name: 'onnxruntime-' + model.split('/').pop(), unit: 'img/s', median: med, min: rates[0], max: rates[rates.length - 1] }));
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
