namespace MicroLm.Generation;

/// <summary>Turns token bytes into text without ever emitting half a UTF-8 character: bytes of an
/// incomplete sequence wait for the next token; invalid bytes become U+FFFD.</summary>
internal sealed class Utf8Stream
{
    private readonly byte[] _pending = new byte[4];
    private int _count;
    private readonly System.Text.StringBuilder _text = new();

    /// <summary>Adds bytes and returns the text that is now complete (empty if none).</summary>
    public string Push(ReadOnlySpan<byte> bytes)
    {
        _text.Clear();
        foreach (byte b in bytes) PushByte(b);
        return _text.ToString();
    }

    /// <summary>Text of any bytes still waiting (an unfinished sequence at the end becomes U+FFFD).</summary>
    public string Flush()
    {
        string s = _count > 0 ? "\uFFFD" : "";
        _count = 0;
        return s;
    }

    private void PushByte(byte b)
    {
        if (_count > 0 && (b & 0xC0) != 0x80) { _text.Append('\uFFFD'); _count = 0; }
        if (_count == 0)
        {
            if (b < 0x80) { _text.Append((char)b); return; }
            if (Expected(b) == 0) { _text.Append('\uFFFD'); return; }
        }
        _pending[_count++] = b;
        if (_count == Expected(_pending[0]))
        {
            var status = System.Text.Rune.DecodeFromUtf8(_pending.AsSpan(0, _count), out var rune, out _);
            _text.Append(status == System.Buffers.OperationStatus.Done ? rune.ToString() : "\uFFFD");
            _count = 0;
        }
    }

    private static int Expected(byte lead) => lead switch
    {
        >= 0xC2 and <= 0xDF => 2,
        >= 0xE0 and <= 0xEF => 3,
        >= 0xF0 and <= 0xF4 => 4,
        _ => 0,
    };
}
