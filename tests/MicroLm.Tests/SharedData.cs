namespace MicroLm.Tests;

/// <summary>Finds the shared data folder (models, tokenizer vectors) that sits beside the repository:
/// walks up from the test assembly's directory to the first ancestor with a child folder named
/// <c>shared</c> that contains <c>models</c>. CI lays out &lt;root&gt;/repo and &lt;root&gt;/shared.</summary>
public static class SharedData
{
    private static readonly Lazy<string> LazyRoot = new(Find);

    /// <summary>Absolute path of the shared folder; throws with the searched path if there is none.</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>A path inside the shared folder, e.g. <c>Path("models", "gguf", "stories260K-F32.gguf")</c>.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string Find()
    {
        string start = AppContext.BaseDirectory;
        for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(System.IO.Path.Combine(candidate, "models"))) return candidate;
        }
        throw new DirectoryNotFoundException(
            $"no folder named 'shared' containing 'models' beside any ancestor of {start}; " +
            "clone the repository next to the shared data (<root>/repo and <root>/shared)");
    }
}
