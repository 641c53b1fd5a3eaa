// MicroLm for the benchmark page: the published app's runtime and kernels, driven through the same
// JavaScript API as the page's own worker (src/MicroLm.Web/wwwroot/worker.js), one call per message.
import { dotnet } from '/_framework/dotnet.js';
import { registerKernelImports, installKernels } from '/kernels.js';

let api = null;

const handlers = {
  async init({ kernels }) {
    const runtime = await dotnet.create();
    registerKernelImports(runtime);
    api = (await runtime.getAssemblyExports('MicroLm.Web')).MicroLm.Web.Api;
    api.SetIgnoreEos(true); // a fixed number of tokens, as wllama's ignore_eos
    return installKernels(runtime, api, kernels ?? 'auto');
  },
  async load({ url }) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const info = JSON.parse(api.LoadModel(new Uint8Array(await response.arrayBuffer())));
    if (info.error) throw new Error(info.error);
    return info;
  },
  tokenCount({ text }) { return api.Tokenize(text, true).split(' ').length; },
  // Greedy decode of n tokens after a short prompt: tok/s over tokens 2..n, as the page measures it.
  decode({ prompt, n, trace }) {
    api.SetTrace(trace);
    const start = JSON.parse(api.Start(prompt, n, ['--temp', '0']));
    if (start.error) throw new Error(start.error);
    let r = JSON.parse(api.Next(1)); // the prompt and the first token
    const t0 = performance.now();
    while (!r.done) { r = JSON.parse(api.Next(1)); if (r.error) throw new Error(r.error); }
    const ms = performance.now() - t0;
    const m = JSON.parse(api.Memory());
    return { generated: r.generated, tps: (r.generated - 1) / (ms / 1000), kernels: m.kernels, calls: m.compiledCalls };
  },
  // Prompt evaluation in one batch (and the first token), no trace: prompt tokens per second.
  prefill({ prompt }) {
    api.SetTrace(false);
    const start = JSON.parse(api.Start(prompt, 1, ['--temp', '0', '--batch', '512']));
    if (start.error) throw new Error(start.error);
    const t0 = performance.now();
    const r = JSON.parse(api.Next(1));
    const ms = performance.now() - t0;
    if (r.error) throw new Error(r.error);
    return { promptTokens: start.promptTokens, tps: start.promptTokens / (ms / 1000) };
  },
  unload() { api.Unload(); return true; },
};

onmessage = async (e) => {
  const { id, type, ...args } = e.data;
  try { postMessage({ id, result: await handlers[type](args) }); }
  catch (err) { postMessage({ id, error: String(err?.message ?? err) }); }
};
