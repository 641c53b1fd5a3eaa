using System.Globalization;
using System.Text;

namespace MicroLm.Chat;

/// <summary>The subset of Jinja that chat templates use, with the settings Hugging Face renders them
/// with (trim_blocks, lstrip_blocks, loop controls, a JSON-producing tojson): text, {{ expressions }},
/// {% if/elif/else %}, {% for %} with loop variables and an else branch, {% set %} (also on a
/// namespace), {% break %}/{% continue %}, {# comments #} and whitespace control ("{%-", "-%}").
/// Expressions: literals, lists, dicts, attribute and item access, slices, calls, filters, tests,
/// arithmetic, comparison, membership, and/or/not, string concatenation (+ and ~) and inline if.
/// Values are null (none), <see cref="Undefined"/>, bool, long, double, string, List&lt;object?&gt;,
/// Dictionary&lt;string, object?&gt; (insertion-ordered) and functions.</summary>
internal sealed class JinjaTemplate
{
    private readonly List<Node> _body;

    private JinjaTemplate(List<Node> body) => _body = body;

    public static JinjaTemplate Parse(string source) => new(new Parser(Lexer.Tokenize(source)).ParseTemplate());

    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var scope = new Scope(null);
        foreach (var (k, v) in Globals()) scope.Set(k, v);
        foreach (var (k, v) in variables) scope.Set(k, v);
        var output = new StringBuilder();
        var ctx = new Context(output);
        Execute(_body, scope, ctx);
        return output.ToString();
    }

    private static IEnumerable<(string, object?)> Globals()
    {
        yield return ("raise_exception", new Function(args => throw new JinjaException(Str(args.Positional.ElementAtOrDefault(0)))));
        yield return ("range", new Function(args =>
        {
            var p = args.Positional.Select(ToLong).ToArray();
            long start = p.Length > 1 ? p[0] : 0, stop = p.Length > 1 ? p[1] : p.ElementAtOrDefault(0), step = p.Length > 2 ? p[2] : 1;
            if (step == 0) throw new JinjaException("range() step must not be zero");
            var list = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                list.Add(i);
                if (list.Count > 1_000_000) throw new JinjaException("range() is too long");
            }
            return list;
        }));
        yield return ("namespace", new Function(args => new Namespace(args.Named)));
        yield return ("strftime_now", new Function(args =>
            DateTime.Now.ToString(StrftimeToNet(Str(args.Positional.ElementAtOrDefault(0))), CultureInfo.InvariantCulture)));
    }

    private static string StrftimeToNet(string f) => f.Replace("%Y", "yyyy").Replace("%m", "MM").Replace("%d", "dd")
        .Replace("%B", "MMMM").Replace("%b", "MMM").Replace("%H", "HH").Replace("%M", "mm").Replace("%S", "ss");

    // ---------------------------------------------------------------- values

    public sealed class UndefinedValue
    {
        public override string ToString() => "";
    }

    public static readonly UndefinedValue Undefined = new();

    public sealed class Function(Func<Arguments, object?> call)
    {
        public object? Invoke(Arguments args) => call(args);
    }

    public sealed class Namespace(Dictionary<string, object?> values)
    {
        public Dictionary<string, object?> Values { get; } = values;
    }

    public sealed class Arguments
    {
        public List<object?> Positional { get; } = [];
        public Dictionary<string, object?> Named { get; } = new(StringComparer.Ordinal);
        public object? Get(int index, string name, object? fallback = null) =>
            Named.TryGetValue(name, out var v) ? v : index < Positional.Count ? Positional[index] : fallback;
    }

    private sealed class BreakSignal : Exception;
    private sealed class ContinueSignal : Exception;

    private sealed class Context(StringBuilder output)
    {
        public StringBuilder Output { get; } = output;
        public int Steps;
    }

    private sealed class Scope(Scope? parent)
    {
        private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);
        public object? Get(string name)
        {
            for (var s = this; s != null; s = s.Parent)
                if (s._vars.TryGetValue(name, out var v)) return v;
            return Undefined;
        }
        public Scope? Parent { get; } = parent;
        public void Set(string name, object? value) => _vars[name] = value;
    }

    // ---------------------------------------------------------------- execution

    private static void Execute(List<Node> nodes, Scope scope, Context ctx)
    {
        foreach (var node in nodes)
        {
            if (++ctx.Steps > 10_000_000) throw new JinjaException("the template runs too long");
            switch (node)
            {
                case TextNode t: ctx.Output.Append(t.Text); break;
                case OutputNode o: ctx.Output.Append(Str(o.Expr.Eval(scope))); break;
                case IfNode i:
                    foreach (var (cond, body) in i.Branches)
                        if (cond == null || Truthy(cond.Eval(scope))) { Execute(body, scope, ctx); break; }
                    break;
                case ForNode f: ExecuteFor(f, scope, ctx); break;
                case SetNode s:
                    var value = s.Value.Eval(scope);
                    if (s.Attribute != null)
                    {
                        if (scope.Get(s.Names[0]) is not Namespace ns) throw new JinjaException($"cannot set an attribute of '{s.Names[0]}': it is not a namespace");
                        ns.Values[s.Attribute] = value;
                    }
                    else if (s.Names.Count == 1) scope.Set(s.Names[0], value);
                    else
                    {
                        var items = Iterate(value).ToList();
                        if (items.Count != s.Names.Count) throw new JinjaException($"cannot unpack {items.Count} values into {s.Names.Count} names");
                        for (int k = 0; k < items.Count; k++) scope.Set(s.Names[k], items[k]);
                    }
                    break;
                case BreakNode: throw new BreakSignal();
                case ContinueNode: throw new ContinueSignal();
                default: throw new JinjaException("unknown statement");
            }
        }
    }

    private static void ExecuteFor(ForNode f, Scope scope, Context ctx)
    {
        var source = f.Iterable.Eval(scope);
        var items = (source is Dictionary<string, object?> d ? d.Keys.Cast<object?>() : Iterate(source)).ToList();
        if (f.Filter != null)
            items = items.Where(item => { var s = new Scope(scope); Bind(s, f.Names, item); return Truthy(f.Filter.Eval(s)); }).ToList();
        if (items.Count == 0)
        {
            if (f.Else != null) Execute(f.Else, scope, ctx);
            return;
        }
        // Jinja: assignments inside a loop body do not leak out of it.
        var inner = new Scope(scope);
        for (int i = 0; i < items.Count; i++)
        {
            var loop = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["index"] = (long)(i + 1), ["index0"] = (long)i, ["revindex"] = (long)(items.Count - i), ["revindex0"] = (long)(items.Count - i - 1),
                ["first"] = i == 0, ["last"] = i == items.Count - 1, ["length"] = (long)items.Count,
                ["previtem"] = i > 0 ? items[i - 1] : Undefined, ["nextitem"] = i + 1 < items.Count ? items[i + 1] : Undefined,
            };
            loop["cycle"] = new Function(args => args.Positional.Count == 0 ? Undefined : args.Positional[i % args.Positional.Count]);
            inner.Set("loop", loop);
            Bind(inner, f.Names, items[i]);
            try { Execute(f.Body, inner, ctx); }
            catch (BreakSignal) { break; }
            catch (ContinueSignal) { }
        }
    }

    private static void Bind(Scope scope, List<string> names, object? item)
    {
        if (names.Count == 1) { scope.Set(names[0], item); return; }
        var parts = Iterate(item).ToList();
        if (parts.Count != names.Count) throw new JinjaException($"cannot unpack {parts.Count} values into {names.Count} names");
        for (int k = 0; k < names.Count; k++) scope.Set(names[k], parts[k]);
    }

    // ---------------------------------------------------------------- semantics helpers

    public static bool Truthy(object? v) => v switch
    {
        null or UndefinedValue => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    private static IEnumerable<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        string s => StringChars(s),
        Dictionary<string, object?> d => d.Keys,
        UndefinedValue => [],
        _ => throw new JinjaException($"{TypeName(v)} is not iterable"),
    };

    private static IEnumerable<object?> StringChars(string s)
    {
        for (int i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
            yield return char.IsSurrogatePair(s, i) ? s.Substring(i, 2) : s[i].ToString();
    }

    private static string TypeName(object? v) => v switch
    {
        null => "none", UndefinedValue => "undefined", bool => "boolean", long => "integer", double => "float",
        string => "string", List<object?> => "list", Dictionary<string, object?> => "dict", _ => "object",
    };

    /// <summary>What {{ v }} prints: Python's str().</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        UndefinedValue => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PyFloat(d),
        _ => Repr(v),
    };

    private static string PyFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string s = d.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E')) s = s.Replace("E+", "e+").Replace("E-", "e-");
        return s.Contains('.') || s.Contains('e') ? s : s + ".0";
    }

    /// <summary>Python's repr(), for lists and dicts printed whole.</summary>
    private static string Repr(object? v) => v switch
    {
        string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        Namespace => "<Namespace>",
        Function => "<function>",
        _ => Str(v),
    };

    private static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
        _ => throw new JinjaException($"expected an integer, got {TypeName(v)}"),
    };

    public static bool Equal(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (UndefinedValue, UndefinedValue) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y,
        (long or double or bool, long or double or bool) => ToDouble(a) == ToDouble(b),
        (string x, string y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equal(p.First, p.Second)),
        (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var o) && Equal(kv.Value, o)),
        _ => ReferenceEquals(a, b),
    };

    private static double ToDouble(object? v) => v switch
    {
        long l => l, double d => d, bool b => b ? 1 : 0,
        _ => throw new JinjaException($"expected a number, got {TypeName(v)}"),
    };

    private static int Compare(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        (long x, long y) => x.CompareTo(y),
        (long or double or bool, long or double or bool) => ToDouble(a).CompareTo(ToDouble(b)),
        _ => throw new JinjaException($"cannot compare {TypeName(a)} with {TypeName(b)}"),
    };

    private static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return key is string k && d.TryGetValue(k, out var v) ? v : Undefined;
            case Namespace ns:
                return key is string nk && ns.Values.TryGetValue(nk, out var nv) ? nv : Undefined;
            case List<object?> l when key is long or bool:
                long i = ToLong(key);
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : Undefined;
            case string s when key is long or bool:
                var chars = StringChars(s).ToList();
                long j = ToLong(key);
                if (j < 0) j += chars.Count;
                return j >= 0 && j < chars.Count ? chars[(int)j] : Undefined;
            case UndefinedValue or null:
                return Undefined;
            default:
                return Undefined;
        }
    }

    private static object? GetAttribute(object? target, string name)
    {
        var item = GetItem(target, name);
        if (item is not UndefinedValue) return item;
        return Method(target, name) ?? (object?)Undefined;
    }

    /// <summary>Python methods templates call on strings, dicts and lists.</summary>
    private static Function? Method(object? target, string name)
    {
        switch (target)
        {
            case string s:
                return name switch
                {
                    "strip" => new Function(a => a.Positional.Count > 0 ? s.Trim(Str(a.Positional[0]).ToCharArray()) : s.Trim()),
                    "lstrip" => new Function(a => a.Positional.Count > 0 ? s.TrimStart(Str(a.Positional[0]).ToCharArray()) : s.TrimStart()),
                    "rstrip" => new Function(a => a.Positional.Count > 0 ? s.TrimEnd(Str(a.Positional[0]).ToCharArray()) : s.TrimEnd()),
                    "upper" => new Function(_ => s.ToUpperInvariant()),
                    "lower" => new Function(_ => s.ToLowerInvariant()),
                    "title" => new Function(_ => Title(s)),
                    "capitalize" => new Function(_ => Capitalize(s)),
                    "startswith" => new Function(a => s.StartsWith(Str(a.Positional[0]), StringComparison.Ordinal)),
                    "endswith" => new Function(a => s.EndsWith(Str(a.Positional[0]), StringComparison.Ordinal)),
                    "split" => new Function(a => Split(s, a.Positional.Count > 0 && a.Positional[0] is string sep ? sep : null)),
                    "replace" => new Function(a => s.Replace(Str(a.Positional[0]), Str(a.Positional[1]), StringComparison.Ordinal)),
                    "find" => new Function(a => (long)s.IndexOf(Str(a.Positional[0]), StringComparison.Ordinal)),
                    "format" => new Function(a => PercentFormat(s, a.Positional)),
                    _ => null,
                };
            case Dictionary<string, object?> d:
                return name switch
                {
                    "items" => new Function(_ => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()),
                    "keys" => new Function(_ => d.Keys.Cast<object?>().ToList()),
                    "values" => new Function(_ => d.Values.ToList()),
                    "get" => new Function(a => a.Positional.Count > 0 && a.Positional[0] is string k && d.TryGetValue(k, out var v) ? v : a.Positional.ElementAtOrDefault(1)),
                    _ => null,
                };
            default:
                return null;
        }
    }

    private static List<object?> Split(string s, string? sep) => sep == null
        ? s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Cast<object?>().ToList()
        : s.Split(sep).Cast<object?>().ToList();

    private static string PercentFormat(string format, List<object?> args)
    {
        var sb = new StringBuilder();
        int next = 0;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] == '%' && i + 1 < format.Length)
            {
                char c = format[++i];
                if (c == '%') { sb.Append('%'); continue; }
                sb.Append(Str(next < args.Count ? args[next++] : Undefined));
                continue;
            }
            sb.Append(format[i]);
        }
        return sb.ToString();
    }

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            sb.Append(start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = !char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        List<object?> items = target switch
        {
            List<object?> l => l,
            string s => StringChars(s).ToList(),
            _ => throw new JinjaException($"cannot slice {TypeName(target)}"),
        };
        int n = items.Count;
        long st = step is null or UndefinedValue ? 1 : ToLong(step);
        if (st == 0) throw new JinjaException("slice step must not be zero");
        long Norm(object? v, long fallback)
        {
            if (v is null or UndefinedValue) return fallback;
            long x = ToLong(v);
            if (x < 0) x += n;
            return st > 0 ? System.Math.Clamp(x, 0, n) : System.Math.Clamp(x, -1, n - 1);
        }
        long a = Norm(start, st > 0 ? 0 : n - 1), b = Norm(stop, st > 0 ? n : -1);
        var result = new List<object?>();
        for (long i = a; st > 0 ? i < b : i > b; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Select(Str)) : result;
    }

    // ---------------------------------------------------------------- filters and tests

    private static object? ApplyFilter(string name, object? v, Arguments a) => name switch
    {
        "trim" => Str(v).Trim(),
        "upper" => Str(v).ToUpperInvariant(),
        "lower" => Str(v).ToLowerInvariant(),
        "title" => Title(Str(v)),
        "capitalize" => Capitalize(Str(v)),
        "length" or "count" => v switch
        {
            string s => (long)StringChars(s).Count(),
            List<object?> l => (long)l.Count,
            Dictionary<string, object?> d => (long)d.Count,
            UndefinedValue => 0L,
            _ => throw new JinjaException($"{TypeName(v)} has no length"),
        },
        "string" => Str(v),
        "int" => v switch
        {
            string s => long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) ? l
                : double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double dd) ? (long)dd : 0L,
            long or double or bool => ToLong(v),
            _ => 0L,
        },
        "float" => v switch
        {
            string s => double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : 0.0,
            long or double or bool => ToDouble(v),
            _ => 0.0,
        },
        "default" or "d" => v is UndefinedValue || (Truthy(a.Get(1, "boolean", false)) && !Truthy(v)) ? a.Get(0, "default_value", "") : v,
        "join" => string.Join(Str(a.Get(0, "d", "")), Iterate(v).Select(Str)),
        "first" => Iterate(v).Cast<object?>().DefaultIfEmpty(Undefined).First(),
        "last" => Iterate(v).Cast<object?>().DefaultIfEmpty(Undefined).Last(),
        "list" => Iterate(v).ToList(),
        "reverse" => v is string s ? new string(s.Reverse().ToArray()) : Iterate(v).Reverse().ToList(),
        "items" => v is Dictionary<string, object?> d ? d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList() : throw new JinjaException("items needs a dict"),
        "replace" => Str(v).Replace(Str(a.Get(0, "old")), Str(a.Get(1, "new")), StringComparison.Ordinal),
        "safe" => v,
        "tojson" => Json(v, a.Get(0, "indent") is long indent ? (int)indent : null, 0),
        "selectattr" or "rejectattr" => Iterate(v).Where(item =>
        {
            var attr = GetAttribute(item, Str(a.Positional.ElementAtOrDefault(0)));
            bool pass = a.Positional.Count < 2 ? Truthy(attr) : Test(Str(a.Positional[1]), attr, [.. a.Positional.Skip(2)]);
            return name == "selectattr" ? pass : !pass;
        }).ToList(),
        "map" => a.Named.TryGetValue("attribute", out var at)
            ? Iterate(v).Select(item => GetAttribute(item, Str(at))).ToList()
            : Iterate(v).Select(item => ApplyFilter(Str(a.Positional.ElementAtOrDefault(0)), item, new Arguments())).ToList(),
        "indent" => Indent(Str(v), a.Get(0, "width", 4L) is long w ? (int)w : 4, Truthy(a.Get(1, "first", false))),
        _ => throw new JinjaException($"unknown filter '{name}'"),
    };

    private static string Indent(string s, int width, bool first)
    {
        string pad = new(' ', width);
        var lines = s.Split('\n');
        for (int i = first ? 0 : 1; i < lines.Length; i++) if (lines[i].Length > 0) lines[i] = pad + lines[i];
        return string.Join('\n', lines);
    }

    private static bool Test(string name, object? v, List<object?> args) => name switch
    {
        "defined" => v is not UndefinedValue,
        "undefined" => v is UndefinedValue,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?> or Namespace,
        "sequence" or "iterable" => v is List<object?> or string or Dictionary<string, object?>,
        "callable" => v is Function,
        "equalto" or "eq" or "sameas" => Equal(v, args.ElementAtOrDefault(0)),
        "ne" => !Equal(v, args.ElementAtOrDefault(0)),
        "odd" => ToLong(v) % 2 != 0,
        "even" => ToLong(v) % 2 == 0,
        "divisibleby" => ToLong(v) % ToLong(args.ElementAtOrDefault(0)) == 0,
        "in" => Contains(args.ElementAtOrDefault(0), v),
        _ => throw new JinjaException($"unknown test '{name}'"),
    };

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new JinjaException("'in <string>' needs a string"),
        List<object?> l => l.Any(x => Equal(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        UndefinedValue => false,
        _ => throw new JinjaException($"{TypeName(container)} is not a container"),
    };

    /// <summary>JSON as Hugging Face's tojson writes it: Python's json.dumps with ensure_ascii off;
    /// ", " and ": " separators without indent, "," and ": " with it.</summary>
    public static string Json(object? v, int? indent, int level)
    {
        switch (v)
        {
            case null or UndefinedValue: return "null";
            case bool b: return b ? "true" : "false";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return double.IsFinite(d) ? PyFloat(d) : double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
            case string s: return JsonString(s);
            case List<object?> list:
                if (list.Count == 0) return "[]";
                return Compound('[', ']', list.Select(x => Json(x, indent, level + 1)), indent, level);
            case Dictionary<string, object?> dict:
                if (dict.Count == 0) return "{}";
                return Compound('{', '}', dict.Select(kv => JsonString(kv.Key) + ": " + Json(kv.Value, indent, level + 1)), indent, level);
            case Namespace ns: return Json(ns.Values, indent, level);
            default: throw new JinjaException($"{TypeName(v)} cannot be written as JSON");
        }
    }

    private static string Compound(char open, char close, IEnumerable<string> items, int? indent, int level)
    {
        if (indent == null) return open + string.Join(", ", items) + close;
        string inner = "\n" + new string(' ', indent.Value * (level + 1));
        string outer = "\n" + new string(' ', indent.Value * level);
        return open + inner + string.Join("," + inner, items) + outer + close;
    }

    /// <summary>A string as tojson writes it (Python's json.dumps with ensure_ascii off): only C0 controls as \uXXXX.</summary>
    private static string JsonString(string s) => Gguf.GgufValue.Quote(s, c => c < 0x20, namedBackspaceAndFormFeed: true);

    // ---------------------------------------------------------------- syntax tree

    private abstract class Node;
    private sealed class TextNode(string text) : Node { public string Text { get; } = text; }
    private sealed class OutputNode(Expr expr) : Node { public Expr Expr { get; } = expr; }
    private sealed class IfNode : Node { public List<(Expr? Cond, List<Node> Body)> Branches { get; } = []; }
    private sealed class ForNode : Node
    {
        public required List<string> Names { get; init; }
        public required Expr Iterable { get; init; }
        public Expr? Filter { get; init; }
        public List<Node> Body { get; } = [];
        public List<Node>? Else { get; set; }
    }
    private sealed class SetNode : Node
    {
        public required List<string> Names { get; init; }
        public string? Attribute { get; init; }
        public required Expr Value { get; init; }
    }
    private sealed class BreakNode : Node;
    private sealed class ContinueNode : Node;

    private abstract class Expr { public abstract object? Eval(Scope s); }
    private sealed class Literal(object? value) : Expr { public override object? Eval(Scope s) => value; }
    private sealed class Name(string name) : Expr
    {
        public string Id { get; } = name;
        public override object? Eval(Scope s) => s.Get(Id);
    }
    private sealed class ListExpr(List<Expr> items) : Expr { public override object? Eval(Scope s) => items.Select(i => i.Eval(s)).ToList(); }
    private sealed class DictExpr(List<(Expr Key, Expr Value)> items) : Expr
    {
        public override object? Eval(Scope s)
        {
            var d = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (k, v) in items) d[Str(k.Eval(s))] = v.Eval(s);
            return d;
        }
    }
    private sealed class Attr(Expr target, string name) : Expr { public override object? Eval(Scope s) => GetAttribute(target.Eval(s), name); }
    private sealed class Item(Expr target, Expr key) : Expr { public override object? Eval(Scope s) => GetItem(target.Eval(s), key.Eval(s)); }
    private sealed class SliceExpr(Expr target, Expr? a, Expr? b, Expr? c) : Expr
    {
        public override object? Eval(Scope s) => Slice(target.Eval(s), a?.Eval(s), b?.Eval(s), c?.Eval(s));
    }
    private sealed class CallArgs
    {
        public List<Expr> Positional { get; } = [];
        public List<(string Name, Expr Value)> Named { get; } = [];
        public Arguments Eval(Scope s)
        {
            var a = new Arguments();
            foreach (var p in Positional) a.Positional.Add(p.Eval(s));
            foreach (var (n, v) in Named) a.Named[n] = v.Eval(s);
            return a;
        }
    }
    private sealed class Call(Expr target, CallArgs args) : Expr
    {
        public override object? Eval(Scope s) => target.Eval(s) is Function f ? f.Invoke(args.Eval(s))
            : throw new JinjaException($"'{Describe(target)}' is not callable");
    }
    private sealed class Filter(Expr target, string name, CallArgs args) : Expr
    {
        public override object? Eval(Scope s) => ApplyFilter(name, target.Eval(s), args.Eval(s));
    }
    private sealed class TestExpr(Expr target, string name, List<Expr> args, bool negate) : Expr
    {
        public override object? Eval(Scope s) => Test(name, target.Eval(s), args.Select(a => a.Eval(s)).ToList()) != negate;
    }
    private sealed class Unary(string op, Expr operand) : Expr
    {
        public override object? Eval(Scope s)
        {
            var v = operand.Eval(s);
            return op switch
            {
                "not" => !Truthy(v),
                "-" => v is long l ? -l : (object)-ToDouble(v),
                _ => v,
            };
        }
    }
    private sealed class Binary(string op, Expr left, Expr right) : Expr
    {
        public override object? Eval(Scope s)
        {
            if (op == "and") { var l = left.Eval(s); return Truthy(l) ? right.Eval(s) : l; }
            if (op == "or") { var l = left.Eval(s); return Truthy(l) ? l : right.Eval(s); }
            var a = left.Eval(s);
            var b = right.Eval(s);
            switch (op)
            {
                case "==": return Equal(a, b);
                case "!=": return !Equal(a, b);
                case "<": return Compare(a, b) < 0;
                case ">": return Compare(a, b) > 0;
                case "<=": return Compare(a, b) <= 0;
                case ">=": return Compare(a, b) >= 0;
                case "in": return Contains(b, a);
                case "not in": return !Contains(b, a);
                case "~": return Str(a) + Str(b);
                case "+":
                    if (a is string || b is string)
                    {
                        if (a is string sa && b is string sb) return sa + sb;
                        if (a is UndefinedValue || b is UndefinedValue) return Str(a) + Str(b);
                        throw new JinjaException($"cannot add {TypeName(a)} and {TypeName(b)}");
                    }
                    if (a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
                    return Arith(a, b, (x, y) => x + y, (x, y) => x + y);
                case "-": return Arith(a, b, (x, y) => x - y, (x, y) => x - y);
                case "*":
                    if (a is string rs && b is long rn) return string.Concat(Enumerable.Repeat(rs, (int)System.Math.Clamp(rn, 0, 100_000)));
                    return Arith(a, b, (x, y) => x * y, (x, y) => x * y);
                case "/": return ToDouble(a) / ToDouble(b);
                case "//":
                    if (a is long fa && b is long fb) return fb == 0 ? throw new JinjaException("division by zero") : (long)System.Math.Floor((double)fa / fb);
                    return System.Math.Floor(ToDouble(a) / ToDouble(b));
                case "%":
                    if (a is string fmt) return PercentFormat(fmt, b is List<object?> fl ? fl : [b]);
                    if (a is long ma && b is long mb) return mb == 0 ? throw new JinjaException("modulo by zero") : ((ma % mb) + mb) % mb;
                    return ToDouble(a) % ToDouble(b);
                default: throw new JinjaException($"unknown operator '{op}'");
            }
        }

        private static object Arith(object? a, object? b, Func<long, long, long> i, Func<double, double, double> d) =>
            (a is long or bool) && (b is long or bool) ? (object)i(ToLong(a), ToLong(b)) : d(ToDouble(a), ToDouble(b));
    }
    private sealed class Conditional(Expr cond, Expr then, Expr? otherwise) : Expr
    {
        public override object? Eval(Scope s) => Truthy(cond.Eval(s)) ? then.Eval(s) : otherwise != null ? otherwise.Eval(s) : Undefined;
    }

    private static string Describe(Expr e) => e switch { Name n => n.Id, Attr => "attribute", _ => "expression" };

    // ---------------------------------------------------------------- lexer

    private enum Kind { Text, Output, Statement, Name, String, Integer, Float, Op, End }

    private readonly record struct Token(Kind Kind, string Value, int Offset);

    private static class Lexer
    {
        public static List<Token> Tokenize(string src)
        {
            var tokens = new List<Token>();
            int pos = 0;
            bool trimNextText = false;   // "-%}" / "-}}" before this text
            bool trimBlockNewline = false; // trim_blocks: the newline right after a block tag
            while (pos < src.Length)
            {
                int open = FindOpen(src, pos);
                string raw = src[pos..(open < 0 ? src.Length : open)];
                bool nextTrimsLeft = open >= 0 && open + 2 < src.Length && src[open + 2] == '-';
                bool nextIsBlock = open >= 0 && (src[open + 1] == '%' || src[open + 1] == '#');
                bool nextKeepsLeft = open >= 0 && open + 2 < src.Length && src[open + 2] == '+';
                // lstrip_blocks: spaces and tabs from the start of a line up to a block tag go.
                int end = raw.Length;
                if (nextIsBlock && !nextKeepsLeft && !nextTrimsLeft)
                {
                    int k = raw.Length;
                    while (k > 0 && (raw[k - 1] == ' ' || raw[k - 1] == '\t')) k--;
                    bool lineStart = k > 0 ? raw[k - 1] == '\n' : pos == 0 || src[pos - 1] == '\n';
                    if (lineStart) end = k;
                }
                string text = raw[..end];
                if (trimNextText) text = text.TrimStart();
                else if (trimBlockNewline && text.Length > 0)
                {
                    if (text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
                    else if (text[0] == '\n') text = text[1..];
                }
                if (nextTrimsLeft) text = text.TrimEnd();
                if (text.Length > 0) tokens.Add(new Token(Kind.Text, text, pos));
                if (open < 0) break;
                trimBlockNewline = false;
                char kind = src[open + 1];
                int start = open + 2 + (nextTrimsLeft || nextKeepsLeft ? 1 : 0);
                if (kind == '#')
                {
                    int endc = src.IndexOf("#}", start, StringComparison.Ordinal);
                    if (endc < 0) throw new JinjaException($"unclosed comment at offset {open}");
                    trimNextText = src[endc - 1] == '-';
                    trimBlockNewline = !trimNextText;
                    pos = endc + 2;
                    continue;
                }
                string close = kind == '{' ? "}}" : "%}";
                tokens.Add(new Token(kind == '{' ? Kind.Output : Kind.Statement, "", open));
                int p = start;
                while (true)
                {
                    while (p < src.Length && char.IsWhiteSpace(src[p])) p++;
                    if (p >= src.Length) throw new JinjaException($"unclosed tag at offset {open}");
                    if (src[p] == '-' && string.CompareOrdinal(src, p + 1, close, 0, 2) == 0) { trimNextText = true; p += 3; break; }
                    if (src[p] == '+' && string.CompareOrdinal(src, p + 1, close, 0, 2) == 0) { trimNextText = false; p += 3; break; }
                    if (string.CompareOrdinal(src, p, close, 0, 2) == 0) { trimNextText = false; p += 2; break; }
                    p = ReadToken(src, p, tokens);
                }
                tokens.Add(new Token(Kind.End, "", p));
                if (kind == '%' && !trimNextText) trimBlockNewline = true;
                pos = p;
            }
            return tokens;
        }

        private static int FindOpen(string src, int from)
        {
            for (int i = src.IndexOf('{', from); i >= 0 && i + 1 < src.Length; i = src.IndexOf('{', i + 1))
                if (src[i + 1] is '{' or '%' or '#') return i;
            return -1;
        }

        private static int ReadToken(string src, int p, List<Token> tokens)
        {
            char c = src[p];
            if (char.IsLetter(c) || c == '_')
            {
                int s = p;
                while (p < src.Length && (char.IsLetterOrDigit(src[p]) || src[p] == '_')) p++;
                tokens.Add(new Token(Kind.Name, src[s..p], s));
                return p;
            }
            if (char.IsDigit(c))
            {
                int s = p;
                while (p < src.Length && (char.IsDigit(src[p]) || src[p] == '_')) p++;
                bool isFloat = false;
                if (p + 1 < src.Length && src[p] == '.' && char.IsDigit(src[p + 1]))
                {
                    isFloat = true;
                    p++;
                    while (p < src.Length && char.IsDigit(src[p])) p++;
                }
                tokens.Add(new Token(isFloat ? Kind.Float : Kind.Integer, src[s..p].Replace("_", ""), s));
                return p;
            }
            if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                int s = p++;
                while (true)
                {
                    if (p >= src.Length) throw new JinjaException($"unclosed string at offset {s}");
                    char d = src[p++];
                    if (d == c) break;
                    if (d == '\\' && p < src.Length)
                    {
                        char e = src[p++];
                        sb.Append(e switch
                        {
                            'n' => "\n", 't' => "\t", 'r' => "\r", '\\' => "\\", '\'' => "'", '"' => "\"", '0' => "\0",
                            'u' when p + 4 <= src.Length => ((char)int.Parse(src.AsSpan(p, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToString(),
                            _ => "\\" + e,
                        });
                        if (e == 'u' && p + 4 <= src.Length) p += 4;
                        continue;
                    }
                    sb.Append(d);
                }
                tokens.Add(new Token(Kind.String, sb.ToString(), s));
                return p;
            }
            foreach (var op in Ops)
                if (string.CompareOrdinal(src, p, op, 0, op.Length) == 0)
                {
                    tokens.Add(new Token(Kind.Op, op, p));
                    return p + op.Length;
                }
            throw new JinjaException($"unexpected character '{c}' at offset {p}");
        }

        private static readonly string[] Ops = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];
    }

    // ---------------------------------------------------------------- parser

    private sealed class Parser(List<Token> tokens)
    {
        private int _i;

        private Token Peek => _i < tokens.Count ? tokens[_i] : new Token(Kind.End, "", -1);
        private Token Next() => _i < tokens.Count ? tokens[_i++] : throw new JinjaException("unexpected end of template");
        private bool IsOp(string op) => Peek.Kind == Kind.Op && Peek.Value == op;
        private bool IsName(string name) => Peek.Kind == Kind.Name && Peek.Value == name;
        private void ExpectOp(string op)
        {
            if (!IsOp(op)) throw new JinjaException($"expected '{op}' at offset {Peek.Offset}, found '{Peek.Value}'");
            _i++;
        }
        private string ExpectName()
        {
            if (Peek.Kind != Kind.Name) throw new JinjaException($"expected a name at offset {Peek.Offset}");
            return Next().Value;
        }
        private void ExpectEnd()
        {
            if (Peek.Kind != Kind.End) throw new JinjaException($"unexpected '{Peek.Value}' at offset {Peek.Offset}");
            _i++;
        }

        public List<Node> ParseTemplate()
        {
            var body = ParseBody(out string? end);
            if (end != null) throw new JinjaException($"unexpected {{% {end} %}}");
            return body;
        }

        private static readonly HashSet<string> Enders = ["elif", "else", "endif", "endfor"];

        /// <summary>Nodes up to the end or a closing/continuing tag, whose keyword is returned (consumed up to the keyword).</summary>
        private List<Node> ParseBody(out string? end)
        {
            var nodes = new List<Node>();
            while (_i < tokens.Count)
            {
                var t = Next();
                switch (t.Kind)
                {
                    case Kind.Text: nodes.Add(new TextNode(t.Value)); break;
                    case Kind.Output:
                        nodes.Add(new OutputNode(ParseExpression()));
                        ExpectEnd();
                        break;
                    case Kind.Statement:
                        string keyword = ExpectName();
                        if (Enders.Contains(keyword)) { end = keyword; return nodes; }
                        nodes.Add(ParseStatement(keyword));
                        break;
                    default: throw new JinjaException($"unexpected '{t.Value}' at offset {t.Offset}");
                }
            }
            end = null;
            return nodes;
        }

        private Node ParseStatement(string keyword)
        {
            switch (keyword)
            {
                case "if":
                {
                    var node = new IfNode();
                    var cond = ParseExpression();
                    ExpectEnd();
                    while (true)
                    {
                        var body = ParseBody(out string? end);
                        node.Branches.Add((cond, body));
                        if (end == "elif") { cond = ParseExpression(); ExpectEnd(); continue; }
                        if (end == "else")
                        {
                            ExpectEnd();
                            var elseBody = ParseBody(out string? end2);
                            if (end2 != "endif") throw new JinjaException("{% if %} without {% endif %}");
                            node.Branches.Add((null, elseBody));
                            ExpectEnd();
                            return node;
                        }
                        if (end == "endif") { ExpectEnd(); return node; }
                        throw new JinjaException("{% if %} without {% endif %}");
                    }
                }
                case "for":
                {
                    var names = new List<string> { ExpectName() };
                    while (IsOp(",")) { _i++; names.Add(ExpectName()); }
                    if (!IsName("in")) throw new JinjaException($"expected 'in' at offset {Peek.Offset}");
                    _i++;
                    var iterable = ParseOr(allowConditional: false);
                    Expr? filter = null;
                    if (IsName("if")) { _i++; filter = ParseExpression(); }
                    if (IsName("recursive")) throw new JinjaException("recursive loops are not supported");
                    ExpectEnd();
                    var node = new ForNode { Names = names, Iterable = iterable, Filter = filter };
                    node.Body.AddRange(ParseBody(out string? end));
                    if (end == "else")
                    {
                        ExpectEnd();
                        node.Else = ParseBody(out end);
                    }
                    if (end != "endfor") throw new JinjaException("{% for %} without {% endfor %}");
                    ExpectEnd();
                    return node;
                }
                case "set":
                {
                    var names = new List<string> { ExpectName() };
                    string? attribute = null;
                    if (IsOp(".")) { _i++; attribute = ExpectName(); }
                    while (IsOp(",")) { _i++; names.Add(ExpectName()); }
                    if (!IsOp("=")) throw new JinjaException("block {% set %} is not supported");
                    _i++;
                    var value = ParseExpression();
                    ExpectEnd();
                    return new SetNode { Names = names, Attribute = attribute, Value = value };
                }
                case "break": ExpectEnd(); return new BreakNode();
                case "continue": ExpectEnd(); return new ContinueNode();
                default: throw new JinjaException($"unsupported statement {{% {keyword} %}}");
            }
        }

        public Expr ParseExpression() => ParseOr(allowConditional: true);

        private Expr ParseOr(bool allowConditional)
        {
            var e = ParseAnd();
            while (IsName("or")) { _i++; e = new Binary("or", e, ParseAnd()); }
            if (allowConditional && IsName("if"))
            {
                _i++;
                var cond = ParseOr(allowConditional: false);
                Expr? otherwise = null;
                if (IsName("else")) { _i++; otherwise = ParseOr(allowConditional: true); }
                return new Conditional(cond, e, otherwise);
            }
            return e;
        }

        private Expr ParseAnd()
        {
            var e = ParseNot();
            while (IsName("and")) { _i++; e = new Binary("and", e, ParseNot()); }
            return e;
        }

        private Expr ParseNot()
        {
            if (IsName("not")) { _i++; return new Unary("not", ParseNot()); }
            return ParseComparison();
        }

        private Expr ParseComparison()
        {
            var e = ParseConcat();
            while (true)
            {
                if (Peek.Kind == Kind.Op && Peek.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
                {
                    string op = Next().Value;
                    e = new Binary(op, e, ParseConcat());
                }
                else if (IsName("in")) { _i++; e = new Binary("in", e, ParseConcat()); }
                else if (IsName("not") && _i + 1 < tokens.Count && tokens[_i + 1].Kind == Kind.Name && tokens[_i + 1].Value == "in")
                {
                    _i += 2;
                    e = new Binary("not in", e, ParseConcat());
                }
                else return e;
            }
        }

        private Expr ParseConcat()
        {
            var e = ParseAdd();
            while (IsOp("~")) { _i++; e = new Binary("~", e, ParseAdd()); }
            return e;
        }

        private Expr ParseAdd()
        {
            var e = ParseMul();
            while (Peek.Kind == Kind.Op && Peek.Value is "+" or "-")
            {
                string op = Next().Value;
                e = new Binary(op, e, ParseMul());
            }
            return e;
        }

        private Expr ParseMul()
        {
            var e = ParseUnary();
            while (Peek.Kind == Kind.Op && Peek.Value is "*" or "/" or "//" or "%")
            {
                string op = Next().Value;
                e = new Binary(op, e, ParseUnary());
            }
            return e;
        }

        private Expr ParseUnary()
        {
            if (IsOp("-")) { _i++; return new Unary("-", ParseUnary()); }
            if (IsOp("+")) { _i++; return ParseUnary(); }
            return ParseFilters(ParsePostfix(ParsePrimary()));
        }

        /// <summary>Filters and tests bind tighter than arithmetic: "a + b | trim" trims b.</summary>
        private Expr ParseFilters(Expr e)
        {
            while (true)
            {
                if (IsOp("|"))
                {
                    _i++;
                    string name = ExpectName();
                    var args = IsOp("(") ? ParseCallArgs() : new CallArgs();
                    e = ParsePostfix(new Filter(e, name, args));
                }
                else if (IsName("is"))
                {
                    _i++;
                    bool negate = false;
                    if (IsName("not")) { _i++; negate = true; }
                    string name = Peek.Kind == Kind.Name ? Next().Value : throw new JinjaException($"expected a test name at offset {Peek.Offset}");
                    var args = new List<Expr>();
                    if (IsOp("(")) args.AddRange(ParseCallArgs().Positional);
                    else if (Peek.Kind is Kind.String or Kind.Integer or Kind.Float || (Peek.Kind == Kind.Name && !IsKeyword(Peek.Value)))
                        args.Add(ParsePostfix(ParsePrimary()));
                    e = new TestExpr(e, name, args, negate);
                }
                else return e;
            }
        }

        private static bool IsKeyword(string s) => s is "and" or "or" or "not" or "if" or "else" or "in" or "is";

        private Expr ParsePostfix(Expr e)
        {
            while (true)
            {
                if (IsOp(".")) { _i++; e = new Attr(e, Peek.Kind == Kind.Integer ? Next().Value : ExpectName()); }
                else if (IsOp("["))
                {
                    _i++;
                    Expr? a = null, b = null, c = null;
                    bool slice = false;
                    if (!IsOp(":")) a = ParseExpression();
                    if (IsOp(":"))
                    {
                        slice = true;
                        _i++;
                        if (!IsOp(":") && !IsOp("]")) b = ParseExpression();
                        if (IsOp(":")) { _i++; if (!IsOp("]")) c = ParseExpression(); }
                    }
                    ExpectOp("]");
                    e = slice ? new SliceExpr(e, a, b, c) : new Item(e, a!);
                }
                else if (IsOp("(")) e = new Call(e, ParseCallArgs());
                else return e;
            }
        }

        private CallArgs ParseCallArgs()
        {
            ExpectOp("(");
            var args = new CallArgs();
            while (!IsOp(")"))
            {
                if (Peek.Kind == Kind.Name && _i + 1 < tokens.Count && tokens[_i + 1].Kind == Kind.Op && tokens[_i + 1].Value == "=")
                {
                    string name = Next().Value;
                    _i++;
                    args.Named.Add((name, ParseExpression()));
                }
                else args.Positional.Add(ParseExpression());
                if (!IsOp(",")) break;
                _i++;
            }
            ExpectOp(")");
            return args;
        }

        private Expr ParsePrimary()
        {
            var t = Next();
            switch (t.Kind)
            {
                case Kind.String:
                    string s = t.Value;
                    while (Peek.Kind == Kind.String) s += Next().Value; // adjacent literals join
                    return new Literal(s);
                case Kind.Integer: return new Literal(long.Parse(t.Value, CultureInfo.InvariantCulture));
                case Kind.Float: return new Literal(double.Parse(t.Value, CultureInfo.InvariantCulture));
                case Kind.Name:
                    return t.Value switch
                    {
                        "true" or "True" => new Literal(true),
                        "false" or "False" => new Literal(false),
                        "none" or "None" => new Literal(null),
                        _ => new Name(t.Value),
                    };
                case Kind.Op when t.Value == "(":
                {
                    var e = ParseExpression();
                    if (IsOp(","))
                    {
                        var items = new List<Expr> { e };
                        while (IsOp(",")) { _i++; if (IsOp(")")) break; items.Add(ParseExpression()); }
                        ExpectOp(")");
                        return new ListExpr(items);
                    }
                    ExpectOp(")");
                    return e;
                }
                case Kind.Op when t.Value == "[":
                {
                    var items = new List<Expr>();
                    while (!IsOp("]"))
                    {
                        items.Add(ParseExpression());
                        if (!IsOp(",")) break;
                        _i++;
                    }
                    ExpectOp("]");
                    return new ListExpr(items);
                }
                case Kind.Op when t.Value == "{":
                {
                    var items = new List<(Expr, Expr)>();
                    while (!IsOp("}"))
                    {
                        var k = ParseExpression();
                        ExpectOp(":");
                        items.Add((k, ParseExpression()));
                        if (!IsOp(",")) break;
                        _i++;
                    }
                    ExpectOp("}");
                    return new DictExpr(items);
                }
                default: throw new JinjaException($"unexpected '{t.Value}' at offset {t.Offset}");
            }
        }
    }
}

/// <summary>A template that cannot be parsed or rendered, or a raise_exception() from the template.</summary>
internal sealed class JinjaException(string message) : MicroLmException(message);
