using System.Reflection;
using MicroLm.Models;

namespace MicroLm.Cli;

/// <summary>Where the model comes from: -m FILE, -hf OWNER/REPO[:FILE] or --model-url URL (downloaded
/// into the cache, see <see cref="ModelDownloader"/>), or — with none of them — the default model
/// embedded in the CLI: a small LLaMA that MicroLm trained on its own generated stories
/// (models/README.md says how to rebuild it byte for byte).</summary>
public static class ModelSource
{
    public const string DefaultModelName = "microlm-stories.gguf";

    /// <summary>The model file's path, or null for the embedded default model.</summary>
    public static string? Resolve(Options o, TextWriter? progress = null)
    {
        int given = (o.Has("-m", "--model") ? 1 : 0) + (o.Has("-hf", "--hf-repo") ? 1 : 0) + (o.Has("--model-url", "-mu") ? 1 : 0);
        if (given > 1) throw new UsageException("give only one of -m, -hf and --model-url");
        if (o.Get("-m", "--model") is { } path) return path;
        if (given == 1 && OperatingSystem.IsBrowser()) throw new UsageException("-hf and --model-url download with the CLI; in the browser load the file by URL");
        if (o.Get("-hf", "--hf-repo") is { } repo)
        {
            if (o.Get("--hf-file", "-hff") is { } file) repo = repo.Split(':')[0] + ":" + file;
            return ModelDownloader.FromEnvironment(progress ?? Console.Error).FromHuggingFace(repo);
        }
        if (o.Get("--model-url", "-mu") is { } url) return ModelDownloader.FromEnvironment(progress ?? Console.Error).FromUrl(url);
        return null;
    }

    /// <summary>The embedded default model's bytes.</summary>
    public static byte[] DefaultModel()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(DefaultModelName)
            ?? throw new MicroLmException("this build has no embedded default model; pass -m FILE");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public static Model Load(Options o, TextWriter? progress = null) =>
        Resolve(o, progress) is { } path ? Model.Load(path) : Model.Load(DefaultModel());
}
