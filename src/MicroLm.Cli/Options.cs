using System.Globalization;
using System.Text;

namespace MicroLm.Cli;

/// <summary>What a flag takes: nothing (a switch), or a value checked when the command line is parsed.</summary>
public enum FlagKind { Switch, Text, Path, Int, Float, UInt64, IntList }

/// <summary>One flag a command accepts: its names (the first is the canonical one), what value it takes,
/// the accepted range for numbers, and a line of help. Declared with the factories, e.g.
/// <c>Flag.Int("-n|--n-predict", "N", "tokens to generate", min: -1)</c>.</summary>
public sealed record Flag(string[] Names, FlagKind Kind, string Value, string Help)
{
    public string Name => Names[0];
    public double Min { get; init; } = double.MinValue;
    public double Max { get; init; } = double.MaxValue;
    /// <summary>A Text flag that may be given as "" (a Path never may).</summary>
    public bool AllowEmpty { get; init; }

    private static string[] Split(string names) => names.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static Flag Switch(string names, string help) => new(Split(names), FlagKind.Switch, "", help);
    public static Flag Text(string names, string value, string help, bool allowEmpty = false) =>
        new(Split(names), FlagKind.Text, value, help) { AllowEmpty = allowEmpty };
    /// <summary>A file or folder name; never empty.</summary>
    public static Flag Path(string names, string value, string help) => new(Split(names), FlagKind.Path, value, help);
    public static Flag Int(string names, string value, string help, long min = int.MinValue, long max = int.MaxValue) =>
        new(Split(names), FlagKind.Int, value, help) { Min = min, Max = max };
    /// <summary>A finite number (NaN and infinities are refused) in [min, max].</summary>
    public static Flag Float(string names, string value, string help, double min = -1e30, double max = 1e30) =>
        new(Split(names), FlagKind.Float, value, help) { Min = min, Max = max };
    /// <summary>A 64-bit unsigned integer; negative values wrap (as llama.cpp's "--seed -1").</summary>
    public static Flag UInt64(string names, string value, string help) => new(Split(names), FlagKind.UInt64, value, help);
    /// <summary>Comma-separated integers in [min, max], e.g. "1,2,4".</summary>
    public static Flag IntList(string names, string value, string help, long min = int.MinValue, long max = int.MaxValue) =>
        new(Split(names), FlagKind.IntList, value, help) { Min = min, Max = max };
}

/// <summary>A command: its name, usage line, what it does, the flags it accepts, how many positional
/// words it takes, and what runs it. Every command is listed once in <see cref="CliMain.Commands"/>; the
/// parser, `microlm COMMAND --help` and the CLI contract test all read this declaration.</summary>
public sealed class CommandSpec
{
    public required string Name { get; init; }
    /// <summary>The usage line after "microlm NAME", e.g. "-m FILE -p PROMPT [options]".</summary>
    public required string Synopsis { get; init; }
    public required string Summary { get; init; }
    public IReadOnlyList<Flag> Flags { get; init; } = [];
    public int MinPositional { get; init; }
    public int MaxPositional { get; init; }
    /// <summary>The command body. Errors are exceptions (see <see cref="CliMain.Run"/>), never printed here.</summary>
    public required Func<Options, TextWriter, TextWriter, int> Run { get; init; }
    /// <summary>A quick, valid command line for the CLI contract test (after the command name), with
    /// placeholders $MODEL (a GGUF), $LLAMA2C (a llama2.c checkpoint), $TOKENIZER (its tokenizer), $OUT (a
    /// file to write) and $DIR (an empty folder). Null for commands that wait for input or serve forever:
    /// the contract test then checks their parsing only.</summary>
    public string[]? ContractExample { get; init; }
    /// <summary>Hidden from the overview (still has --help).</summary>
    public bool Hidden { get; init; }

    public Flag? Find(string name)
    {
        foreach (var f in Flags)
            foreach (var n in f.Names)
                if (n == name) return f;
        return null;
    }

    public string Help()
    {
        var sb = new StringBuilder();
        sb.Append("usage: microlm ").Append(Name).Append(' ').AppendLine(Synopsis);
        sb.AppendLine(Summary);
        if (Flags.Count == 0) return sb.ToString().TrimEnd();
        sb.AppendLine("options:");
        var left = Flags.Select(f => string.Join(", ", f.Names) + (f.Kind == FlagKind.Switch ? "" : " " + f.Value)).ToList();
        int width = System.Math.Min(34, left.Max(l => l.Length) + 2);
        for (int i = 0; i < Flags.Count; i++)
        {
            string l = "  " + left[i];
            sb.Append(l.Length >= width + 2 ? l + "\n" + new string(' ', width + 2) : l.PadRight(width + 2)).AppendLine(Flags[i].Help + Range(Flags[i]));
        }
        sb.Append("  -h, --help".PadRight(width + 2)).Append("print this help");
        return sb.ToString();
    }

    private static string Range(Flag f) =>
        f.Kind is FlagKind.Int or FlagKind.Float or FlagKind.IntList && Options.RangeText(f) is { } r ? $" ({r})" : "";
}

/// <summary>A parsed command line, checked against the command's declared flags: unknown flags, stray
/// words, missing values and out-of-range numbers are <see cref="UsageException"/>s (one line); values are
/// looked up by any of a flag's names. Reading a flag the command did not declare is a programming error.</summary>
public sealed class Options
{
    private readonly CommandSpec _spec;
    private readonly Dictionary<string, string?> _flags = new(StringComparer.Ordinal);
    public List<string> Positional { get; } = [];
    /// <summary>-h or --help was given: the caller prints the command's help instead of running it.</summary>
    public bool HelpRequested { get; }

    private Options(CommandSpec spec) => _spec = spec;

    public static Options Parse(CommandSpec spec, IReadOnlyList<string> args)
    {
        var o = new Options(spec);
        // --help anywhere (where a flag may stand) wins, so a broken line still gets its help.
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] is "-h" or "--help") return new Options(spec, help: true);
            if (args[i] == "--") break;
            if (spec.Find(args[i]) is { Kind: not FlagKind.Switch }) i++;
        }
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                for (i++; i < args.Count; i++) o.Positional.Add(args[i]);
                break;
            }
            if (a.Length > 1 && a[0] == '-' && !IsNumber(a))
            {
                string name = a;
                string? inline = null;
                int eq = a.IndexOf('=');
                if (a.StartsWith("--", StringComparison.Ordinal) && eq > 2) { name = a[..eq]; inline = a[(eq + 1)..]; }
                var flag = spec.Find(name) ?? throw new UsageException(Unknown(spec, name));
                if (flag.Kind == FlagKind.Switch)
                {
                    if (inline != null) throw new UsageException($"{name} is a switch and takes no value");
                    o._flags[flag.Name] = null;
                    continue;
                }
                string value = inline ?? (i + 1 < args.Count ? args[++i] : throw new UsageException($"{name} needs a value ({flag.Value})"));
                Validate(flag, name, value);
                o._flags[flag.Name] = value;
            }
            else o.Positional.Add(a);
        }
        if (o.Positional.Count > spec.MaxPositional)
        {
            string stray = o.Positional[spec.MaxPositional];
            throw new UsageException(spec.MaxPositional == 0
                ? $"{spec.Name} takes no argument '{Printable(stray)}' (quote a value with spaces; see microlm {spec.Name} --help)"
                : $"unexpected argument '{Printable(stray)}' (see microlm {spec.Name} --help)");
        }
        if (o.Positional.Count < spec.MinPositional)
            throw new UsageException($"usage: microlm {spec.Name} {spec.Synopsis}");
        return o;
    }

    private Options(CommandSpec spec, bool help) : this(spec) => HelpRequested = help;

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    private static string Unknown(CommandSpec spec, string name)
    {
        var names = spec.Flags.SelectMany(f => f.Names).ToList();
        var near = names.Select(n => (n, d: Distance(n, name))).Where(x => x.d <= 2).OrderBy(x => x.d).Select(x => x.n).FirstOrDefault();
        return $"unknown option {Printable(name)} for {spec.Name}" + (near != null ? $" (did you mean {near}?)" : $" (see microlm {spec.Name} --help)");
    }

    private static int Distance(string a, string b)
    {
        if (System.Math.Abs(a.Length - b.Length) > 2 || a.Length > 64 || b.Length > 64) return 99;
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = System.Math.Min(System.Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    /// <summary>A user-supplied word for an error line: control characters escaped, long words cut.</summary>
    public static string Printable(string s, int max = 80)
    {
        var sb = new StringBuilder();
        foreach (char c in s.Length > max ? s[..max] : s)
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        if (s.Length > max) sb.Append('…');
        return sb.ToString();
    }

    private static void Validate(Flag f, string name, string v)
    {
        string shown = Printable(v);
        switch (f.Kind)
        {
            case FlagKind.Path:
                if (v.Length == 0) throw new UsageException($"{name} needs a non-empty {f.Value}");
                if (v.Contains('\0')) throw new UsageException($"{name}: the path contains a NUL character");
                break;
            case FlagKind.Text:
                if (v.Length == 0 && !f.AllowEmpty) throw new UsageException($"{name} needs a non-empty {f.Value}");
                break;
            case FlagKind.Int:
                if (!long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long x))
                    throw new UsageException($"{name} expects an integer, got '{shown}'");
                CheckRange(f, name, x, shown);
                break;
            case FlagKind.IntList:
                var parts = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (parts.Length == 0) throw new UsageException($"{name} expects integers separated by commas, got '{shown}'");
                foreach (var p in parts)
                {
                    if (!long.TryParse(p, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long y))
                        throw new UsageException($"{name} expects integers separated by commas, got '{shown}'");
                    CheckRange(f, name, y, shown);
                }
                break;
            case FlagKind.Float:
                if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || !double.IsFinite(d))
                    throw new UsageException($"{name} expects a finite number, got '{shown}'");
                CheckRange(f, name, d, shown);
                break;
            case FlagKind.UInt64:
                if (!ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out _)
                    && !long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
                    throw new UsageException($"{name} expects an integer, got '{shown}'");
                break;
        }
    }

    private static void CheckRange(Flag f, string name, double x, string shown)
    {
        if (x >= f.Min && x <= f.Max) return;
        throw new UsageException($"{name} must be {RangeText(f)}, got '{shown}'");
    }

    /// <summary>"from 0 to 1", "at least 1", "at most 9", or null for an unbounded number.</summary>
    internal static string? RangeText(Flag f)
    {
        bool lo = f.Min > int.MinValue && f.Min > -1e29, hi = f.Max < int.MaxValue && f.Max < 1e29;
        return (lo, hi) switch
        {
            (true, true) => string.Create(CultureInfo.InvariantCulture, $"from {f.Min} to {f.Max}"),
            (true, false) => string.Create(CultureInfo.InvariantCulture, $"at least {f.Min}"),
            (false, true) => string.Create(CultureInfo.InvariantCulture, $"at most {f.Max}"),
            _ => null,
        };
    }

    private Flag Declared(string name) =>
        _spec.Find(name) ?? throw new InvalidOperationException($"the {_spec.Name} command reads {name} but does not declare it");

    public bool Has(params string[] names) => names.Any(n => _flags.ContainsKey(Declared(n).Name));

    public string? Get(params string[] names)
    {
        foreach (var n in names) if (_flags.TryGetValue(Declared(n).Name, out var v)) return v;
        return null;
    }

    public string Require(string what, params string[] names) =>
        Get(names) ?? throw new UsageException($"missing {names[0]} {what} (see microlm {_spec.Name} --help)");

    public int Int(int fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        long x = long.Parse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return x is >= int.MinValue and <= int.MaxValue ? (int)x : throw new UsageException($"{names[0]} is out of range, got '{Printable(v)}'");
    }

    public ulong ULong(ulong fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        return ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out ulong x) ? x
            : unchecked((ulong)long.Parse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture));
    }

    public float Float(float fallback, params string[] names)
    {
        var v = Get(names);
        return v == null ? fallback : (float)double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    public int[] IntList(int[] fallback, params string[] names)
    {
        var v = Get(names);
        if (v == null) return fallback;
        return [.. v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => (int)long.Parse(p, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture))];
    }
}
