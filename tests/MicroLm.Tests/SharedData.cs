namespace MicroLm.Tests;

/// <summary>Finds ../shared (real models and reference data), which sits beside the repository root.</summary>
public static class SharedData
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { System.IO.Path.Combine(dir.FullName, "shared"), System.IO.Path.Combine(dir.FullName, "..", "shared") })
                if (Directory.Exists(System.IO.Path.Combine(candidate, "models")))
                    return System.IO.Path.GetFullPath(candidate);
        }
        throw new DirectoryNotFoundException("../shared (models and reference data) was not found above " + AppContext.BaseDirectory);
    }
}
