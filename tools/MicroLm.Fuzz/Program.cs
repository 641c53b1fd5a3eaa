using MicroLm.Fuzz;
using SharpFuzz;

// microlm-fuzz TARGET            run under afl-fuzz (SharpFuzz's persistent out-of-process mode)
// microlm-fuzz seed DIR           write the seed corpus (DIR/TARGET/NAME)
// microlm-fuzz TARGET FILE...    replay inputs (prints what each does; exit 1 on an unexpected exception)
if (args.Length == 0)
{
    Console.Error.WriteLine($"usage: MicroLm.Fuzz TARGET [FILE...]; targets: {string.Join(", ", FuzzTargets.Names)}");
    return 2;
}
string shared = Environment.GetEnvironmentVariable("MICROLM_SHARED") ?? FindShared();
if (args[0] == "seed")
{
    FuzzSeeds.Write(args.Length > 1 ? args[1] : "tests/fuzz/corpus", shared);
    return 0;
}
var target = FuzzTargets.Get(args[0], shared);
if (args.Length > 1)
{
    int bad = 0;
    foreach (var f in args[1..])
    {
        try { target(File.ReadAllBytes(f)); Console.WriteLine($"ok        {f}"); }
        catch (Exception e) when (FuzzTargets.IsExpected(e)) { Console.WriteLine($"rejected  {f}: {e.Message}"); }
        catch (Exception e) { Console.WriteLine($"FINDING   {f}: {e}"); bad++; }
    }
    return bad == 0 ? 0 : 1;
}
Fuzzer.OutOfProcess.Run(stream =>
{
    using var ms = new MemoryStream();
    stream.CopyTo(ms);
    try { target(ms.ToArray()); }
    catch (Exception e) when (FuzzTargets.IsExpected(e)) { }
});
return 0;

static string FindShared()
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
    {
        string c = Path.Combine(d.FullName, "shared");
        if (Directory.Exists(Path.Combine(c, "models"))) return c;
    }
    throw new DirectoryNotFoundException("set MICROLM_SHARED to the shared data folder");
}
