// Prefill profile for tests/browser/prefill-profile.mjs: the published app in this page (main thread), the kernel
// module's JS imports wrapped with timers (mode "timed"), a prompt of N tokens evaluated N times in one batch.
import { dotnet } from '/_framework/dotnet.js';
window.runProf = async ({ url, ntok, runs, mode }) => {
  const out = [];
  const runtime = await dotnet.create();
  let kernels, attention, utilities, names, unames, instance;
  const T = {}; const C = {};
  const timed = mode === 'timed';
  const time = (k, fn) => { if (!timed) return fn(); const t0 = performance.now(); const r = fn(); T[k] = (T[k] ?? 0) + performance.now() - t0; C[k] = (C[k] ?? 0) + 1; return r; };
  runtime.setModuleImports('microlm-kernels', {
    matmul: (f, w, rowBytes, rows, n, xs, count, o, stride) => time('mm ' + names[f] + (count > 1 ? ' batch' : ''), () => kernels[f](w, rowBytes, rows, n, xs, count, o, stride)),
    attention: (...a) => time('attention', () => attention(...a)),
    attentionBatch: (a, s) => time('attention_batch', () => instance.exports.attention_batch(a, s)),
    call: (f, a, b, c, d) => time(unames[f], () => utilities[f](a, b, c, d)),
  });
  const api = (await runtime.getAssemblyExports('MicroLm.Web')).MicroLm.Web.Api;
  const heap = runtime.localHeapViewU8().buffer;
  const memory = [runtime.Module.wasmExports?.memory, ...Object.values(runtime.Module)].find((m) => m instanceof WebAssembly.Memory && m.buffer === heap);
  ({ instance } = await WebAssembly.instantiate(api.KernelModule(), { env: { memory } }));
  names = api.KernelNames().split(' '); kernels = names.map((n) => instance.exports[n]);
  attention = instance.exports.attention; unames = api.KernelUtilities().split(' '); utilities = unames.map((n) => instance.exports[n]);
  api.UseCompiledKernels(true);
  api.SetIgnoreEos(true);
  const info = JSON.parse(api.LoadModel(new Uint8Array(await (await fetch(url)).arrayBuffer())));
  if (info.error) return info.error;
  const words = 'Once upon a time there was a little girl named Lily who loved to play outside in the park with her friends and her dog'.split(' ');
  let prompt = ''; let i = 0; while (api.Tokenize(prompt, true).split(' ').length < ntok) prompt += words[i++ % words.length] + ' ';
  for (let r = 0; r < runs; r++) {
    for (const k in T) { delete T[k]; delete C[k]; }
    api.SetTrace(false);
    const start = JSON.parse(api.Start(prompt, 1, ['--temp', '0', '--batch', '512']));
    const t0 = performance.now();
    JSON.parse(api.Next(1));
    const ms = performance.now() - t0;
    const k = Object.values(T).reduce((a, b) => a + b, 0);
    out.push(`run ${r}: ${start.promptTokens} tokens ${ms.toFixed(1)} ms (${(start.promptTokens / ms * 1000).toFixed(0)} tok/s)` + (timed ? `; in kernels ${k.toFixed(1)} ms, outside ${(ms - k).toFixed(1)} ms` : ''));
    if (timed && r === runs - 1) for (const key of Object.keys(T).sort((a, b) => T[b] - T[a])) out.push(`   ${key}: ${T[key].toFixed(2)} ms, ${C[key]} calls`);
  }
  return out.join('\n');
};
