using MicroLm.Synthetic;
using MicroLm.Tensors;

namespace MicroLm.Tests.Api;

/// <summary>Model.Load(Stream) (and `microlm --no-mmap`) reads the file into one buffer that starts on a 64-byte line,
/// as a mapping starts on a page, and gives the same logits, bit for bit, as the same bytes loaded in place; a stream
/// that cannot seek is read the same way.</summary>
public class LoadFromStreamTests
{
    [Theory]
    [InlineData(GgmlType.F32, true)]
    [InlineData(GgmlType.F32, false)]
    [InlineData(GgmlType.Q8_0, true)]
    public unsafe void A_stream_loads_onto_a_line_and_gives_the_same_bits(GgmlType type, bool seekable)
    {
        byte[] bytes = SyntheticLlama.ToBytes(new SyntheticLlamaOptions { MatrixType = type, VocabSize = 512, Dim = 96, HiddenDim = 160 });
        using var inPlace = Model.Load(bytes);
        using Stream source = seekable ? new MemoryStream(bytes) : new ForwardOnly(bytes);
        using var loaded = Model.Load(source);
        fixed (byte* p = loaded.File.Buffer.Span) Assert.Equal(0, (int)((nint)p & 63));
        Assert.Equal(bytes, loaded.File.Buffer.ToArray());
        var prompt = Enumerable.Range(0, 9).Select(i => 1 + i * 53 % 500).ToArray();
        using var a = inPlace.CreateSession();
        using var b = loaded.CreateSession();
        var expected = a.Evaluate(prompt).ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
        var actual = b.Evaluate(prompt).ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
        Assert.Equal(expected, actual);
    }

    /// <summary>A stream that only reads forward (a pipe, a network body).</summary>
    private sealed class ForwardOnly(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
