// The page: UI only. The model runs in worker.js, so typing, scrolling and the Stop button stay
// responsive while tokens are generated.
const $ = (id) => document.getElementById(id);
// ?kernels=interpreter is passed on to the worker (to compare the two paths).
const kernelsParam = new URL(location.href).searchParams.get('kernels');
const worker = new Worker(new URL(`./worker.js${kernelsParam ? `?kernels=${encodeURIComponent(kernelsParam)}` : ''}`, import.meta.url), { type: 'module' });

const state = { ready: false, model: null, busy: false };

function mib(bytes) {
  if (bytes == null) return '–';
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(2)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function setStatus(text) { $('status').textContent = text; }

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function showMemory(m) {
  if (!m) return;
  $('mem-model').textContent = mib(m.modelBytes);
  $('mem-kv').textContent = mib(m.kvCacheBytes);
  $('mem-heap').textContent = mib(m.heapBytes);
  $('mem-wasm').textContent = mib(m.wasmBytes);
  if (m.kernels) {
    $('kernels').textContent = m.kernels === 'wasm-simd'
      ? `compiled WebAssembly SIMD (${m.compiledCalls} matmuls)`
      : `interpreter${m.kernelReason ? ` (${m.kernelReason})` : ''}`;
    $('kernels').dataset.path = m.kernels;
    $('kernels').dataset.calls = String(m.compiledCalls);
  }
}

function updateButtons() {
  $('generate').disabled = !state.ready || !state.model || state.busy;
  $('stop').disabled = !state.busy;
  $('load-url').disabled = !state.ready || state.busy;
  $('load-default').disabled = !state.ready || state.busy;
  $('file').disabled = !state.ready || state.busy;
}

function options() {
  // The CLI's own flags: the runtime parses them exactly as `microlm verify` does.
  const flags = [['--temp', 'temp'], ['--top-k', 'top-k'], ['--top-p', 'top-p'], ['--min-p', 'min-p'],
    ['--repeat-penalty', 'repeat-penalty'], ['--seed', 'seed']];
  const out = [];
  for (const [flag, id] of flags) {
    const v = $(id).value.trim();
    if (v !== '') out.push(flag, v);
  }
  return out;
}

function load(msg) {
  state.busy = true;
  state.model = null;
  showError('');
  $('model-info').textContent = `Loading ${msg.name ?? msg.url}…`;
  setStatus('Loading the model…');
  updateButtons();
  worker.postMessage(msg, msg.bytes ? [msg.bytes] : []);
}

$('file').addEventListener('change', async () => {
  const file = $('file').files[0];
  if (!file) return;
  load({ type: 'load', name: file.name, bytes: await file.arrayBuffer(), backend: $('backend').value });
});

$('load-url').addEventListener('click', () => {
  const url = $('url').value.trim();
  if (url) load({ type: 'load', url, name: url.split('/').pop(), backend: $('backend').value });
});

// The default model: trained by MicroLm itself (models/README.md), published beside the page by scripts/web-build.
$('load-default').addEventListener('click', () => load({ type: 'load', url: 'microlm-stories.gguf', name: 'microlm-stories.gguf' }));

$('generate').addEventListener('click', () => {
  state.busy = true;
  showError('');
  $('output').textContent = '';
  $('trace').textContent = '…';
  $('tps').textContent = '–';
  $('tokens').textContent = '–';
  setStatus('Evaluating the prompt…');
  updateButtons();
  const maxTokens = Math.max(1, parseInt($('max-tokens').value, 10) || 1);
  worker.postMessage({ type: 'generate', prompt: $('prompt').value, maxTokens, options: options() });
});

$('stop').addEventListener('click', () => worker.postMessage({ type: 'stop' }));

worker.onmessage = (e) => {
  const m = e.data;
  showMemory(m.memory);
  switch (m.type) {
    case 'ready':
      state.ready = true;
      setStatus('Ready: load the default model, pick a GGUF file or give a URL.');
      break;
    case 'loaded': {
      state.busy = false;
      state.model = m.info;
      const i = m.info;
      $('model-info').textContent = `${m.name}: ${i.architecture}${i.name && i.name !== i.architecture ? ` “${i.name}”` : ''}, ${i.layers} layers, dim ${i.dim}, vocab ${i.vocab}, context ${i.context}, ${i.tensors} tensors, ${i.backend ?? 'float'} backend`;
      setStatus('Model loaded.');
      break;
    }
    case 'started': {
      const span = document.createElement('span');
      span.className = 'prompt';
      span.textContent = m.promptText;
      $('output').append(span, document.createTextNode(''));
      $('tokens').textContent = `prompt ${m.promptTokens}`;
      setStatus('Generating…');
      break;
    }
    case 'tokens':
      $('output').lastChild.appendData(m.text);
      $('tps').textContent = m.generated > 1 ? `${m.tps.toFixed(1)} tok/s` : '–';
      $('tokens').textContent = `${m.generated} generated`;
      break;
    case 'done':
      state.busy = false;
      $('trace').textContent = m.trace;
      $('tps').textContent = m.generated > 1 ? `${m.tps.toFixed(1)} tok/s` : '–';
      $('tokens').textContent = `${m.generated} generated in ${(m.ms / 1000).toFixed(2)} s`;
      setStatus({ max: 'Done (token limit).', eos: 'Done (end of text).', context: 'Done (context full).', stopped: 'Stopped.' }[m.stop] ?? 'Done.');
      document.body.dataset.done = String(Date.now());
      break;
    case 'error':
      state.busy = false;
      if (m.during === 'load') {
        state.model = null;
        $('model-info').textContent = 'No model loaded.';
      }
      if (m.during === 'generate') $('trace').textContent = '–';
      showError(m.message);
      setStatus(m.during === 'start' ? 'The runtime failed to start.' : 'Ready.');
      break;
  }
  updateButtons();
};
worker.onerror = (e) => { showError(`worker error: ${e.message}`); };
