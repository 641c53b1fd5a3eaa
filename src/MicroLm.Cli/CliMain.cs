using MicroLm.Gguf;

namespace MicroLm.Cli;

/// <summary>Command dispatch and the one place that turns errors into a single line and an exit code.</summary>
public static class CliMain
{
    /// <summary>Every command, each declared once (name, flags, body). A new command adds one line here.</summary>
    public static readonly IReadOnlyList<CommandSpec> All =
    [
        InspectCommand.Spec,
        Commands.RunSpec,
        Commands.TokenizeSpec,
        Commands.VerifySpec,
        Commands.ConvertSpec,
        BenchCommand.Spec,
        QuantizeCommand.Spec,
        PerplexityCommand.Spec,
        HostCommands.ChatSpec,
        HostCommands.ServeSpec,
        TrainCommand.Spec,
    ];

    public static string Usage
    {
        get
        {
            var lines = new List<string> { "usage: microlm <command> [options]" };
            foreach (var c in All)
                if (!c.Hidden) lines.Add($"  {c.Name} {c.Synopsis}");
            lines.Add("microlm <command> --help lists a command's options");
            return string.Join('\n', lines);
        }
    }

    public static CommandSpec? Find(string name) => All.FirstOrDefault(c => c.Name == name);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            if (args.Length == 2 && args[0] == "help" && Find(args[1]) is { } c)
            {
                stdout.WriteLine(c.Help());
                return 0;
            }
            stdout.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            var spec = Find(args[0]) ?? throw new UsageException($"unknown command '{Options.Printable(args[0])}' (microlm --help lists the commands)");
            var options = Options.Parse(spec, args[1..]);
            if (options.HelpRequested)
            {
                stdout.WriteLine(spec.Help());
                return 0;
            }
            return spec.Run(options, stdout, stderr);
        }
        catch (Exception e) when (IsUserError(e))
        {
            stdout.Flush();
            stderr.WriteLine($"microlm: error: {OneLine(Message(e))}");
            return 1;
        }
        catch (AccessViolationException)
        {
            // Reachable only with DOTNET_legacyCorruptedStateExceptionsPolicy=1 (otherwise .NET ends the process at the
            // fault). The runtime reads memory only through mapped files, so this is a mapped file cut short while in use.
            stdout.Flush();
            stderr.WriteLine("microlm: error: a memory-mapped file could not be read: it was truncated or replaced while in use (--no-mmap reads the model into memory once)");
            return 1;
        }
    }

    /// <summary>Failures that are the input's or the environment's fault, reported as one line.
    /// Anything else is a bug and keeps its stack trace.</summary>
    public static bool IsUserError(Exception e) =>
        e is GgufFormatException or UsageException or MicroLmException or IOException or UnauthorizedAccessException
            or KeyNotFoundException or OutOfMemoryException or InsufficientMemoryException;

    private static string Message(Exception e) => e switch
    {
        OutOfMemoryException or InsufficientMemoryException => "out of memory (" + e.Message + ")",
        _ => e.Message,
    };

    /// <summary>Error text on one line: line breaks and other control characters shown escaped.</summary>
    public static string OneLine(string message)
    {
        var sb = new System.Text.StringBuilder(message.Length);
        foreach (char c in message.TrimEnd())
            sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => " ", _ when char.IsControl(c) => $"\\u{(int)c:x4}", _ => c.ToString() });
        return sb.ToString();
    }
}

/// <summary>A mistake in how the command was called.</summary>
public sealed class UsageException(string message) : Exception(message);
