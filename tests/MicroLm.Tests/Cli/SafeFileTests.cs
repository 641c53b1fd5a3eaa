using System.Diagnostics;
using MicroLm.IO;

namespace MicroLm.Tests.Cli;

/// <summary>Safe writes: a file appears whole or not at all; an existing target survives any failure.</summary>
public class SafeFileTests
{
    /// <summary>Passes writes through until <paramref name="limit"/> bytes, then fails as a full disk does.</summary>
    private sealed class FillingStream(Stream inner, long limit) : Stream
    {
        private long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > limit)
            {
                int fits = (int)(limit - _written);
                inner.Write(buffer[..fits]);
                _written = limit;
                throw new IOException("No space left on device");
            }
            inner.Write(buffer);
            _written += buffer.Length;
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static byte[] Bytes(int n, byte seed)
    {
        var b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte)(i * 31 + seed);
        return b;
    }

    [Fact]
    public void A_write_that_fails_midway_leaves_the_old_file_and_no_temporary()
    {
        string dir = CliRun.TempDir();
        try
        {
            string target = Path.Combine(dir, "model.gguf");
            var good = Bytes(10_000, 1);
            File.WriteAllBytes(target, good);
            var e = Assert.Throws<IOException>(() =>
                SafeFile.WriteAllBytes(target, Bytes(3 << 20, 2), wrap: s => new FillingStream(s, 1_500_000)));
            Assert.Contains("No space", e.Message, StringComparison.Ordinal);
            Assert.Equal(good, File.ReadAllBytes(target));
            Assert.Equal(["model.gguf"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_check_that_refuses_the_result_leaves_the_old_file_and_no_temporary()
    {
        string dir = CliRun.TempDir();
        try
        {
            string target = Path.Combine(dir, "out.bin");
            File.WriteAllBytes(target, [1, 2, 3]);
            string? seen = null;
            Assert.Throws<InvalidDataException>(() => SafeFile.WriteAllBytes(target, Bytes(100, 3), check: tmp =>
            {
                seen = tmp;
                Assert.Equal(Bytes(100, 3), File.ReadAllBytes(tmp)); // the check sees the complete bytes
                throw new InvalidDataException("does not load");
            }));
            Assert.NotNull(seen);
            Assert.Equal(Path.GetDirectoryName(Path.GetFullPath(target)), Path.GetDirectoryName(seen));
            Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(target));
            Assert.Single(Directory.GetFiles(dir));
            // Nothing existed: nothing appears.
            string fresh = Path.Combine(dir, "fresh.bin");
            Assert.Throws<InvalidDataException>(() => SafeFile.WriteAllBytes(fresh, [9], check: _ => throw new InvalidDataException("no")));
            Assert.False(File.Exists(fresh));
            Assert.Single(Directory.GetFiles(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_successful_write_replaces_the_file_and_keeps_its_permissions()
    {
        string dir = CliRun.TempDir();
        try
        {
            string target = Path.Combine(dir, "out.bin");
            File.WriteAllBytes(target, [1]);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
            SafeFile.WriteAllBytes(target, Bytes(5000, 4));
            Assert.Equal(Bytes(5000, 4), File.ReadAllBytes(target));
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(target));
            Assert.Single(Directory.GetFiles(dir));
            // Abandoned without Commit: nothing appears.
            using (var f = SafeFile.Create(Path.Combine(dir, "never.bin"))) f.Stream.Write([1, 2, 3]);
            Assert.Single(Directory.GetFiles(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_targets_are_IO_errors()
    {
        string dir = CliRun.TempDir();
        try
        {
            Assert.Throws<IOException>(() => SafeFile.WriteAllBytes("", [1]));
            Assert.Throws<IOException>(() => SafeFile.WriteAllBytes(dir, [1]));
            Assert.Throws<DirectoryNotFoundException>(() => SafeFile.WriteAllBytes(Path.Combine(dir, "no", "such", "x.bin"), [1]));
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A real full file system: a 256 KiB tmpfs (needs mount rights, as CI's root has; elsewhere the
    /// failing stream above stands in). Converting onto it over an existing good GGUF fails with one error
    /// line, and the good file is intact.</summary>
    [SharedFact]
    public void Convert_onto_a_full_tmpfs_keeps_the_existing_file()
    {
        string mnt = CliRun.TempDir();
        if (!TryMount(mnt)) { Directory.Delete(mnt); return; }
        try
        {
            string target = Path.Combine(mnt, "out.gguf");
            var good = Bytes(200_000, 5); // leaves less room than the ~1.1 MB conversion needs
            File.WriteAllBytes(target, good);
            var r = CliRun.Run("convert", "llama2c", CliRun.Llama2c, "--tokenizer", CliRun.Tok512, "-o", target);
            CliRun.AssertError(r, "No space left on device");
            Assert.Equal(good, File.ReadAllBytes(target));
            Assert.Equal(["out.gguf"], Directory.GetFiles(mnt).Select(Path.GetFileName));
        }
        finally { Unmount(mnt); }
    }

    /// <summary>Mounts a tmpfs of <paramref name="size"/> on <paramref name="dir"/> (Linux, with mount rights: root,
    /// as in CI). False where that is not possible; then the failing-stream tests stand in.</summary>
    internal static bool TryMount(string dir, string size = "256k")
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            var p = Process.Start(new ProcessStartInfo("mount", ["-t", "tmpfs", "-o", $"size={size}", "tmpfs", dir])
                { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }

    internal static void Unmount(string dir)
    {
        Process.Start("umount", dir)!.WaitForExit();
        Directory.Delete(dir, true);
    }

    private static readonly string[] TinyTraining = ["--steps", "2", "--batch", "1", "--seq", "8", "--dim", "8", "--hidden", "8",
        "--layers", "1", "--heads", "2", "--vocab", "400", "--corpus-bytes", "20000", "-t", "1", "--checkpoint-every", "1"];

    /// <summary>A training run whose checkpoint cannot be written (a full tmpfs) fails with one line, and the model
    /// that was there before is intact, with no temporary file beside it.</summary>
    [Fact]
    public void Train_onto_a_full_tmpfs_keeps_the_existing_file()
    {
        string mnt = CliRun.TempDir();
        if (!TryMount(mnt)) { Directory.Delete(mnt); return; }
        try
        {
            string target = Path.Combine(mnt, "model.gguf");
            var good = Bytes(248 * 1024, 7); // leaves 8 KiB: less than the tiny model's GGUF (its vocabulary alone is more)
            File.WriteAllBytes(target, good);
            var r = CliRun.Run(["train", "-o", target, .. TinyTraining]);
            // train reports its progress on stderr; the failure is its last line, and the only error.
            Assert.Equal(1, r.Code);
            var error = Assert.Single(CliRun.ErrorLines(r.Err));
            Assert.Equal(error, r.Err.TrimEnd('\n').Split('\n')[^1]);
            Assert.StartsWith("microlm: error: ", error, StringComparison.Ordinal);
            Assert.Contains("No space left on device", error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", r.Err, StringComparison.Ordinal);
            Assert.Equal(good, File.ReadAllBytes(target));
            Assert.Equal(["model.gguf"], Directory.GetFiles(mnt).Select(Path.GetFileName));
        }
        finally { Unmount(mnt); }
    }

    /// <summary>The output is checked before training starts, not after it: a missing folder is one line at once.</summary>
    [Fact]
    public void Train_into_a_missing_folder_fails_before_training()
    {
        string dir = CliRun.TempDir();
        try
        {
            var r = CliRun.Run(["train", "-o", Path.Combine(dir, "no", "such", "m.gguf"), .. TinyTraining, "--steps", "100000"]);
            CliRun.AssertError(r, "does not exist");
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Training's checkpoints and final model go through SafeFile: the result replaces the old file whole
    /// (and loads), and nothing else is left in the folder.</summary>
    [Fact]
    public void Train_replaces_its_output_whole_and_leaves_no_temporary()
    {
        string dir = CliRun.TempDir();
        try
        {
            string target = Path.Combine(dir, "model.gguf");
            File.WriteAllBytes(target, Bytes(1000, 3));
            var r = CliRun.Run(["train", "-o", target, .. TinyTraining]);
            Assert.True(r.Code == 0, r.Err);
            using (var model = Model.Load(target)) Assert.Equal(8, model.Config.Dim);
            Assert.Equal(["model.gguf"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>SafeFile.Promote (a download's .part file becoming the cached model): a check that refuses the file
    /// deletes it and keeps the existing target; a temporary in another folder is refused (the rename would not be atomic).</summary>
    [Fact]
    public void Promote_checks_then_renames_or_deletes()
    {
        string dir = CliRun.TempDir();
        try
        {
            string target = Path.Combine(dir, "m.gguf"), part = target + ".part";
            var old = Bytes(100, 1);
            File.WriteAllBytes(target, old);
            File.WriteAllBytes(part, Bytes(200, 2));
            Assert.Throws<MicroLmException>(() => SafeFile.Promote(part, target, check: _ => throw new MicroLmException("checksum mismatch")));
            Assert.Equal(old, File.ReadAllBytes(target));
            Assert.False(File.Exists(part));

            File.WriteAllBytes(part, Bytes(200, 2));
            SafeFile.Promote(part, target, check: p => Assert.Equal(200, new FileInfo(p).Length));
            Assert.Equal(Bytes(200, 2), File.ReadAllBytes(target));
            Assert.Equal(["m.gguf"], Directory.GetFiles(dir).Select(Path.GetFileName));

            string elsewhere = Path.Combine(CliRun.TempDir(), "x.part");
            File.WriteAllBytes(elsewhere, Bytes(10, 3));
            Assert.Throws<ArgumentException>(() => SafeFile.Promote(elsewhere, target));
            Directory.Delete(Path.GetDirectoryName(elsewhere)!, true);
        }
        finally { Directory.Delete(dir, true); }
    }
}
