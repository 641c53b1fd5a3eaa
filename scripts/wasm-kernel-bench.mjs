// A/B timing of the compiled matmul kernels in V8 (Node), outside the runtime: the same random weights and
// activations through each module's export, alternating, best of 5 rounds of CPU time (steadier than wall
// time on a shared machine), and a check that every module wrote the same bits.
//   node scripts/wasm-kernel-bench.mjs --dump APP_WWWROOT OUT.wasm     the app's kernel module (Api.KernelModule)
//   node scripts/wasm-kernel-bench.mjs A.wasm [B.wasm ...]             TYPES=Q8_0,Q4_0,F32,F16 (default Q8_0,Q4_0,F32)
// V8 in Node v20 is older than the browser's: judge float kernel changes in Chromium too (scripts/wasm-kernel-bench-chromium.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
if (argv[0] === '--dump') {
  const [, appDir, out] = argv;
  const { dotnet } = await import(pathToFileURL(path.resolve(appDir, '_framework/dotnet.js')).href);
  const runtime = await dotnet.create();
  const api = (await runtime.getAssemblyExports('MicroLm.Web')).MicroLm.Web.Api;
  fs.writeFileSync(out, api.KernelModule());
  process.exit(0);
}
const memory = new WebAssembly.Memory({ initial: 2048 }); // 128 MB
const modules = [];
for (const file of argv) modules.push((await WebAssembly.instantiate(fs.readFileSync(file), { env: { memory } })).instance.exports);
let at = 1024;
const alloc = (n) => { const a = at; at += (n + 63) & ~63; return a; };
const half = (v) => { const i = new Uint32Array(new Float32Array([v]).buffer)[0]; return ((i >> 16) & 0x8000) | ((((i >> 23) & 255) - 112) << 10) | ((i >> 13) & 0x3ff); };
const blockBytes = { Q8_0: 34, Q4_0: 18 };
const shapes = [[32000, 288, 1], [768, 288, 1], [288, 768, 1], [768, 288, 16], [288, 768, 16], [2048, 768, 1]];
for (const type of (process.env.TYPES ?? 'Q8_0,Q4_0,F32').split(',')) for (const [rows, n, count] of shapes) {
  const rowBytes = type === 'F32' ? 4 * n : type === 'F16' ? 2 * n : (n / 32) * blockBytes[type];
  const w = alloc(rows * rowBytes);
  const bytes = new Uint8Array(memory.buffer);
  for (let i = 0; i < rows * rowBytes; i++) bytes[w + i] = (Math.random() * 256) | 0;
  if (type === 'F32') { const f = new Float32Array(memory.buffer, w, rows * n); for (let i = 0; i < f.length; i++) f[i] = Math.random() - 0.5; }
  if (type === 'F16') { const h = new Uint16Array(memory.buffer, w, rows * n); for (let i = 0; i < h.length; i++) h[i] = half(Math.random() - 0.5); }
  if (blockBytes[type]) for (let b = 0; b < rows * n / 32; b++) { const h = half(0.01 + Math.random() * 0.01); bytes[w + b * blockBytes[type]] = h & 255; bytes[w + b * blockBytes[type] + 1] = h >> 8; }
  const table = alloc(8 * count);
  const words = new Int32Array(memory.buffer);
  for (let t = 0; t < count; t++) {
    const x = alloc(4 * n), s = alloc(4 * n / 32);
    if (blockBytes[type]) {
      const q = new Int8Array(memory.buffer, x, n); for (let i = 0; i < n; i++) q[i] = ((Math.random() * 254) | 0) - 127;
      new Float32Array(memory.buffer, s, n / 32).fill(0.01);
    } else { const f = new Float32Array(memory.buffer, x, n); for (let i = 0; i < n; i++) f[i] = Math.random() - 0.5; }
    words[table / 4 + 2 * t] = x; words[table / 4 + 2 * t + 1] = s;
  }
  const outs = modules.map(() => alloc(4 * rows * count));
  const reps = Math.max(3, Math.round(6e8 / (rows * n * count)));
  const best = modules.map(() => Infinity);
  for (let round = 0; round < 5; round++)
    modules.forEach((m, i) => {
      const c0 = process.cpuUsage();
      for (let k = 0; k < reps; k++) m[type](w, rowBytes, rows, n, table, count, outs[i], rows);
      const c = process.cpuUsage(c0);
      best[i] = Math.min(best[i], (c.user + c.system) / 1000 / reps);
    });
  const view = (o) => Buffer.from(memory.buffer, o, 4 * rows * count);
  const same = outs.every((o) => Buffer.compare(view(o), view(outs[0])) === 0);
  console.log(`${type} ${rows}x${n} x${count} tokens: ` + best.map((t, i) => `${path.basename(argv[i])} ${(t * 1000).toFixed(1)} us`).join('  ') +
    (modules.length > 1 ? `  first/last ${(best[0] / best[best.length - 1]).toFixed(2)}` : '') + `  same bits ${same}`);
}
