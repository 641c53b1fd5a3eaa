using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LLama.Native;

namespace MicroLm.Bench;

/// <summary>The instruction-set level both engines run at (--isa). MicroLm's level is the JIT's, fixed when the
/// process starts (DOTNET_EnableAVX512=0 hides AVX-512 in .NET 10; the older DOTNET_EnableAVX512F=0 no longer does), so a forced level re-runs the bench in a child process
/// with that variable set; llama.cpp's is LLamaSharp's matching CPU backend build, chosen before it loads.</summary>
internal enum IsaLevel { Native, Avx2, Avx512 }

internal static class Isa
{
    private const string ChildMarker = "MICROLM_BENCH_ISA_CHILD";

    public static IsaLevel Parse(string s) => s.ToLowerInvariant() switch
    {
        "native" => IsaLevel.Native,
        "avx2" => IsaLevel.Avx2,
        "avx512" => IsaLevel.Avx512,
        _ => throw new ArgumentException($"unknown --isa '{s}' (avx2, avx512, native)"),
    };

    /// <summary>When the level needs a different JIT environment than this process has, runs the same command in a
    /// child with it and returns the child's exit code; null when this process can run the bench itself.</summary>
    public static int? RunInChildIfNeeded(IsaLevel level, string[] args)
    {
        if (level == IsaLevel.Avx512 && !Avx512F.IsSupported)
            throw new ArgumentException("--isa avx512: this CPU (or the DOTNET_ environment) has no AVX-512");
        if (level == IsaLevel.Avx2 && !Avx2.IsSupported)
            throw new ArgumentException("--isa avx2: this CPU (or the DOTNET_ environment) has no AVX2");
        bool needsChild = level == IsaLevel.Avx2 && Vector512.IsHardwareAccelerated;
        if (!needsChild || Environment.GetEnvironmentVariable(ChildMarker) == "1") return null;

        var self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this process's executable");
        var start = new ProcessStartInfo(self) { UseShellExecute = false };
        // Under `dotnet MicroLm.Bench.dll` the host is dotnet: pass the assembly first.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") start.ArgumentList.Add(typeof(Isa).Assembly.Location);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["DOTNET_EnableAVX512"] = "0";  // .NET 10's knob (DOTNET_EnableAVX512F=0 no longer hides AVX-512)
        start.Environment[ChildMarker] = "1";
        Console.Error.WriteLine("--isa avx2: re-running with DOTNET_EnableAVX512=0");
        using var child = Process.Start(start) ?? throw new InvalidOperationException("could not start the child bench");
        child.WaitForExit();
        return child.ExitCode;
    }

    /// <summary>Which LLamaSharp CPU build to load: the requested level, or the best this CPU runs.</summary>
    public static AvxLevel LlamaCppLevel(IsaLevel level) => level switch
    {
        IsaLevel.Avx2 => AvxLevel.Avx2,
        IsaLevel.Avx512 => AvxLevel.Avx512,
        _ => Avx512F.IsSupported ? AvxLevel.Avx512 : Avx2.IsSupported ? AvxLevel.Avx2 : Avx.IsSupported ? AvxLevel.Avx : AvxLevel.None,
    };
}
