// Tokens per second of the WebAssembly build under Node, measured as `microlm run` measures it
// (first generated token excluded). Usage: node scripts/wasm-bench.mjs APP_DIR MODEL [N] [TEMP]
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [appDir, model, n = '200', temp = '0'] = process.argv.slice(2);
const { dotnet } = await import(pathToFileURL(path.resolve(appDir, '_framework/dotnet.js')).href);
const { registerKernelImports, installKernels } = await import(pathToFileURL(path.resolve(appDir, 'kernels.js')).href);
const runtime = await dotnet.create();
registerKernelImports(runtime);
const api = (await runtime.getAssemblyExports('MicroLm.Web')).MicroLm.Web.Api;
// MICROLM_KERNELS=interpreter measures the C# kernels instead of the compiled ones.
const kernels = await installKernels(runtime, api, process.env.MICROLM_KERNELS ?? 'auto');
// MICROLM_TRACE=0: no trace (only the sampled logits computed, as `microlm run`); default: the page's trace.
if (process.env.MICROLM_TRACE === '0') api.SetTrace(false);
api.SetIgnoreEos(true); // always N tokens
const t0 = performance.now();
const info = JSON.parse(api.LoadModel(fs.readFileSync(model)));
if (info.error) { console.error(info.error); process.exit(1); }
const loadMs = performance.now() - t0;
const start = JSON.parse(api.Start('Once upon a time', Number(n), ['--temp', temp]));
const g0 = performance.now();
let first = 0, generated = 0;
for (;;) {
  const r = JSON.parse(api.Next(1));
  if (r.generated === 1 && !first) first = performance.now();
  generated = r.generated;
  if (r.done) break;
}
const total = performance.now() - g0;
const mem = JSON.parse(api.Memory());
console.log(`${path.basename(model)}: load ${loadMs.toFixed(1)} ms, prompt ${start.promptTokens} tokens, generated ${generated} tokens in ${total.toFixed(1)} ms ` +
  `(${((generated - 1) / ((performance.now() - first) / 1000)).toFixed(1)} tok/s), kernels ${kernels.path} (${mem.compiledCalls} compiled matmuls), ${api.TraceHash() || 'no trace'}`);
process.exit(0);
