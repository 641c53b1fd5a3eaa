using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace MicroLm.Gguf;

/// <summary>A read-only memory-mapped file exposed as <see cref="Memory{T}"/>, so the reader has one
/// code path for mapped files and for caller-supplied byte arrays (the browser's case).</summary>
internal sealed unsafe class MappedMemory : MemoryManager<byte>
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;
    private readonly int _length;

    /// <summary>Maps the file as it is when opened: the length comes from the open handle, not from an
    /// earlier look at the path, so a file that shrank in between is never read past its end at load.
    /// (A file truncated later, while mapped, faults on access; `--no-mmap` reads it into memory instead.)</summary>
    public MappedMemory(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        long length = stream.Length;
        if (length == 0) throw new GgufFormatException("file is empty", 0);
        if (length > int.MaxValue) throw new GgufFormatException($"file is {length} bytes; files over 2 GiB are not supported", 0);
        _file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        _view = _file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + _view.PointerOffset;
        _length = (int)length;
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing)
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
