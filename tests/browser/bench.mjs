// tok/s of the page in headless chromium for each model given (200 greedy tokens, as the page
// measures it). Usage: node bench.mjs APP_WWWROOT MODEL... (chromium at $CHROMIUM or /usr/bin/chromium)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const [app, ...models] = process.argv.slice(2);
const server = await serve(app, 0);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'microlm-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] ?? await context.newPage();
await page.goto(`http://127.0.0.1:${server.address().port}/`);
await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Ready'));
for (const model of models) {
  await page.setInputFiles('#file', model);
  await page.waitForFunction(() => !document.getElementById('generate').disabled);
  await page.fill('#temp', '0');
  await page.fill('#max-tokens', '200');
  const before = await page.evaluate(() => document.body.dataset.done ?? '');
  await page.click('#generate');
  await page.waitForFunction((b) => (document.body.dataset.done ?? '') !== b, before, { timeout: 300_000 });
  const r = await page.evaluate(() => [document.getElementById('tps').textContent, document.getElementById('trace').textContent]);
  console.log(`${path.basename(model)}: ${r[0]}, ${r[1].slice(0, 24)}`);
}
await context.close();
server.close();
fs.rmSync(profile, { recursive: true, force: true });
