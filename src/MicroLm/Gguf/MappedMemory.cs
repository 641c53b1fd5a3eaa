using System.Buffers;
using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace MicroLm.Gguf;

/// <summary>A read-only memory-mapped file exposed as <see cref="Memory{T}"/>, so the reader has one
/// code path for mapped files and for caller-supplied byte arrays (the browser's case).</summary>
internal sealed unsafe class MappedMemory : MemoryManager<byte>
{
    private readonly SafeFileHandle _handle;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;
    private readonly int _length;
    private readonly DateTime _writeTime;
    private readonly string _path;

    /// <summary>Maps the file as it is when opened: the length comes from the open handle, not from an
    /// earlier look at the path, so a file that shrank in between is never read past its end at load.
    /// (A file truncated later, while mapped, faults on access; <see cref="CheckUnchanged"/> catches a change
    /// between uses, and `--no-mmap` reads the file into memory instead.)</summary>
    public MappedMemory(string path)
    {
        _path = path;
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            long length = RandomAccess.GetLength(_handle);
            if (length == 0) throw new GgufFormatException("file is empty", 0);
            if (length > int.MaxValue) throw new GgufFormatException($"file is {length} bytes; files over 2 GiB are not supported", 0);
            _writeTime = File.GetLastWriteTimeUtc(_handle);
            _file = MemoryMappedFile.CreateFromFile(_handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            _view = _file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
            _length = (int)length;
        }
        catch
        {
            _view?.Dispose();
            _file?.Dispose();
            _handle.Dispose();
            throw;
        }
    }

    /// <summary>Throws if the mapped file has been truncated or rewritten since it was opened (its length or
    /// modification time changed). Reading a truncated mapping faults the process, which .NET cannot turn into
    /// an exception by default; checking before each use (each evaluation) turns a change between uses into a
    /// clear error. Two fstat calls, no allocation.</summary>
    public void CheckUnchanged()
    {
        long now = RandomAccess.GetLength(_handle);
        if (now < _length)
            throw new MicroLmException($"{_path} was truncated while in use ({_length:N0} bytes when loaded, {now:N0} now); load it again, or use --no-mmap (in the API: Model.Load of the file's bytes) for files that may change");
        if (now != _length || File.GetLastWriteTimeUtc(_handle) != _writeTime)
            throw new MicroLmException($"{_path} was rewritten while in use; load it again, or use --no-mmap (in the API: Model.Load of the file's bytes) for files that may change");
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing)
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        _handle.Dispose();
    }
}
