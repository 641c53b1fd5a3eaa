using MicroLm.Cli;

HostCommands.ChatBody = (o, stdout, stderr) => ChatCommand.Run(o, Console.In, stdout, stderr);
HostCommands.ServeBody = ServeCommand.Run;
return CliMain.Run(args, Console.Out, Console.Error);
