// Runs ONNX models in ONNX Runtime (npm onnxruntime-node) for
// interop/onnx's export tests. Usage: node ort_run.js jobs.json, where
// jobs.json lists {model, input, dims, output}: input and output are files
// of little-endian float32 values; the model's single input is "input" and
// its output "output". Optional fields: optimization, ONNX Runtime's
// graphOptimizationLevel ("disabled" if absent); optimized, a path to
// save the optimized model to; fetch, more graph outputs to write, each
// to output + "." + name (raw data) and output + "." + name + ".json"
// ({dims, type}); extra, session configuration entries (the
// SessionOptions' extra field, e.g. {"session": {"x64quantprecision": "1"}}).
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const job of jobs) {
    const opts = { graphOptimizationLevel: job.optimization || 'disabled' };
    if (job.extra) {
      opts.extra = job.extra;
    }
    if (job.optimized) {
      opts.optimizedModelFilePath = job.optimized;
    }
    const session = await ort.InferenceSession.create(job.model, opts);
    const buf = fs.readFileSync(job.input);
    const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const res = await session.run({ input: new ort.Tensor('float32', data, job.dims) });
    const out = res.output;
    fs.writeFileSync(job.output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    fs.writeFileSync(job.output + '.shape', JSON.stringify(out.dims));
    for (const name of job.fetch || []) {
      const t = res[name];
      fs.writeFileSync(job.output + '.' + name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      fs.writeFileSync(job.output + '.' + name + '.json', JSON.stringify({ dims: t.dims, type: t.type }));
    }
  }
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
