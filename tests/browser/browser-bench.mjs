// MicroLm's page vs wllama (llama.cpp in WebAssembly) in headless Debian chromium, on the same GGUF files,
// in one page: one thread each, each warm, alternating; greedy decode of N tokens and a P-token prompt.
// Served with COOP/COEP headers (cross-origin isolated), so wllama may pick its best build.
// Usage (scripts/browser-bench passes these):
//   node browser-bench.mjs --app APP_WWWROOT --models DIR --bench-models DIR [--decode 128] [--prefill 128] FILE...
// FILE is relative to --models (prefix "shared:") or --bench-models.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(name); if (i < 0) return fallback; const v = args[i + 1]; args.splice(i, 2); return v; };
const app = opt('--app');
const models = opt('--models');
const benchModels = opt('--bench-models');
const decodeTokens = Number(opt('--decode', '128'));
const prefillTokens = Number(opt('--prefill', '128'));
const chromiumPath = opt('--chromium', process.env.CHROMIUM ?? '/usr/bin/chromium');
const files = args;

const wllamaDir = path.join(here, 'node_modules/@wllama/wllama/esm');
const wllamaVersion = JSON.parse(fs.readFileSync(path.join(here, 'node_modules/@wllama/wllama/package.json'), 'utf8')).version;
const server = await serve(app, 0, models, {
  isolate: true,
  mounts: [['/bench/', path.join(here, 'bench')], ['/wllama/', wllamaDir], ['/bench-models/', benchModels]],
});
const base = `http://127.0.0.1:${server.address().port}`;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'microlm-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-quic', '--no-first-run'],
});
const page = context.pages()[0] ?? await context.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
const started = Date.now();
try {
  await page.goto(`${base}/bench/index.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 });
  const kernels = await page.evaluate(() => window.benchInit('auto'));
  const browserVersion = context.browser()?.version() ?? execFileSync(chromiumPath, ['--version'], { encoding: 'utf8' }).trim();
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? os.cpus()[0]?.model;
  console.log(`${new Date().toISOString().slice(0, 10)}, ${cpu}, ${os.cpus().length} logical cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`chromium ${browserVersion} (headless, cross-origin isolated: ${isolated}), wllama ${wllamaVersion}, MicroLm kernels: ${kernels.path}${kernels.reason ? ` (${kernels.reason})` : ''}`);
  console.log(`decode: ${decodeTokens} greedy tokens after "Once upon a time"; prefill: a ${prefillTokens}-token prompt; one thread each\n`);
  console.log('| file | decode MicroLm tok/s | decode wllama tok/s | ratio | MicroLm with trace | prefill MicroLm tok/s | prefill wllama tok/s | ratio |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const file of files) {
    const url = file.startsWith('shared:') ? `/models/${file.slice(7)}` : `/bench-models/${file}`;
    const r = await page.evaluate((a) => window.benchFile(a), { url, decodeTokens, prefillTokens });
    const f = (x) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(1));
    const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '–');
    if (r.decodeTokens !== decodeTokens || r.prefillTokens !== prefillTokens) console.log(`  (${path.basename(file)}: decode ${r.decodeTokens} tokens, prefill ${r.prefillTokens} tokens: its context is short)`);
    const name = path.basename(file).replace(/^llama-(\d+M)-.*-(F32|F16|Q8_0|Q4_0)\.gguf$/, '$1 $2 (synthetic)');
    const note = r.wllamaPrefill.promptTokens !== r.microlmPrefill.promptTokens ? ` (${r.microlmPrefill.promptTokens} / ${r.wllamaPrefill.promptTokens} prompt tokens)` : '';
    console.log(`| ${name} | ${f(r.microlmDecode.tps)} | ${f(r.wllamaDecode.tps)} | ${ratio(r.microlmDecode.tps, r.wllamaDecode.tps)} | ${f(r.microlmDecodeTrace.tps)} | ` +
      `${f(r.microlmPrefill.tps)} | ${f(r.wllamaPrefill.tps)}${note} | ${ratio(r.microlmPrefill.tps, r.wllamaPrefill.tps)} |`);
    if (r.microlmDecode.kernels !== 'wasm-simd') console.log(`  (MicroLm ran on ${r.microlmDecode.kernels})`);
  }
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(0)} s in the browser)`);
} catch (e) {
  console.error(`browser-bench: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  if (errors.length) console.error(`browser console errors:\n  ${errors.join('\n  ')}`);
  await context.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
