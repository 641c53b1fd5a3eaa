using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using MicroLm.IO;

namespace MicroLm.Cli;

/// <summary>Fetches model files into a cache directory: Hugging Face repositories (-hf OWNER/REPO[:FILE])
/// and plain URLs (--model-url). A file is downloaded to "NAME.part" (resumed with an HTTP Range request
/// after a dropped connection, in this run or the next), checked against the SHA-256 the server publishes
/// (Hugging Face's X-Linked-Etag for LFS files, or an ETag that is a SHA-256), and only then renamed to
/// its name: a file in the cache is complete and verified, and is used without the network.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("browser")]
public sealed class ModelDownloader(string cacheDirectory, string endpoint, string? token, TextWriter progress)
{
    private const int Attempts = 4;
    private const int MaxRedirects = 10;

    /// <summary>MICROLM_CACHE, else the platform's cache folder (XDG_CACHE_HOME or ~/.cache on Linux,
    /// ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows), plus "microlm".</summary>
    public static string DefaultCacheDirectory()
    {
        if (Environment.GetEnvironmentVariable("MICROLM_CACHE") is { Length: > 0 } explicitDir) return explicitDir;
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string baseDir;
        if (OperatingSystem.IsWindows()) baseDir = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        else if (OperatingSystem.IsMacOS()) baseDir = Path.Combine(home, "Library", "Caches");
        else baseDir = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(home, ".cache");
        return Path.Combine(baseDir, "microlm");
    }

    public static ModelDownloader FromEnvironment(TextWriter progress) => new(
        DefaultCacheDirectory(),
        Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : "https://huggingface.co",
        Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } t ? t : null,
        progress);

    /// <summary>-hf OWNER/REPO[:FILE]: FILE is a path in the repository; without it (or with a quantization tag such
    /// as Q8_0 instead) the repository's file list chooses the GGUF file.</summary>
    public string FromHuggingFace(string spec)
    {
        string repo = spec, file = "";
        int colon = spec.IndexOf(':');
        if (colon >= 0) { repo = spec[..colon]; file = spec[(colon + 1)..]; }
        var parts = repo.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p is "." or ".." || p.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))))
            throw new UsageException($"-hf expects OWNER/REPO[:FILE], got '{spec}'");
        if (!file.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            string? cached = CachedChoice(repo, file);
            file = cached ?? ChooseFile(repo, file);
        }
        CheckRelative(file);
        string target = Path.Combine(cacheDirectory, "hf", parts[0], parts[1], Path.Combine(file.Split('/')));
        if (File.Exists(target)) return target;
        string url = $"{endpoint.TrimEnd('/')}/{repo}/resolve/main/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}";
        Fetch(url, target, $"{repo}:{file}");
        return target;
    }

    /// <summary>--model-url URL: cached under a name made from the URL's hash and its last path segment.</summary>
    public string FromUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new UsageException($"--model-url expects an http(s) URL, got '{url}'");
        string name = Path.GetFileName(uri.AbsolutePath);
        if (name.Length == 0 || name.Any(c => Path.GetInvalidFileNameChars().Contains(c))) name = "model.gguf";
        string hash = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(url)))[..16];
        string target = Path.Combine(cacheDirectory, "url", $"{hash}-{name}");
        if (File.Exists(target)) return target;
        Fetch(url, target, name);
        return target;
    }

    private static void CheckRelative(string file)
    {
        if (file.Length == 0 || file.StartsWith('/') || file.Contains('\\') || file.Split('/').Any(s => s is "" or "." or ".."))
            throw new UsageException($"'{file}' is not a file path inside the repository");
    }

    // A choice made earlier (by tag) is remembered beside the files so that a cached model runs offline.
    private string ChoicePath(string repo, string tag) =>
        Path.Combine(cacheDirectory, "hf", Path.Combine(repo.Split('/')), $".choice-{(tag.Length == 0 ? "default" : tag.ToLowerInvariant())}");

    private string? CachedChoice(string repo, string tag)
    {
        string p = ChoicePath(repo, tag);
        if (!File.Exists(p)) return null;
        string file = File.ReadAllText(p).Trim();
        return File.Exists(Path.Combine(cacheDirectory, "hf", Path.Combine(repo.Split('/')), Path.Combine(file.Split('/')))) ? file : null;
    }

    private string ChooseFile(string repo, string tag)
    {
        using var client = Client();
        using var response = Send(client, $"{endpoint.TrimEnd('/')}/api/models/{repo}", null, out _);
        if (response.StatusCode != HttpStatusCode.OK) throw Failure(response, repo);
        using var doc = JsonDocument.Parse(response.Content.ReadAsStream());
        var files = new List<string>();
        if (doc.RootElement.TryGetProperty("siblings", out var siblings) && siblings.ValueKind == JsonValueKind.Array)
            foreach (var s in siblings.EnumerateArray())
                if (s.TryGetProperty("rfilename", out var f) && f.GetString() is { } name && name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                    files.Add(name);
        files.Sort(StringComparer.Ordinal);
        if (files.Count == 0) throw new MicroLmException($"{repo} has no .gguf file");
        string? pick;
        if (tag.Length > 0)
            pick = files.FirstOrDefault(f => Path.GetFileNameWithoutExtension(f).Split('-', '.', '_').Any(p => p.Equals(tag, StringComparison.OrdinalIgnoreCase)))
                ?? files.FirstOrDefault(f => f.Contains(tag, StringComparison.OrdinalIgnoreCase))
                ?? throw new MicroLmException($"{repo} has no .gguf file matching '{tag}' (files: {string.Join(", ", files)})");
        else if (files.Count == 1) pick = files[0];
        else pick = new[] { "Q8_0", "Q4_K_M", "Q4_0", "F16", "F32" }
            .Select(q => files.FirstOrDefault(f => f.Contains(q, StringComparison.OrdinalIgnoreCase))).FirstOrDefault(f => f != null) ?? files[0];
        CheckRelative(pick);
        string choice = ChoicePath(repo, tag);
        Directory.CreateDirectory(Path.GetDirectoryName(choice)!);
        SafeFile.WriteAllBytes(choice, System.Text.Encoding.UTF8.GetBytes(pick + "\n"));
        return pick;
    }

    private HttpClient Client() => new(new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>Follows redirects by hand, so that the first response's X-Linked-Etag / X-Linked-Size (the LFS
    /// object's SHA-256 and size) are seen, and the token is sent only to the endpoint's own host.</summary>
    private HttpResponseMessage Send(HttpClient client, string url, long? from, out (string? Sha256, long? Size) published)
    {
        published = (null, null);
        var origin = new Uri(url);
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.UserAgent.ParseAdd("microlm/1.0");
            if (token != null && new Uri(url).Host == origin.Host) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (from is > 0) request.Headers.Range = new RangeHeaderValue(from, null);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var response = client.Send(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            published.Sha256 ??= Sha256Of(Header(response, "X-Linked-Etag"));
            published.Size ??= long.TryParse(Header(response, "X-Linked-Size"), NumberStyles.None, CultureInfo.InvariantCulture, out long s) ? s : null;
            int code = (int)response.StatusCode;
            if (code is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                url = new Uri(new Uri(url), location).ToString();
                response.Dispose();
                continue;
            }
            published.Sha256 ??= Sha256Of(response.Headers.ETag?.Tag);
            return response;
        }
        throw new MicroLmException($"too many redirects fetching {origin}");
    }

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;

    /// <summary>An entity tag that is a SHA-256 ("…64 hex…", possibly weak): Hugging Face's LFS objects.</summary>
    private static string? Sha256Of(string? etag)
    {
        if (etag == null) return null;
        string t = etag.Trim();
        if (t.StartsWith("W/", StringComparison.Ordinal)) t = t[2..];
        t = t.Trim('"').ToLowerInvariant();
        return t.Length == 64 && t.All(char.IsAsciiHexDigit) ? t : null;
    }

    private static Exception Failure(HttpResponseMessage r, string what) => (int)r.StatusCode switch
    {
        404 => new MicroLmException($"{what}: not found (HTTP 404)"),
        401 or 403 => new MicroLmException($"{what}: access denied (HTTP {(int)r.StatusCode}); for a gated or private repository set HF_TOKEN"),
        _ => new MicroLmException($"{what}: HTTP {(int)r.StatusCode} {r.ReasonPhrase}"),
    };

    private void Fetch(string url, string target, string what)
    {
        string part = target + ".part";
        using var client = Client();
        string? sha = null;
        for (int attempt = 1; ; attempt++)
        {
            long have = File.Exists(part) ? new FileInfo(part).Length : 0;
            try
            {
                using var response = Send(client, url, have, out var published);
                sha ??= published.Sha256;
                if (published.Sha256 != null && published.Sha256 != sha)
                {   // the file changed on the server since the partial download began
                    File.Delete(part);
                    sha = published.Sha256;
                    continue;
                }
                int code = (int)response.StatusCode;
                if (code == 416 && have > 0 && published.Size == have) { /* already complete */ }
                else if (code is not (200 or 206))
                {
                    throw Failure(response, what);
                }
                else
                {
                    long start = 0;
                    if (code == 206)
                    {
                        start = response.Content.Headers.ContentRange?.From ?? -1;
                        if (start != have) throw new MicroLmException($"{what}: the server resumed at byte {start}, not {have}");
                    }
                    long? total = published.Size ?? (response.Content.Headers.ContentLength is { } len ? start + len : null);
                    Copy(response, part, start, total, what);
                }
                long size = new FileInfo(part).Length;
                if (published.Size is { } expectedSize && size != expectedSize)
                    throw new IOException($"{what}: got {size} bytes, the server announced {expectedSize}");
                // Flushed, verified (a mismatch deletes it), then atomically renamed: a file in the cache is whole.
                SafeFile.Promote(part, target, check: p => Verify(p, sha, what));
                return;
            }
            catch (Exception e) when (e is IOException or HttpRequestException or TaskCanceledException && attempt < Attempts)
            {
                progress.WriteLine($"\nmicrolm: {what}: connection lost ({e.Message.Split('\n')[0]}), resuming (attempt {attempt + 1} of {Attempts})");
                Thread.Sleep(200 * attempt);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or TaskCanceledException)
            {
                throw new MicroLmException($"{what}: download failed after {Attempts} attempts: {e.Message.Split('\n')[0]} (the partial file is kept and resumed next time)");
            }
        }
    }

    private void Copy(HttpResponseMessage response, string part, long start, long? total, string what)
    {
        using var input = response.Content.ReadAsStream();
        Directory.CreateDirectory(Path.GetDirectoryName(part)!);
        using var output = new FileStream(part, start == 0 ? FileMode.Create : FileMode.Append, FileAccess.Write, FileShare.None);
        var buffer = new byte[1 << 16];
        long done = start, lastShown = -1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int n;
        while ((n = input.Read(buffer)) > 0)
        {
            output.Write(buffer, 0, n);
            done += n;
            long tick = clock.ElapsedMilliseconds / 200;
            if (tick != lastShown) { lastShown = tick; Show(what, done, start, total, clock.Elapsed.TotalSeconds); }
        }
        Show(what, done, start, total, clock.Elapsed.TotalSeconds);
        progress.WriteLine();
        if (total is { } t && done < t) throw new IOException($"the connection closed at byte {done} of {t}");
    }

    private void Show(string what, long done, long start, long? total, double seconds)
    {
        double rate = seconds > 0 ? (done - start) / seconds : 0;
        string bar = "";
        if (total is > 0)
        {
            int filled = (int)(30 * done / total.Value);
            bar = $"[{new string('#', filled)}{new string('.', 30 - filled)}] {100.0 * done / total.Value,5:F1}% ";
        }
        progress.Write(string.Create(CultureInfo.InvariantCulture,
            $"\rmicrolm: downloading {what} {bar}{done / 1e6:F1}{(total is { } t ? $"/{t / 1e6:F1}" : "")} MB {rate / 1e6:F1} MB/s   "));
    }

    private static void Verify(string part, string? sha, string what)
    {
        if (sha == null) return; // nothing published to check against (a plain URL): the size check above is all there is
        string actual;
        using (var fs = File.OpenRead(part)) actual = Convert.ToHexStringLower(SHA256.HashData(fs));
        if (actual != sha)
            throw new MicroLmException($"{what}: checksum mismatch (SHA-256 {actual}, the server published {sha}); the download was discarded");
    }
}
