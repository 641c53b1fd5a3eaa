using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using MicroLm.Cli;

namespace MicroLm.Tests.Cli;

/// <summary>-hf and --model-url against a loopback server that imitates the Hugging Face resolve endpoint:
/// a redirect to a file host with X-Linked-Etag / X-Linked-Size, Range requests, a dropped connection, a wrong
/// checksum, a 404, the file list API, the token, and a cached file used with the server gone.</summary>
public sealed class DownloadTests : IDisposable
{
    private readonly string _cache = Path.Combine(Path.GetTempPath(), $"microlm-cache-{Guid.NewGuid():N}");
    private readonly byte[] _file = MakeFile();

    private static byte[] MakeFile()
    {
        var b = new byte[300_000];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)(i * 31 + (i >> 9));
        return b;
    }

    public void Dispose() { if (Directory.Exists(_cache)) Directory.Delete(_cache, true); }

    private string Sha(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));

    private sealed record Request(string Method, string Path, Dictionary<string, string> Headers);

    /// <summary>A tiny HTTP/1.1 server on 127.0.0.1 with a random port; each connection serves one request.</summary>
    private sealed class Server : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Func<Request, Stream, bool> _handle;
        public readonly List<Request> Requests = [];
        public int Port { get; }
        private readonly Thread _thread;

        public Server(Func<Request, Stream, bool> handle)
        {
            _handle = handle;
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _thread = new Thread(Loop) { IsBackground = true };
            _thread.Start();
        }

        private void Loop()
        {
            while (true)
            {
                TcpClient client;
                try { client = _listener.AcceptTcpClient(); } catch { return; }
                using (client)
                {
                    try
                    {
                        var stream = client.GetStream();
                        var head = new StringBuilder();
                        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
                        {
                            int b = stream.ReadByte();
                            if (b < 0) break;
                            head.Append((char)b);
                        }
                        var lines = head.ToString().Split("\r\n");
                        var first = lines[0].Split(' ');
                        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                        foreach (var l in lines.Skip(1).Where(l => l.Contains(':'))) headers[l[..l.IndexOf(':')]] = l[(l.IndexOf(':') + 1)..].Trim();
                        var req = new Request(first[0], first[1], headers);
                        lock (Requests) Requests.Add(req);
                        if (_handle(req, stream)) stream.Flush();
                        else client.Client.LingerState = new LingerOption(true, 0); // reset: a dropped connection
                    }
                    catch (IOException) { }
                }
            }
        }

        public void Dispose() => _listener.Stop();
    }

    private static void Respond(Stream s, int code, string reason, IEnumerable<string> headers, byte[] body, int? cut = null)
    {
        var sb = new StringBuilder($"HTTP/1.1 {code} {reason}\r\n");
        foreach (var h in headers) sb.Append(h).Append("\r\n");
        sb.Append($"Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        s.Write(Encoding.ASCII.GetBytes(sb.ToString()));
        s.Write(body, 0, cut ?? body.Length);
    }

    /// <summary>Hub behaviour: resolve → 302 to the file host (another host name) with the LFS headers; the file host
    /// honours Range; the API lists the repository.</summary>
    private Server Hub(string? publishedSha = null, int dropOnce = -1)
    {
        int drops = dropOnce >= 0 ? 1 : 0;
        Server? server = null;
        server = new Server((req, s) =>
        {
            if (req.Path == "/api/models/owner/repo")
            {
                Respond(s, 200, "OK", ["Content-Type: application/json"],
                    Encoding.UTF8.GetBytes("""{"id":"owner/repo","siblings":[{"rfilename":"README.md"},{"rfilename":"tiny-F16.gguf"},{"rfilename":"tiny-Q8_0.gguf"}]}"""));
                return true;
            }
            if (req.Path is "/owner/repo/resolve/main/tiny-Q8_0.gguf" or "/owner/repo/resolve/main/sub/dir/tiny.gguf")
            {
                Respond(s, 302, "Found", [$"Location: http://localhost:{server!.Port}/cdn/blob", $"X-Linked-Etag: \"{publishedSha ?? Sha(_file)}\"",
                    $"X-Linked-Size: {_file.Length}", "ETag: \"0123456789abcdef0123456789abcdef01234567\""], []);
                return true;
            }
            if (req.Path == "/cdn/blob")
            {
                int from = 0;
                if (req.Headers.TryGetValue("Range", out var range)) from = int.Parse(range["bytes=".Length..].TrimEnd('-'));
                var body = _file[from..];
                var headers = new List<string> { "Accept-Ranges: bytes" };
                if (from > 0) headers.Add($"Content-Range: bytes {from}-{_file.Length - 1}/{_file.Length}");
                if (drops > 0 && from == 0) { drops--; Respond(s, 200, "OK", headers, body, dropOnce); return false; }
                Respond(s, from > 0 ? 206 : 200, from > 0 ? "Partial Content" : "OK", headers, body);
                return true;
            }
            Respond(s, 404, "Not Found", [], Encoding.ASCII.GetBytes("Entry not found"));
            return true;
        });
        return server;
    }

    private ModelDownloader Downloader(Server s, string? token = null) =>
        new(_cache, $"http://127.0.0.1:{s.Port}", token, TextWriter.Null);

    private string[] CacheFiles() => Directory.Exists(_cache) ? Directory.GetFiles(_cache, "*", SearchOption.AllDirectories) : [];

    [Fact]
    public void DownloadsVerifiesAndThenUsesTheCacheWithoutNetwork()
    {
        string path;
        using (var hub = Hub())
        {
            path = Downloader(hub, token: "secret").FromHuggingFace("owner/repo:tiny-Q8_0.gguf");
            Assert.Equal(_file, File.ReadAllBytes(path));
            // The token goes to the hub, not to the file host it redirects to.
            Assert.Equal("Bearer secret", hub.Requests[0].Headers["Authorization"]);
            Assert.False(hub.Requests[1].Headers.ContainsKey("Authorization"));
        }
        Assert.DoesNotContain(CacheFiles(), f => f.EndsWith(".part", StringComparison.Ordinal));
        // Server gone: the cached file is used as is.
        var nowhere = new ModelDownloader(_cache, "http://127.0.0.1:9", null, TextWriter.Null);
        Assert.Equal(path, nowhere.FromHuggingFace("owner/repo:tiny-Q8_0.gguf"));
    }

    [Fact]
    public void ADroppedConnectionIsResumedWithARangeRequest()
    {
        using var hub = Hub(dropOnce: 100_000);
        string path = Downloader(hub).FromHuggingFace("owner/repo:tiny-Q8_0.gguf");
        Assert.Equal(_file, File.ReadAllBytes(path));
        var ranges = hub.Requests.Where(r => r.Path == "/cdn/blob" && r.Headers.ContainsKey("Range")).ToList();
        Assert.NotEmpty(ranges);
        Assert.True(int.Parse(ranges[0].Headers["Range"]["bytes=".Length..].TrimEnd('-')) > 0);
    }

    [Fact]
    public void APartialFileFromAnEarlierRunIsResumed()
    {
        string part = Path.Combine(_cache, "hf", "owner", "repo", "sub", "dir", "tiny.gguf.part");
        Directory.CreateDirectory(Path.GetDirectoryName(part)!);
        File.WriteAllBytes(part, _file[..123_456]);
        using var hub = Hub();
        string path = Downloader(hub).FromHuggingFace("owner/repo:sub/dir/tiny.gguf");
        Assert.Equal(_file, File.ReadAllBytes(path));
        Assert.Equal("bytes=123456-", hub.Requests.Single(r => r.Path == "/cdn/blob").Headers["Range"]);
    }

    [Fact]
    public void AWrongChecksumIsOneErrorAndLeavesNoFile()
    {
        using var hub = Hub(publishedSha: new string('a', 64));
        var e = Assert.Throws<MicroLmException>(() => Downloader(hub).FromHuggingFace("owner/repo:tiny-Q8_0.gguf"));
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Empty(CacheFiles());
    }

    /// <summary>A cache on a file system that fills up mid-download (a 128 KiB tmpfs, the file is 300,000 bytes): one
    /// error, and no file under the model's name (the .part is kept for a resume once there is room).</summary>
    [Fact]
    public void AFullDiskMidDownloadIsOneErrorAndLeavesNoModelFile()
    {
        Directory.CreateDirectory(_cache);
        if (!SafeFileTests.TryMount(_cache, "128k")) return;
        try
        {
            using var hub = Hub();
            var e = Assert.Throws<MicroLmException>(() => Downloader(hub).FromHuggingFace("owner/repo:tiny-Q8_0.gguf"));
            Assert.Contains("No space left on device", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.All(CacheFiles(), f => Assert.EndsWith(".part", f));
            Assert.False(File.Exists(Path.Combine(_cache, "hf", "owner", "repo", "tiny-Q8_0.gguf")));
        }
        finally { SafeFileTests.Unmount(_cache); }
    }

    [Fact]
    public void NotFoundIsOneErrorAndLeavesNoFile()
    {
        using var hub = Hub();
        var e = Assert.Throws<MicroLmException>(() => Downloader(hub).FromHuggingFace("owner/repo:missing.gguf"));
        Assert.Equal("owner/repo:missing.gguf: not found (HTTP 404)", e.Message);
        Assert.Empty(CacheFiles());
    }

    [Fact]
    public void WithoutAFileTheRepositoryListChoosesOne()
    {
        using (var hub = Hub())
        {
            string path = Downloader(hub).FromHuggingFace("owner/repo");
            Assert.EndsWith("tiny-Q8_0.gguf", path);
        }
        var nowhere = new ModelDownloader(_cache, "http://127.0.0.1:9", null, TextWriter.Null);
        Assert.EndsWith("tiny-Q8_0.gguf", nowhere.FromHuggingFace("owner/repo")); // the choice is cached too
    }

    [Fact]
    public void AModelUrlIsDownloadedAndCached()
    {
        string path, url;
        using (var hub = Hub(dropOnce: 50_000))
        {
            url = $"http://127.0.0.1:{hub.Port}/cdn/blob";
            path = Downloader(hub).FromUrl(url);
            Assert.Equal(_file, File.ReadAllBytes(path));
        }
        var nowhere = new ModelDownloader(_cache, "http://127.0.0.1:9", null, TextWriter.Null);
        Assert.Equal(path, nowhere.FromUrl(url)); // the server is gone: the cached file answers
    }

    [Fact]
    public void ThroughTheCliAMissingFileIsOneLine()
    {
        using var hub = Hub();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        string? oldCache = Environment.GetEnvironmentVariable("MICROLM_CACHE"), oldEndpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT");
        try
        {
            Environment.SetEnvironmentVariable("MICROLM_CACHE", _cache);
            Environment.SetEnvironmentVariable("HF_ENDPOINT", $"http://127.0.0.1:{hub.Port}");
            int code = CliMain.Run(["run", "-hf", "owner/repo:nothing.gguf", "-p", "x"], stdout, stderr);
            Assert.Equal(1, code);
            Assert.Equal("microlm: error: owner/repo:nothing.gguf: not found (HTTP 404)\n", stderr.ToString());
            Assert.Empty(CacheFiles());
        }
        finally
        {
            Environment.SetEnvironmentVariable("MICROLM_CACHE", oldCache);
            Environment.SetEnvironmentVariable("HF_ENDPOINT", oldEndpoint);
        }
    }
}
