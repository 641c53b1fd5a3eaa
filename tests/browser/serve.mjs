// A tiny static file server for the published page, on 127.0.0.1 only.
// Usage: node serve.mjs APP_DIR [PORT] [MODELS_DIR]   (PORT 0 or absent: any free port)
// Serves APP_DIR at / and, if given, MODELS_DIR at /models/. Prints "listening URL" when ready.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.dat': 'application/octet-stream',
  '.gguf': 'application/octet-stream', '.png': 'image/png', '.map': 'application/json',
};

// options.mounts: more [prefix, dir] pairs served before APP_DIR (e.g. ['/wllama/', dir]);
// options.isolate: send COOP/COEP headers (cross-origin isolation, which wasm threads need).
export function serve(appDir, port = 0, modelsDir = null, options = {}) {
  const roots = [['/models/', modelsDir], ...(options.mounts ?? []), ['/', appDir]].filter(([, dir]) => dir);
  const isolation = options.isolate ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let pathname = decodeURIComponent(url.pathname);
    if (pathname.endsWith('/')) pathname += 'index.html';
    for (const [prefix, dir] of roots) {
      if (!pathname.startsWith(prefix)) continue;
      const base = path.resolve(dir);
      const file = path.resolve(base, '.' + pathname.slice(prefix.length - 1));
      if (!file.startsWith(base + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) break;
      // Precompressed assets (dotnet publish writes .br and .gz next to each file).
      const accept = String(req.headers['accept-encoding'] ?? '');
      let body = file, encoding = null;
      if (/\bbr\b/.test(accept) && fs.existsSync(file + '.br')) { body = file + '.br'; encoding = 'br'; }
      else if (/\bgzip\b/.test(accept) && fs.existsSync(file + '.gz')) { body = file + '.gz'; encoding = 'gzip'; }
      const headers = {
        'Content-Type': types[path.extname(file)] ?? 'application/octet-stream',
        'Content-Length': fs.statSync(body).size,
        'Cache-Control': 'no-cache',
        ...isolation,
      };
      if (encoding) { headers['Content-Encoding'] = encoding; headers['Vary'] = 'Accept-Encoding'; }
      res.writeHead(200, headers);
      if (req.method === 'HEAD') { res.end(); return; }
      fs.createReadStream(body).pipe(res);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found\n');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [appDir, port, modelsDir] = process.argv.slice(2);
  if (!appDir) { console.error('usage: node serve.mjs APP_DIR [PORT] [MODELS_DIR]'); process.exit(2); }
  const server = await serve(appDir, Number(port ?? 0), modelsDir ?? null);
  console.log(`listening http://127.0.0.1:${server.address().port}/`);
}
