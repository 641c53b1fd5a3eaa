// The benchmark page: MicroLm (in its own worker, as the app runs it) and wllama (which runs llama.cpp
// in its own worker) loaded side by side; browser-bench.mjs calls window.benchFile for each model.
import { Wllama } from '/wllama/index.js';

const log = (s) => { document.getElementById('log').textContent += s + '\n'; console.log(s); };

function microlm() {
  const worker = new Worker('/bench/microlm-worker.js', { type: 'module' });
  let next = 0;
  const waiting = new Map();
  worker.onmessage = (e) => {
    const { id, result, error } = e.data;
    const w = waiting.get(id); waiting.delete(id);
    if (error) w.reject(new Error(error)); else w.resolve(result);
  };
  return (type, args = {}) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, { resolve, reject });
    worker.postMessage({ id, type, ...args });
  });
}

const ours = microlm();
window.benchInit = async (kernels) => ours('init', { kernels });

// A prompt of exactly `tokens` tokens for MicroLm's tokenizer (BOS included); wllama tokenizes the same text.
async function promptOf(tokens) {
  const words = 'Once upon a time there was a little girl named Lily who loved to play in the park with her dog Max and her friends from school every sunny day'.split(' ');
  let text = '';
  for (let i = 0; ; i++) {
    const candidate = text ? `${text} ${words[i % words.length]}` : words[0];
    if (await ours('tokenCount', { text: candidate }) > tokens) return text;
    text = candidate;
  }
}

window.benchFile = async ({ url, decodeTokens, prefillTokens }) => {
  const result = { url };
  const info = await ours('load', { url });
  // A model with a short training context (stories260K: 512 here, clamped lower by llama.cpp) gets shorter runs.
  decodeTokens = Math.min(decodeTokens, info.context - 8);
  prefillTokens = Math.min(prefillTokens, Math.floor(info.context / 2) - 8);
  result.decodeTokens = decodeTokens;
  result.prefillTokens = prefillTokens;
  const blob = await (await fetch(url)).blob();
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  await wllama.loadModel([blob], { n_threads: 1, n_ctx: Math.min(512, info.context), n_batch: 512, n_ubatch: 512, n_gpu_layers: 0, warmup: true });
  const longPrompt = await promptOf(prefillTokens);
  const opts = { temperature: 0, ignore_eos: true, cache_prompt: false };
  // Warm both, then one timed run each, alternating. MicroLm's warm-up is longer: the .NET runtime's
  // jiterpreter compiles hot interpreted code only after many passes, and with 8 warm-up tokens the first
  // timed decode ran partly cold (measured: a later run of the same decode was 1.5-2x faster).
  await ours('decode', { prompt: 'Hello', n: Math.min(64, decodeTokens), trace: false });
  await ours('prefill', { prompt: longPrompt });
  await wllama.createCompletion({ prompt: 'Hello', max_tokens: 8, ...opts });
  await wllama.createCompletion({ prompt: longPrompt, max_tokens: 1, ...opts });
  result.microlmDecode = await ours('decode', { prompt: 'Once upon a time', n: decodeTokens, trace: false });
  const wd = await wllama.createCompletion({ prompt: 'Once upon a time', max_tokens: decodeTokens, ...opts });
  result.wllamaDecode = { generated: wd.timings?.predicted_n, tps: wd.timings?.predicted_per_second };
  result.microlmPrefill = await ours('prefill', { prompt: longPrompt });
  const wp = await wllama.createCompletion({ prompt: longPrompt, max_tokens: 1, ...opts });
  result.wllamaPrefill = { promptTokens: wp.timings?.prompt_n, tps: wp.timings?.prompt_per_second };
  result.microlmDecodeTrace = await ours('decode', { prompt: 'Once upon a time', n: decodeTokens, trace: true });
  await wllama.exit();
  await ours('unload');
  log(JSON.stringify(result));
  return result;
};
log('bench page ready');
window.benchReady = true;
