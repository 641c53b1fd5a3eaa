namespace MicroLm.IO;

/// <summary>Writes a file so that it either appears whole or not at all: the bytes go to a temporary
/// file in the target's folder (same file system, so the final rename is atomic), which is flushed to
/// disk, optionally checked (e.g. loaded back), and only then renamed over the target. If anything
/// fails — a full disk, a crash of the writer, a check that refuses the result — the temporary file is
/// deleted and an existing target is untouched. Every file the project writes goes through here
/// (GGUF output of convert, convert hf and quantize, training checkpoints and models, logit dumps, perplexity
/// baselines, downloads through <see cref="Promote"/>).
/// <code>
/// using (var f = SafeFile.Create(path)) { f.Stream.Write(bytes); f.Commit(); }
/// SafeFile.WriteAllBytes(path, bytes, check: tmp => Model.Load(tmp).Dispose());
/// </code></summary>
internal sealed class SafeFile : IDisposable
{
    private readonly FileStream _file;
    private bool _done;

    /// <summary>The file being written. Write to it, then call <see cref="Commit"/>.</summary>
    public Stream Stream { get; }
    /// <summary>The final path (absolute).</summary>
    public string Path { get; }
    /// <summary>Where the bytes are until <see cref="Commit"/> renames them to <see cref="Path"/>.</summary>
    public string TempPath { get; }

    private SafeFile(string path, string temp, FileStream file, Stream stream)
    {
        Path = path;
        TempPath = temp;
        _file = file;
        Stream = stream;
    }

    /// <summary>Opens a new temporary file beside <paramref name="path"/>. <paramref name="wrap"/> lets tests put
    /// a failing stream between the writer and the file.</summary>
    public static SafeFile Create(string path, Func<Stream, Stream>? wrap = null)
    {
        string full = CheckTarget(path), dir = System.IO.Path.GetDirectoryName(full)!;
        string name = System.IO.Path.GetFileName(full);
        if (name.Length > 200) name = name[..200];
        string temp = System.IO.Path.Combine(dir, $".{name}.{Guid.NewGuid():N}.tmp");
        var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        try { return new SafeFile(full, temp, file, wrap?.Invoke(file) ?? file); }
        catch
        {
            file.Dispose();
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Checks that <paramref name="path"/> can be a file's name (not empty, not a folder, in a folder that
    /// exists) and returns it in full: commands that work long before they write call it first.</summary>
    public static string CheckTarget(string path)
    {
        if (string.IsNullOrEmpty(path)) throw new IOException("the output path is empty");
        string full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new IOException($"{path} is a folder, not a file");
        string dir = System.IO.Path.GetDirectoryName(full) ?? throw new IOException($"{path} has no folder");
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"the folder {dir} does not exist");
        return full;
    }

    /// <summary>Gives a file that was written elsewhere by other means (a download's resumable <c>.part</c> file,
    /// which must survive between runs) its final name the same way <see cref="Commit"/> does: flushed to disk,
    /// checked (an exception from <paramref name="check"/>, e.g. a checksum mismatch, deletes it), then renamed
    /// over <paramref name="path"/>. <paramref name="temp"/> must be in the target's folder, so the rename is atomic.</summary>
    public static void Promote(string temp, string path, Action<string>? check = null)
    {
        string full = CheckTarget(path);
        if (!string.Equals(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(temp)), System.IO.Path.GetDirectoryName(full), StringComparison.Ordinal))
            throw new ArgumentException($"{temp} is not in the folder of {path}: the rename would not be atomic", nameof(temp));
        bool done = false;
        try
        {
            using (var f = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) f.Flush(flushToDisk: true);
            check?.Invoke(temp);
            if (!OperatingSystem.IsWindows() && !OperatingSystem.IsBrowser() && !OperatingSystem.IsWasi() && File.Exists(full))
                File.SetUnixFileMode(temp, File.GetUnixFileMode(full));
            File.Move(temp, full, overwrite: true);
            done = true;
        }
        finally
        {
            if (!done) TryDelete(temp);
        }
    }

    /// <summary>Flushes the bytes to disk, runs <paramref name="check"/> on the complete temporary file (an
    /// exception from it abandons the write), and renames it over the target, keeping an existing
    /// target's permissions.</summary>
    public void Commit(Action<string>? check = null)
    {
        if (_done) throw new InvalidOperationException("this file was already committed or abandoned");
        try
        {
            Stream.Flush();
            _file.Flush(flushToDisk: true);
            if (!ReferenceEquals(Stream, _file)) Stream.Dispose();
            _file.Dispose();
            check?.Invoke(TempPath);
            if (!OperatingSystem.IsWindows() && !OperatingSystem.IsBrowser() && !OperatingSystem.IsWasi() && File.Exists(Path))
                File.SetUnixFileMode(TempPath, File.GetUnixFileMode(Path));
            File.Move(TempPath, Path, overwrite: true);
            _done = true;
        }
        finally
        {
            if (!_done) Abandon();
        }
    }

    /// <summary>Abandons an uncommitted write: the temporary file is deleted.</summary>
    public void Dispose()
    {
        if (!_done) Abandon();
    }

    private void Abandon()
    {
        _done = true;
        try { if (!ReferenceEquals(Stream, _file)) Stream.Dispose(); } catch (IOException) { }
        try { _file.Dispose(); } catch (IOException) { } // a failed flush of buffered bytes (a full disk) is expected here
        TryDelete(TempPath);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> safely (see the class).</summary>
    /// <param name="progress">Called with the bytes written so far, after each megabyte.</param>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, Action<string>? check = null, Func<Stream, Stream>? wrap = null,
        Action<long>? progress = null)
    {
        using var f = Create(path, wrap);
        const int chunk = 1 << 20;
        for (int i = 0; i < bytes.Length; i += chunk)
        {
            f.Stream.Write(bytes.Slice(i, System.Math.Min(chunk, bytes.Length - i)));
            progress?.Invoke(System.Math.Min(bytes.Length, (long)i + chunk));
        }
        f.Commit(check);
    }
}
