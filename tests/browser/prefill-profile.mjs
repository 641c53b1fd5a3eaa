// Where a batched prompt's time goes in headless Chromium: the published app on the page's main thread, every
// call into the compiled kernel module timed from JS (matmuls by type, attention, each utility), the rest
// ("outside": interpreted C#, JS interop) as the difference. One thread, no trace, --batch 512.
//   node tests/browser/prefill-profile.mjs APP_WWWROOT MODEL.gguf [TOKENS=120] [RUNS=8] [timed|plain]
// Runs are repeated because the .NET jiterpreter keeps compiling hot code for the first few; read the later ones.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './serve.mjs';

const [app, model, tokens = '120', runs = '8', mode = 'timed'] = process.argv.slice(2);
if (!app || !model) { console.error('usage: node prefill-profile.mjs APP_WWWROOT MODEL.gguf [TOKENS] [RUNS] [timed|plain]'); process.exit(2); }
const here = path.dirname(fileURLToPath(import.meta.url));
const server = await serve(app, 0, path.dirname(path.resolve(model)), { mounts: [['/profile/', path.join(here, 'bench')]], isolate: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'microlm-prefill-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/profile/prefill-profile.html`);
  await page.waitForFunction(() => window.runProf);
  console.log(await page.evaluate((a) => window.runProf(a), { url: '/models/' + path.basename(model), ntok: Number(tokens), runs: Number(runs), mode }));
} finally {
  await context.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
