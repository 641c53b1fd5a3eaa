namespace MicroLm.Tests;

/// <summary>Finds the shared data folder (models, tokenizer vectors) that sits beside the repository:
/// walks up from the test assembly's directory to the first ancestor with a child folder named
/// <c>shared</c> that contains <c>models</c>. CI lays out &lt;root&gt;/repo and &lt;root&gt;/shared.
/// A clone with nothing beside it still runs the tests: those that read the folder are marked
/// <see cref="SharedFactAttribute"/> / <see cref="SharedTheoryAttribute"/> and are skipped, with the reason
/// shown, when it is absent — unless <c>CI</c> or <c>MICROLM_REQUIRE_SHARED</c> is set, where they run and fail,
/// so CI cannot pass by skipping them.</summary>
public static class SharedData
{
    private static readonly string? Found = Find();

    /// <summary>Whether the shared folder is beside the repository.</summary>
    public static bool Available => Found != null;

    /// <summary>Whether tests must not be skipped for want of the folder (CI; or MICROLM_REQUIRE_SHARED=1).</summary>
    public static bool Required => IsSet("MICROLM_REQUIRE_SHARED") || IsSet("CI");

    /// <summary>Why a test that reads the folder is skipped, or null when it runs (folder present, or required).</summary>
    public static string? SkipReason => Available || Required
        ? null
        : "needs the shared test data (../shared beside the repository: real models, tokenizer vectors); not found, so skipped";

    /// <summary>Absolute path of the shared folder; throws with the searched path if there is none, and throws if
    /// the test asking is not a <see cref="SharedFactAttribute"/> / <see cref="SharedTheoryAttribute"/>
    /// (<see cref="RequireSharedTest"/>).</summary>
    public static string Root
    {
        get
        {
            RequireSharedTest();
            return Found ?? throw new DirectoryNotFoundException(
                $"no folder named 'shared' containing 'models' beside any ancestor of {AppContext.BaseDirectory}; " +
                "clone the repository next to the shared data (<root>/repo and <root>/shared)" +
                (Required ? " (CI/MICROLM_REQUIRE_SHARED is set, so the tests that need it fail instead of being skipped)" : ""));
        }
    }

    /// <summary>A test that reads the folder must say so, or a clone without it fails the test instead of skipping
    /// it: throws if the test method on the calling stack (found through async state machines, lambdas and local
    /// functions by their names) is a plain Fact or Theory. Reads from outside a test method (class fixtures,
    /// MemberData) have no test method on the stack and are not checked.</summary>
    public static void RequireSharedTest()
    {
        foreach (var frame in new System.Diagnostics.StackTrace().GetFrames())
        {
            if (frame.GetMethod() is not { } method) continue;
            foreach (var test in SourceMethods(method))
            {
                var fact = test.GetCustomAttributes(typeof(FactAttribute), inherit: true).FirstOrDefault();
                if (fact is null) continue;
                if (fact is SharedFactAttribute or SharedTheoryAttribute) return;
                throw new InvalidOperationException(
                    $"{test.DeclaringType?.Name}.{test.Name} reads the shared folder but is [{fact.GetType().Name.Replace("Attribute", "")}]: " +
                    "mark it [SharedFact] or [SharedTheory], so that a clone without ../shared skips it");
            }
        }
    }

    /// <summary>The methods a stack frame's method was written as: itself, or for compiler-generated code
    /// (&lt;Name&gt;d__3.MoveNext of an async method, &lt;Name&gt;b__3_0 of a lambda, &lt;Name&gt;g__Local|3_0 of a
    /// local function) the methods called Name of the first type that is not compiler-generated.</summary>
    private static IEnumerable<System.Reflection.MethodBase> SourceMethods(System.Reflection.MethodBase method)
    {
        var type = method.DeclaringType;
        string? name = method.Name.StartsWith('<') ? Between(method.Name)
            : type is { Name: ['<', ..] } ? Between(type.Name) : null;
        if (name is null) return [method];
        while (type is { Name: ['<', ..] }) type = type.DeclaringType;
        if (type is null || name.Length == 0) return [];
        return type.GetMethods(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Static |
                               System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)
            .Where(m => m.Name == name);
    }

    private static string Between(string generated)
    {
        string rest = generated.TrimStart('<');
        int end = rest.IndexOf('>');
        return end < 0 ? "" : rest[..end];
    }

    /// <summary>A path inside the shared folder, e.g. <c>Path("models", "gguf", "stories260K-F32.gguf")</c>.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static bool IsSet(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } v && v != "0" && !v.Equals("false", StringComparison.OrdinalIgnoreCase);

    private static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(System.IO.Path.Combine(candidate, "models"))) return candidate;
        }
        return null;
    }
}

/// <summary>A fact that reads the shared data: skipped with the reason shown when the folder is absent
/// (and not required; see <see cref="SharedData"/>).</summary>
public sealed class SharedFactAttribute : FactAttribute
{
    public SharedFactAttribute()
    {
        if (SharedData.SkipReason is { } reason) Skip = reason;
    }
}

/// <summary>A theory that reads the shared data (its data too may come from there): skipped with the reason
/// shown when the folder is absent (and not required; see <see cref="SharedData"/>). A skipped theory's data
/// is not enumerated.</summary>
public sealed class SharedTheoryAttribute : TheoryAttribute
{
    public SharedTheoryAttribute()
    {
        if (SharedData.SkipReason is { } reason) Skip = reason;
    }
}
