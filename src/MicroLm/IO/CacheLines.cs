using System.Runtime.CompilerServices;

namespace MicroLm.IO;

/// <summary>Pinned buffers whose used part starts on a 64-byte cache line. An array's data starts wherever the
/// GC puts it (8-byte steps), so a kernel's 256- or 512-bit loads of it straddle two lines in some runs and not in
/// others; a buffer that starts on a line gives every run the same placement, and the speed with it.</summary>
internal static class CacheLines
{
    public const int Bytes = 64;

    /// <summary>A pinned, zeroed buffer of <paramref name="length"/> elements starting on a line.</summary>
    public static unsafe ArraySegment<T> Allocate<T>(int length) where T : unmanaged
    {
        var array = GC.AllocateArray<T>(length + Bytes / sizeof(T) - 1, pinned: true);
        return new ArraySegment<T>(array, Offset(array), length);
    }

    /// <summary>The <paramref name="length"/> elements of <paramref name="unmovable"/> (stack or pinned memory, with
    /// <see cref="Bytes"/> / sizeof(T) − 1 elements to spare) that start on a line.</summary>
    public static unsafe Span<T> Start<T>(Span<T> unmovable, int length) where T : unmanaged
    {
        fixed (T* p = unmovable) return unmovable.Slice(ToLine(p), length);
    }

    /// <summary>Elements from the start of a pinned array's data to the next line (array data sits on 8-byte
    /// steps, so for elements of 1, 2, 4 or 8 bytes this lands exactly on the line).</summary>
    public static unsafe int Offset<T>(T[] pinned) where T : unmanaged
    {
        fixed (T* p = pinned) return ToLine(p);
    }

    private static unsafe int ToLine<T>(T* p) where T : unmanaged => (int)((Bytes - ((nint)p & (Bytes - 1))) & (Bytes - 1)) / sizeof(T);
}
