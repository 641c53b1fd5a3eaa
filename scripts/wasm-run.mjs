// Runs a `microlm` command line inside the WebAssembly build under Node and prints exactly what the
// native CLI prints. Usage: node scripts/wasm-run.mjs APP_DIR ARGS...   (APP_DIR: the published
// wwwroot that holds _framework/). Files named by -m, --tokenizer, -f and --expect are copied into
// the Emscripten file system at the same path; --dump-logits is copied back out afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [appDir, ...args] = process.argv.slice(2);
const { dotnet } = await import(pathToFileURL(path.resolve(appDir, '_framework/dotnet.js')).href);
const { registerKernelImports, installKernels } = await import(pathToFileURL(path.resolve(appDir, 'kernels.js')).href);
const runtime = await dotnet.create();
const FS = runtime.Module.FS;
registerKernelImports(runtime);
const exports = await runtime.getAssemblyExports('MicroLm.Web');
// MICROLM_KERNELS: auto (compiled WebAssembly SIMD kernels, else the C# ones), interpreter (C# only), or
// compiled (fail unless the compiled kernels ran). MICROLM_KERNELS_REPORT=1 names the path on stderr.
const kernelMode = process.env.MICROLM_KERNELS ?? 'auto';
const kernels = await installKernels(runtime, exports.MicroLm.Web.Api, kernelMode === 'interpreter' ? 'interpreter' : 'auto');
if (kernelMode === 'compiled' && kernels.path !== 'wasm-simd') {
  process.stderr.write(`wasm-run: the compiled kernels could not be instantiated: ${kernels.reason}\n`);
  process.exit(70);
}

// The managed code sees the same paths the native CLI would: absolute paths as given, relative
// ones under the same working directory.
const cwd = process.cwd();
FS.mkdirTree(cwd);
FS.chdir(cwd);
const inputs = new Set(['-m', '--model', '--tokenizer', '-z', '-f', '--file', '--expect']);
let dump = null;
for (let i = 0; i + 1 < args.length; i++) {
  if (inputs.has(args[i])) {
    const file = args[i + 1];
    if (fs.existsSync(file) && fs.statSync(file).isFile()) {
      const abs = path.resolve(cwd, file);
      FS.mkdirTree(path.dirname(abs));
      FS.writeFile(abs, fs.readFileSync(file));
    }
  }
  if (args[i] === '--dump-logits') {
    dump = args[i + 1];
    FS.mkdirTree(path.dirname(path.resolve(cwd, dump)));
  }
}
const [code, out, err] = exports.MicroLm.Web.Api.RunCli(args);
if (dump !== null) {
  try { fs.writeFileSync(dump, FS.readFile(path.resolve(cwd, dump))); } catch { /* not written */ }
}
process.stdout.write(out);
process.stderr.write(err);
const calls = JSON.parse(exports.MicroLm.Web.Api.Memory()).compiledCalls;
if (process.env.MICROLM_KERNELS_REPORT === '1') process.stderr.write(`wasm-run: kernels ${kernels.path}, ${calls} compiled matmuls${kernels.reason ? ` (${kernels.reason})` : ''}\n`);
if (kernelMode === 'compiled' && Number(code) === 0 && calls === 0) {
  process.stderr.write('wasm-run: MICROLM_KERNELS=compiled but no matmul ran through the compiled kernels\n');
  process.exit(70);
}
process.stdout.on('finish', () => {});
process.exitCode = Number(code);
// The runtime keeps timers alive; leave once the output is flushed.
await new Promise((resolve) => process.stdout.write('', resolve));
await new Promise((resolve) => process.stderr.write('', resolve));
process.exit(Number(code));
