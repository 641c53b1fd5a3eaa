using MicroLm.Cli;

Commands.HostCommands["chat"] = (o, stdout, stderr) => ChatCommand.Run(o, Console.In, stdout, stderr);
Commands.HostCommands["serve"] = (o, stdout, stderr) => ServeCommand.Run(o, stdout, stderr);
return CliMain.Run(args, Console.Out, Console.Error);
