using System.Globalization;

namespace MicroLm.Cli;

/// <summary>llama.cpp-style flags: "-m FILE", "--temp 0.8", "--no-bos"; positional words kept in order.</summary>
public sealed class Options
{
    private readonly Dictionary<string, string?> _flags = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = [];
    private static readonly HashSet<string> Switches = ["--json", "--no-bos", "--help", "-h", "--quiet", "--no-display-prompt", "--scalar", "--all-logits", "--allow-requantize", "--kl-divergence"];

    public Options(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a.StartsWith('-') && a.Length > 1 && !IsNumber(a))
            {
                if (Switches.Contains(a)) { _flags[a] = null; continue; }
                if (i + 1 >= args.Length) throw new UsageException($"option {a} needs a value");
                _flags[a] = args[++i];
            }
            else Positional.Add(a);
        }
    }

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    public bool Has(params string[] names) => names.Any(_flags.ContainsKey);

    public string? Get(params string[] names)
    {
        foreach (var n in names) if (_flags.TryGetValue(n, out var v)) return v;
        return null;
    }

    public string Require(string what, params string[] names) =>
        Get(names) ?? throw new UsageException($"missing {names[0]} {what}");

    public int Int(int fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int x) ? x
            : throw new UsageException($"{names[0]} expects an integer, got '{v}'");
    }

    public ulong ULong(ulong fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        return ulong.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong x) ? x
            : long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long y) ? unchecked((ulong)y)
            : throw new UsageException($"{names[0]} expects an integer, got '{v}'");
    }

    public float Float(float fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        return float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out float x) ? x
            : throw new UsageException($"{names[0]} expects a number, got '{v}'");
    }
}
