using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MicroLm.IO;
using MicroLm.Tensors.Quants;
using Xunit;

namespace MicroLm.Tests.Quants;

public class CacheLinesTests
{
    private static unsafe long Line<T>(Span<T> span) where T : unmanaged =>
        (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(span)) % CacheLines.Bytes;

    [Fact]
    public void BuffersStartOnALineWithTheirFullLength()
    {
        // Many sizes, so the GC places the arrays at many different 8-byte steps.
        for (int length = 1; length <= 300; length += 7)
        {
            var bytes = CacheLines.Allocate<sbyte>(length);
            var floats = CacheLines.Allocate<float>(length);
            var ints = CacheLines.Allocate<int>(length);
            Assert.Equal((0L, 0L, 0L), (Line(bytes.AsSpan()), Line(floats.AsSpan()), Line(ints.AsSpan())));
            Assert.Equal((length, length, length), (bytes.Count, floats.Count, ints.Count));
            Assert.All(floats, f => Assert.Equal(0f, f));
        }
    }

    [Fact]
    public void ActivationValuesAndQuantsStartOnALine()
    {
        for (int length = 32; length <= 32 * 40; length += 32)
        {
            var x = new Activation(length);
            Assert.Equal((0L, 0L), (Line(x.Values), Line(x.Q8)));
            Assert.Equal((length, length), (x.Values.Length, x.Q8.Length));
        }
    }
}
