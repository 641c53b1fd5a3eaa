// A/B timing of the compiled float matmul kernels in headless Chromium (the browser's V8, whose register
// allocation and scheduling differ from Node v20's: a token tile that Node ran 0.9x ran 1.2-1.3x here).
// Same random weights and activations through each module's export, alternating, best of 25 rounds of wall
// time per call (Chromium has no CPU-time clock), and a check that every module wrote the same bits.
//   node scripts/wasm-kernel-bench-chromium.mjs A.wasm [B.wasm ...]     (modules from wasm-kernel-bench.mjs --dump)
//   TYPES=F32,F16 (default F32)  SHAPES='[[rows,n,tokens],...]'  CHROMIUM=/usr/bin/chromium
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const files = process.argv.slice(2);
if (files.length === 0) { console.error('usage: node scripts/wasm-kernel-bench-chromium.mjs A.wasm [B.wasm ...]'); process.exit(2); }
const types = process.env.TYPES ?? 'F32';
const shapes = JSON.parse(process.env.SHAPES ?? '[[768,288,16],[288,768,16],[768,288,120],[32000,288,1],[768,288,1]]');
const page = `<html><body><pre id="o"></pre><script>
const modules = ${JSON.stringify(files.map((f) => fs.readFileSync(f).toString('base64')))};
const names = ${JSON.stringify(files.map((f) => path.basename(f)))};
const memory = new WebAssembly.Memory({ initial: 2048 });
const ms = modules.map((b) => new WebAssembly.Instance(new WebAssembly.Module(Uint8Array.from(atob(b), (c) => c.charCodeAt(0))), { env: { memory } }).exports);
let at = 1024; const alloc = (n) => { const a = at; at += (n + 63) & ~63; return a; };
const lines = [];
for (const type of ${JSON.stringify(types)}.split(',')) for (const [rows, n, count] of ${JSON.stringify(shapes)}) {
  const rowBytes = type === 'F32' ? 4 * n : 2 * n, w = alloc(rows * rowBytes);
  if (type === 'F32') { const f = new Float32Array(memory.buffer, w, rows * n); for (let i = 0; i < f.length; i++) f[i] = Math.random() - 0.5; }
  else { const h = new Uint16Array(memory.buffer, w, rows * n); for (let i = 0; i < h.length; i++) h[i] = 0x3000 | ((Math.random() * 0x3ff) | 0) | (Math.random() < 0.5 ? 0x8000 : 0); }
  const table = alloc(8 * count), words = new Int32Array(memory.buffer);
  for (let t = 0; t < count; t++) { const x = alloc(4 * n), f = new Float32Array(memory.buffer, x, n); for (let i = 0; i < n; i++) f[i] = Math.random() - 0.5; words[table / 4 + 2 * t] = x; }
  const outs = ms.map(() => alloc(4 * rows * count));
  const reps = Math.max(3, Math.round(3e8 / (rows * n * count))), best = ms.map(() => Infinity);
  for (let round = 0; round < 25; round++) ms.forEach((m, i) => {
    const t0 = performance.now();
    for (let k = 0; k < reps; k++) m[type](w, rowBytes, rows, n, table, count, outs[i], rows);
    best[i] = Math.min(best[i], (performance.now() - t0) / reps);
  });
  const bytes = (o) => new Uint8Array(memory.buffer, o, 4 * rows * count);
  const same = outs.every((o) => bytes(o).every((v, i) => v === bytes(outs[0])[i]));
  lines.push(type + ' ' + rows + 'x' + n + ' x' + count + ' tokens: ' + best.map((t, i) => names[i] + ' ' + (t * 1000).toFixed(1) + ' us').join('  ') +
    (ms.length > 1 ? '  first/last ' + (best[0] / best[best.length - 1]).toFixed(2) : '') + '  same bits ' + same);
}
document.getElementById('o').textContent = lines.join('\\n');
</script></body></html>`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'microlm-kernel-bench-'));
try {
  fs.writeFileSync(path.join(dir, 'bench.html'), page);
  const dom = execFileSync(process.env.CHROMIUM ?? '/usr/bin/chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(dir, 'profile')}`, '--dump-dom', `file://${path.join(dir, 'bench.html')}`],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 600000 });
  console.log(dom.match(/<pre id="o">([\s\S]*?)<\/pre>/)[1]);
} finally { fs.rmSync(dir, { recursive: true, force: true }); }
