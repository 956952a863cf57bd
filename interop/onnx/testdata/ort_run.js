// Runs ONNX models in ONNX Runtime (npm onnxruntime-node) for
// interop/onnx's export test. Usage: node ort_run.js jobs.json, where
// jobs.json lists {model, input, dims, output}: input and output are files
// of little-endian float32 values; the model's single input is "input" and
// its single output "output".
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const job of jobs) {
    const session = await ort.InferenceSession.create(job.model, { graphOptimizationLevel: 'disabled' });
    const buf = fs.readFileSync(job.input);
    const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const res = await session.run({ input: new ort.Tensor('float32', data, job.dims) });
    const out = res.output;
    fs.writeFileSync(job.output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    fs.writeFileSync(job.output + '.shape', JSON.stringify(out.dims));
  }
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
