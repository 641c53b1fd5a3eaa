using System.Runtime.InteropServices;
using System.Text;

namespace MicroLm.Generation;

/// <summary>The determinism trace: one line per evaluated position, "pos TAB token TAB sha256" with
/// the hash over that position's logits as little-endian float32, then "trace SHA256" over all
/// the lines before it (each ending in '\n'). Two runs agree bit for bit exactly when their traces do.</summary>
internal sealed class TraceWriter
{
    private readonly StringBuilder _all = new();
    private readonly byte[] _hash = new byte[32];

    public int Lines { get; private set; }

    /// <summary>The line for one position (also added to the running trace).</summary>
    public string Add(int position, int token, ReadOnlySpan<float> logits)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("traces are defined over little-endian float32");
        Sha256.HashData(MemoryMarshal.AsBytes(logits), _hash);
        string line = $"{position}\t{token}\t{Convert.ToHexStringLower(_hash)}";
        _all.Append(line).Append('\n');
        Lines++;
        return line;
    }

    /// <summary>The closing line, "trace " and the hash of every line so far.</summary>
    public string Final() => "trace " + Convert.ToHexStringLower(Sha256.HashData(Encoding.UTF8.GetBytes(_all.ToString())));
}
