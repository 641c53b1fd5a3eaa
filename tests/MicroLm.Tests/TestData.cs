namespace MicroLm.Tests;

/// <summary>Where the shared model files are: the nearest "shared/models" folder at or above the test binaries.</summary>
internal static class TestData
{
    public static readonly string? ModelsDir = Find();

    private static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "models");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static string Require(string relative)
    {
        if (ModelsDir == null) throw new InvalidOperationException("no shared/models folder above " + AppContext.BaseDirectory);
        string path = Path.Combine(ModelsDir, relative);
        if (!File.Exists(path)) throw new FileNotFoundException("test model missing", path);
        return path;
    }
}
