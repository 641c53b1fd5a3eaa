using System.Reflection;

namespace MicroLm.Tests.Api;

/// <summary>The runtime's public surface, pinned: every public type and member, by reflection, must
/// equal Api/public-api.txt. Changing the surface is then a visible decision (a diff of that file);
/// MICROLM_UPDATE_API=1 rewrites the file from the assembly.</summary>
public class PublicSurfaceTests
{
    [Fact]
    public void Public_surface_equals_the_checked_in_list()
    {
        var actual = Describe(typeof(Model).Assembly);
        string source = Path.Combine(RepoRoot(), "tests", "MicroLm.Tests", "Api", "public-api.txt");
        if (Environment.GetEnvironmentVariable("MICROLM_UPDATE_API") == "1")
        {
            File.WriteAllText(source + ".tmp", string.Join('\n', actual) + "\n");
            File.Move(source + ".tmp", source, overwrite: true);
        }
        var expected = File.ReadAllLines(source).Where(l => l.Length > 0).ToList();
        var added = actual.Except(expected).ToList();
        var removed = expected.Except(actual).ToList();
        Assert.True(added.Count == 0 && removed.Count == 0,
            "the public surface changed (MICROLM_UPDATE_API=1 rewrites tests/MicroLm.Tests/Api/public-api.txt):\n" +
            string.Join('\n', added.Select(a => "+ " + a).Concat(removed.Select(r => "- " + r))));
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MicroLm.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("MicroLm.sln not found above " + AppContext.BaseDirectory);
    }

    internal static List<string> Describe(Assembly assembly)
    {
        var lines = new List<string>();
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        foreach (var t in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            string kind = t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct" : typeof(Delegate).IsAssignableFrom(t) ? "delegate" : "class";
            lines.Add($"{kind} {t.FullName}");
            foreach (var m in t.GetMembers(all))
            {
                bool visible = m switch
                {
                    MethodBase mb => (mb.IsPublic || mb.IsFamily || mb.IsFamilyOrAssembly) && !(mb.IsSpecialName && !(mb is ConstructorInfo) && !mb.Name.StartsWith("op_", StringComparison.Ordinal)),
                    FieldInfo f => (f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly) && !f.IsSpecialName,
                    PropertyInfo p => p.GetAccessors(true).Any(a => a.IsPublic || a.IsFamily || a.IsFamilyOrAssembly),
                    EventInfo e => e.AddMethod is { IsPublic: true },
                    _ => false,
                };
                if (!visible || m.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute))) continue;
                string stat = m is MethodBase { IsStatic: true } or FieldInfo { IsStatic: true } || m is PropertyInfo pi && pi.GetAccessors(true)[0].IsStatic ? "static " : "";
                string text = m switch
                {
                    PropertyInfo p => $"{p.PropertyType} {p.Name} {{{(p.GetMethod is { IsPublic: true } ? " get;" : "")}{(p.SetMethod is { IsPublic: true } ? (p.SetMethod.ReturnParameter.GetRequiredCustomModifiers().Any(c => c.Name == "IsExternalInit") ? " init;" : " set;") : "")} }}",
                    _ => m.ToString()!,
                };
                lines.Add($"  {m.MemberType.ToString().ToLowerInvariant()} {stat}{text}");
            }
        }
        return lines;
    }
}
