// The real-browser test: Debian's chromium, headless, driven by playwright-core (no browser
// download), against the published page served from 127.0.0.1. Expected results come from the
// native CLI, run here. Usage (scripts/browser-test passes these):
//   node test.mjs --app APP_WWWROOT --cli MicroLm.Cli.dll --models DIR [--out artifacts]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const app = arg('--app');
const cli = arg('--cli');
const models = arg('--models');
const out = arg('--out', 'artifacts');
const chromiumPath = arg('--chromium', process.env.CHROMIUM ?? '/usr/bin/chromium');
const model = path.join(models, 'stories260K-Q8_0.gguf');
const urlModel = 'stories260K-F32.gguf';
const falconModel = arg('--falcon', '') || null;
const gptneoModel = arg('--gptneo', '') || null;
const prompt = 'Once upon a time';
fs.mkdirSync(out, { recursive: true });

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? `\n     ${detail}` : ''}`); }
}

function native(...args) {
  return execFileSync('dotnet', [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });
}
const nativeTrace = (file, n) => native('verify', '-m', file, '-p', prompt, '-n', String(n), '--temp', '0').trimEnd().split('\n').pop();
const nativeText = (file, n) => native('run', '-m', file, '-p', prompt, '-n', String(n), '--temp', '0');

const expected64 = { text: nativeText(model, 64), trace: nativeTrace(model, 64) };
const expected16 = { trace: nativeTrace(path.join(models, urlModel), 16) };
const expected8 = { trace: nativeTrace(model, 8) };

const server = await serve(app, 0, models);
const base = `http://127.0.0.1:${server.address().port}/`;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'microlm-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1000, height: 900 },
});
const page = context.pages()[0] ?? await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));

async function generate(n, temp = '0') {
  await page.fill('#max-tokens', String(n));
  await page.fill('#temp', temp);
  await page.fill('#prompt', prompt);
  const before = await page.evaluate(() => document.body.dataset.done ?? '');
  await page.click('#generate');
  await page.waitForFunction((b) => (document.body.dataset.done ?? '') !== b || !document.getElementById('error').hidden,
    before, { timeout: 120_000 });
  return page.evaluate(() => ({
    text: document.getElementById('output').textContent,
    trace: document.getElementById('trace').textContent,
    tps: document.getElementById('tps').textContent,
    kv: document.getElementById('mem-kv').textContent,
    model: document.getElementById('mem-model').textContent,
    heap: document.getElementById('mem-heap').textContent,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  }));
}

async function pickFile(file) {
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => !document.getElementById('generate').disabled || !document.getElementById('error').hidden, null, { timeout: 60_000 });
}

// A file that must fail: wait for the error itself (Generate may still be enabled by the model loaded before, so waiting
// for "enabled or error" could return before the page has read the new file).
async function pickBadFile(file) {
  // A previous file's error is cleared here, so that the wait below sees this file's own error.
  await page.evaluate(() => { const e = document.getElementById('error'); e.hidden = true; e.textContent = ''; });
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 }).catch(() => {});
}

try {
  const t0 = Date.now();
  await page.goto(base);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Ready'), null, { timeout: 60_000 });
  check('the runtime starts in the page', true, '');
  console.log(`     (start-up ${Date.now() - t0} ms)`);

  // 1. The real model, picked as a file; 64 greedy tokens equal native's text and trace.
  await pickFile(model);
  const info = await page.textContent('#model-info');
  check('a GGUF file picked in the page loads', /layers/.test(info), info);
  // Main-thread responsiveness while generating: the largest gap between animation frames.
  await page.evaluate(() => {
    window.maxGap = 0;
    let last = performance.now();
    const tick = (t) => { window.maxGap = Math.max(window.maxGap, t - last); last = t; if (!window.stopFrames) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  const r64 = await generate(64);
  const maxGap = await page.evaluate(() => { window.stopFrames = true; return window.maxGap; });
  check('64 greedy tokens: the text equals native `microlm run`', r64.text + '\n' === expected64.text,
    `page:   ${JSON.stringify(r64.text)}\n     native: ${JSON.stringify(expected64.text)}`);
  check('64 greedy tokens: the trace hash equals native `microlm verify`', r64.trace === expected64.trace,
    `page: ${r64.trace}\n     native: ${expected64.trace}`);
  check('the page shows tok/s and memory figures', /tok\/s/.test(r64.tps) && /iB/.test(r64.kv) && /iB/.test(r64.model) && /iB/.test(r64.heap),
    JSON.stringify(r64));
  check('the page does not freeze while generating (largest frame gap < 500 ms)', maxGap < 500, `${maxGap.toFixed(0)} ms`);
  const kernels = await page.evaluate(() => ({ ...document.getElementById('kernels').dataset, text: document.getElementById('kernels').textContent }));
  check('the page runs the compiled WebAssembly SIMD kernels and says so', kernels.path === 'wasm-simd' && Number(kernels.calls) > 0, JSON.stringify(kernels));
  console.log(`     (chromium: ${r64.tps}, model ${r64.model}, KV cache ${r64.kv}, heap ${r64.heap}, largest frame gap ${maxGap.toFixed(0)} ms)`);
  await page.screenshot({ path: path.join(out, 'browser.png'), fullPage: true });

  // 2. A truncated file and a file that is not GGUF: a readable message, and the page goes on.
  const bytes = fs.readFileSync(model);
  await pickBadFile({ name: 'truncated.gguf', mimeType: 'application/octet-stream', buffer: bytes.subarray(0, 20000) });
  let error = await page.evaluate(() => document.getElementById('error').hidden ? '' : document.getElementById('error').textContent);
  check('a truncated file gives a readable error', /truncated\.gguf is not a usable model: .*more bytes than the file holds/.test(error), error);
  await page.screenshot({ path: path.join(out, 'browser-error.png'), fullPage: true });
  await pickBadFile({ name: 'notes.gguf', mimeType: 'text/plain', buffer: Buffer.from('hello, world\n') });
  error = await page.evaluate(() => document.getElementById('error').hidden ? '' : document.getElementById('error').textContent);
  check('a file that is not GGUF gives a readable error', /notes\.gguf is not a usable model: .*GGUF/.test(error), error);
  check('generate is disabled while no model is loaded', await page.isDisabled('#generate'));

  await pickFile(model);
  const r8 = await generate(8);
  check('after the errors the page loads a model and generates again (trace equals native)', r8.trace === expected8.trace && !r8.error,
    `page: ${r8.trace} ${r8.error}\n     native: ${expected8.trace}`);

  // 3. Loading from a URL.
  await page.fill('#url', `${base}models/${urlModel}`);
  await page.click('#load-url');
  await page.waitForFunction(() => !document.getElementById('generate').disabled || !document.getElementById('error').hidden, null, { timeout: 60_000 });
  const r16 = await generate(16);
  check(`a model given by URL loads and generates (${urlModel}, trace equals native)`, r16.trace === expected16.trace,
    `page: ${r16.trace} ${r16.error}\n     native: ${expected16.trace}`);

  // 4. The fallback: the same page on the C# kernels (?kernels=interpreter) gives the same bits and says which path runs.
  await page.goto(`${base}?kernels=interpreter`);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Ready'), null, { timeout: 60_000 });
  await pickFile(model);
  const r8i = await generate(8);
  const fallback = await page.evaluate(() => ({ ...document.getElementById('kernels').dataset }));
  check('the interpreter fallback shows its path and gives the same trace', fallback.path === 'interpreter' && r8i.trace === expected8.trace,
    `path ${fallback.path}, page: ${r8i.trace} ${r8i.error}\n     native: ${expected8.trace}`);

  // 5. A hybrid attention + Mamba2 model (falcon-h1; written by tools/MicroLm.MakeModels), when given.
  if (falconModel) {
    const expectedFalcon = nativeTrace(falconModel, 24);
    await pickFile(falconModel);
    const rf = await generate(24);
    check(`a falcon-h1 model loads and generates (${path.basename(falconModel)}, trace equals native)`,
      rf.trace === expectedFalcon && !rf.error, `page: ${rf.trace} ${rf.error}\n     native: ${expectedFalcon}`);
  }

  // 6. A GPT-Neo model (converted from a Hugging Face checkpoint by `convert hf`; local layers with a 16-position
  // window, so 16 tokens after the 4-token prompt cross the window's edge), when given.
  if (gptneoModel) {
    const expectedNeo = nativeTrace(gptneoModel, 16);
    await pickFile(gptneoModel);
    const t0 = Date.now();
    const rn = await generate(16);
    console.log(`     (gptneo: 16 tokens in ${Date.now() - t0} ms)`);
    check(`a gptneo model loads and generates past its window (${path.basename(gptneoModel)}, trace equals native)`,
      rn.trace === expectedNeo && !rn.error, `page: ${rn.trace} ${rn.error}\n     native: ${expectedNeo}`);
  }

  check('no errors in the browser console', consoleErrors.length === 0, consoleErrors.join('\n     '));
  await page.fill('#url', `${base}models/no-such-model.gguf`);
  await page.click('#load-url');
  await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 });
  error = await page.textContent('#error');
  check('a URL that is not found gives a readable error', /404/.test(error), error);

} catch (e) {
  check('the browser test ran to the end', false, String(e?.stack ?? e));
  await page.screenshot({ path: path.join(out, 'browser-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
