namespace MicroLm.Cli;

public static partial class Commands
{
    public static int Dispatch(string command, Options o, TextWriter stdout, TextWriter stderr) => command switch
    {
        _ => throw new UsageException($"unknown command '{command}'\n{CliMain.Usage}"),
    };
}
