using MicroLm.Gguf;

namespace MicroLm.Cli;

/// <summary>Command dispatch and the one place that turns errors into a single line and an exit code.</summary>
public static class CliMain
{
    public const string Usage = """
        usage: microlm <command> [options]
          inspect FILE [--json]                  header, metadata, tensors, memory envelope
          run -m FILE -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
              [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX] [--tokenizer TOK.bin]
          tokenize -m FILE (-p TEXT | -f FILE) [--no-bos]
          verify -m FILE (-p TEXT | --ids "1 2 3") -n N [sampling flags] [-t THREADS] [--batch B]
              [--expect TRACE] [--dump-logits PATH]
          convert llama2c MODEL.bin --tokenizer TOK.bin -o OUT.gguf
          bench -m FILE [-t 1,2] [-p 128] [-n 128] [-r 5] [--all-logits]
          chat -m FILE [--system S] [-n N] [sampling flags] [-c CTX] [-t THREADS]
          serve -m FILE [--host H] [--port P] [--parallel N] [--queue N] [--api-key K] [-c CTX] [-n MAX]
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            var rest = args[1..];
            return args[0] switch
            {
                "inspect" => InspectCommand.Run(new Options(rest), stdout),
                _ => Commands.Dispatch(args[0], new Options(rest), stdout, stderr),
            };
        }
        catch (Exception e) when (e is GgufFormatException or UsageException or MicroLmException or IOException
                                      or UnauthorizedAccessException or KeyNotFoundException)
        {
            stderr.WriteLine($"microlm: error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A mistake in how the command was called.</summary>
public sealed class UsageException(string message) : Exception(message);
