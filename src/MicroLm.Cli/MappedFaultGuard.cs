using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MicroLm.Cli;

/// <summary>Reading a memory-mapped model that another process truncates faults (SIGBUS on Linux). .NET turns the
/// fault into an AccessViolationException, but ends the process at it with a stack trace unless
/// DOTNET_legacyCorruptedStateExceptionsPolicy=1 was set when the runtime started; then it is an exception like any
/// other and <see cref="CliMain"/> reports it in one line. The setting is read only from the environment at start-up
/// (not from runtimeconfig.json, not later), so a command that reads mapped files starts itself again with it set
/// and passes on its exit code: one more process start (tens of milliseconds). `serve` and `chat` are not
/// relaunched (a supervisor's signals must reach them directly); they check the file between uses
/// (Session.Evaluate), and `--no-mmap` removes the risk. Set MICROLM_NO_RELAUNCH=1 to run in one process.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("browser")]
internal static class MappedFaultGuard
{
    public const string Variable = "DOTNET_legacyCorruptedStateExceptionsPolicy";
    private static readonly HashSet<string> Commands = new(StringComparer.Ordinal)
        { "run", "verify", "bench", "perplexity", "quantize", "convert", "inspect", "tokenize" };

    /// <summary>The relaunched process's exit code, or null when this process should run the command itself.</summary>
    public static int? Relaunch(string[] args)
    {
        if (OperatingSystem.IsWindows() || args.Length == 0 || !Commands.Contains(args[0])) return null;
        if (Environment.GetEnvironmentVariable(Variable) == "1" || Environment.GetEnvironmentVariable("MICROLM_NO_RELAUNCH") == "1") return null;
        if (args.Contains("--no-mmap") || args.Contains("-h") || args.Contains("--help")) return null;
        if (Environment.ProcessPath is not { } exe) return null;
        var start = new ProcessStartInfo(exe) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") // `dotnet microlm.dll ...`: run the same assembly
            start.ArgumentList.Add(typeof(MappedFaultGuard).Assembly.Location);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment[Variable] = "1";
        Process child;
        try { child = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception) { return null; } // cannot start a process here: run in this one
        using (child)
        {
            // Ctrl+C and Ctrl+\ reach the whole process group: the child acts on them; this process waits for its code.
            // A SIGTERM sent to this process alone ends the child.
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
            using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => c.Cancel = true);
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                try { child.Kill(); } catch (InvalidOperationException) { }
            });
            child.WaitForExit();
            return child.ExitCode;
        }
    }
}
