// The runtime lives in this worker, so the page never freezes while a model loads or generates.
// Messages in: load {bytes|url, backend}, generate {prompt, maxTokens, options}, stop.
// Messages out: ready, loaded {info, memory}, started {promptText, promptTokens}, tokens {text,
// generated, tps, memory}, done {stop, trace, tps, memory}, error {message, during}.
import { dotnet } from './_framework/dotnet.js';
import { registerKernelImports, installKernels } from './kernels.js';

let api = null;
let runtime = null;
let stopRequested = false;
let kernelPath = { path: 'interpreter', reason: 'not started' };

function memory() {
  const m = JSON.parse(api.Memory());
  m.wasmBytes = runtime.localHeapViewU8().buffer.byteLength;
  m.kernelReason = kernelPath.reason;
  return m;
}

async function init() {
  try {
    runtime = await dotnet.create();
    registerKernelImports(runtime);
    const exports = await runtime.getAssemblyExports('MicroLm.Web');
    api = exports.MicroLm.Web.Api;
    // Compiled WebAssembly SIMD kernels unless the page's URL asks for ?kernels=interpreter.
    kernelPath = await installKernels(runtime, api, new URL(self.location.href).searchParams.get('kernels') ?? 'auto');
    postMessage({ type: 'ready', memory: memory() });
  } catch (e) {
    postMessage({ type: 'error', during: 'start', message: `the runtime did not start: ${e.message ?? e}` });
  }
}

async function load(msg) {
  let bytes = msg.bytes;
  if (!bytes) {
    const response = await fetch(msg.url);
    if (!response.ok) throw new Error(`${msg.url}: HTTP ${response.status} ${response.statusText}`);
    bytes = await response.arrayBuffer();
  }
  // One copy, into the managed heap; the JS buffer can go right after.
  const info = JSON.parse(api.LoadModelWith(new Uint8Array(bytes), msg.backend ?? 'float'));
  bytes = null;
  if (info.error) {
    postMessage({ type: 'error', during: 'load', message: `${msg.name ?? msg.url} is not a usable model: ${info.error}`, memory: memory() });
    return;
  }
  postMessage({ type: 'loaded', info, name: msg.name ?? msg.url, memory: memory() });
}

async function generate(msg) {
  const start = JSON.parse(api.Start(msg.prompt, msg.maxTokens, msg.options));
  if (start.error) {
    postMessage({ type: 'error', during: 'generate', message: start.error });
    return;
  }
  postMessage({ type: 'started', ...start, memory: memory() });
  stopRequested = false;
  const t0 = performance.now();
  let tFirst = 0, generated = 0, text = '';
  let result = null;
  try {
    while (!result) {
      // Tokens for ~25 ms, then one message to the page and a pause for a possible 'stop'.
      const sliceStart = performance.now();
      let r;
      do {
        r = JSON.parse(api.Next(1));
        if (r.error) throw new Error(r.error);
        generated = r.generated;
        if (generated === 1 && tFirst === 0) tFirst = performance.now();
        text += r.text;
      } while (!r.done && performance.now() - sliceStart < 25);
      const now = performance.now();
      const tps = generated > 1 ? (generated - 1) / ((now - tFirst) / 1000) : 0;
      postMessage({ type: 'tokens', text, generated, tps, memory: memory() });
      text = '';
      if (r.done) { result = { stop: r.stop, tps, generated, ms: now - t0 }; break; }
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (stopRequested) result = { stop: 'stopped', tps, generated, ms: now - t0 };
    }
    postMessage({ type: 'done', ...result, trace: api.TraceHash(), memory: memory() });
  } catch (e) {
    postMessage({ type: 'error', during: 'generate', message: e.message ?? String(e) });
  }
}

async function handle(msg) {
  if (!api) return;
  try {
    if (msg.type === 'load') await load(msg);
    else if (msg.type === 'generate') await generate(msg);
  } catch (e) {
    postMessage({ type: 'error', during: msg.type, message: e.message ?? String(e) });
  }
}

// One task at a time, in order; 'stop' alone jumps the queue.
let chain = init();
onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'stop') { stopRequested = true; return; }
  chain = chain.then(() => handle(msg));
};
