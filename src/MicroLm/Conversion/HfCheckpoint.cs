using System.Text.Json;

namespace MicroLm.Conversion;

/// <summary>A Hugging Face checkpoint directory: config.json, model.safetensors or a sharded
/// model.safetensors.index.json, and the tokenizer files. Tensors are read in place from the mapped shards.</summary>
internal sealed class HfCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<string, SafetensorsTensor> _tensors = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public string Directory { get; }
    public JsonElement Config { get; }
    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;

    public HfCheckpoint(string dir)
    {
        Directory = dir;
        if (!System.IO.Directory.Exists(dir)) throw new MicroLmException($"{dir}: no such directory");
        Config = ReadJson(System.IO.Path.Combine(dir, "config.json"), required: true)!.Value;
        if (Config.ValueKind != JsonValueKind.Object) throw new MicroLmException($"{dir}/config.json is not a JSON object");
        try
        {
            string single = System.IO.Path.Combine(dir, "model.safetensors"), index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
            if (File.Exists(index)) OpenShards(index);
            else if (File.Exists(single)) Add(SafetensorsFile.Open(single), null);
            else throw new MicroLmException($"{dir}: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are read)");
        }
        catch { Dispose(); throw; }
    }

    private void OpenShards(string index)
    {
        var json = ReadJson(index, required: true)!.Value;
        if (json.ValueKind != JsonValueKind.Object || !json.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new MicroLmException($"{index}: no weight_map object");
        var byFile = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var p in map.EnumerateObject())
        {
            string shard = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : throw new MicroLmException($"{index}: weight_map entry '{p.Name}' is not a file name");
            // A shard is a file beside the index, never a path elsewhere.
            if (shard.Length == 0 || shard != System.IO.Path.GetFileName(shard) || shard is "." or "..")
                throw new MicroLmException($"{index}: shard name '{shard}' is not a plain file name");
            if (!byFile.TryGetValue(shard, out var list)) byFile[shard] = list = [];
            list.Add(p.Name);
        }
        foreach (var (shard, names) in byFile)
        {
            string path = System.IO.Path.Combine(Directory, shard);
            if (!File.Exists(path)) throw new MicroLmException($"{index}: shard {shard} is missing");
            var file = SafetensorsFile.Open(path);
            Add(file, names);
        }
    }

    private void Add(SafetensorsFile file, List<string>? expected)
    {
        _files.Add(file);
        if (expected != null)
            foreach (var name in expected)
                if (!file.Tensors.ContainsKey(name)) throw new MicroLmException($"{file.Path}: the index lists tensor '{name}' in this shard but it is not there");
        foreach (var (name, t) in file.Tensors)
        {
            if (expected != null && !expected.Contains(name)) continue; // the index decides which shard holds a name
            if (!_tensors.TryAdd(name, t)) throw new MicroLmException($"{file.Path}: tensor '{name}' is also in another shard");
        }
    }

    public bool Has(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor without marking it used (dtype checks).</summary>
    public SafetensorsTensor Peek(string name) => _tensors[name];

    /// <summary>Marks a tensor as deliberately not converted (e.g. a tied lm_head).</summary>
    public void Ignore(string name) => _used.Add(name);

    /// <summary>The tensor, checked against the shape the config implies (outermost first).</summary>
    public SafetensorsTensor Tensor(string name, params long[] shape)
    {
        if (!_tensors.TryGetValue(name, out var t)) throw new MicroLmException($"checkpoint is missing tensor '{name}'");
        if (!t.Shape.SequenceEqual(shape))
            throw new MicroLmException($"tensor '{name}' has shape [{string.Join(", ", t.Shape)}] but config.json implies [{string.Join(", ", shape)}]");
        _used.Add(name);
        return t;
    }

    /// <summary>Names no mapping asked for (the caller decides which may be skipped).</summary>
    public IEnumerable<string> Unused => _tensors.Keys.Where(n => !_used.Contains(n));

    public int Int(string key, int? fallback = null)
    {
        if (Config.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i))
        {
            if (i <= 0 || i > 1 << 24) throw new MicroLmException($"config.json: {key} = {i} is out of range");
            return i;
        }
        if (Config.TryGetProperty(key, out var bad) && bad.ValueKind != JsonValueKind.Null)
            throw new MicroLmException($"config.json: {key} is not an integer");
        return fallback ?? throw new MicroLmException($"config.json has no {key}");
    }

    public float Float(string key, float fallback)
    {
        if (!Config.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind == JsonValueKind.Number ? v.GetSingle() : throw new MicroLmException($"config.json: {key} is not a number");
    }

    /// <summary>The key's string value; null when it is absent or not a string.</summary>
    public string? String(string key) =>
        Config.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>Whether the key is present with a value other than null (for options we do not support).</summary>
    public bool IsSet(string key) => Config.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    public bool Bool(string key, bool fallback)
    {
        if (!Config.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new MicroLmException($"config.json: {key} is not true or false"),
        };
    }

    public static JsonElement? ReadJson(string path, bool required)
    {
        if (!File.Exists(path))
            return required ? throw new MicroLmException($"{path} is missing") : null;
        var info = new FileInfo(path);
        if (info.Length > 256L << 20) throw new MicroLmException($"{path} is over 256 MiB");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64, AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            CheckText(doc.RootElement, path);
            return doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new MicroLmException($"{path} is not valid JSON ({e.Message})"); }
    }

    /// <summary>Every name and string of a parsed document must be text. Parsing checks only the structure: a
    /// string of invalid UTF-8 or with a lone surrogate escape ("\ud800") throws InvalidOperationException
    /// whenever it is read later, wherever that is; reading each once here makes it one clear error instead.</summary>
    internal static void CheckText(JsonElement e, string where)
    {
        try { Walk(e); }
        catch (InvalidOperationException) { throw new MicroLmException($"{where}: a JSON string is not valid text (invalid UTF-8 or a lone surrogate escape)"); }

        static void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var p in e.EnumerateObject()) { _ = p.Name; Walk(p.Value); }
                    break;
                case JsonValueKind.Array:
                    foreach (var x in e.EnumerateArray()) Walk(x);
                    break;
                case JsonValueKind.String:
                    _ = e.GetString();
                    break;
            }
        }
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
