using MicroLm.Cli;

// Commands that read memory-mapped files run in a child process that can report a file truncated under it (see MappedFaultGuard).
if (MappedFaultGuard.Relaunch(args) is { } code) return code;

HostCommands.ChatBody = (o, stdout, stderr) => ChatCommand.Run(o, Console.In, stdout, stderr);
HostCommands.ServeBody = ServeCommand.Run;
return CliMain.Run(args, Console.Out, Console.Error);
