using MicroLm.Cli;
using static MicroLm.Tests.Cli.CliRun;

namespace MicroLm.Tests.Cli;

/// <summary>The strict parser: every command's declared flags, and nothing else, are accepted.</summary>
public class CliParserTests
{
    private static readonly CommandSpec Spec = new()
    {
        Name = "demo",
        Synopsis = "[options] WORD",
        Summary = "A command for the parser's tests.",
        Flags =
        [
            Flag.Switch("--ignore-eos", "a switch"),
            Flag.Int("-n|--n-predict", "N", "an int", min: -1, max: 100),
            Flag.Float("--temp", "T", "a float", min: 0),
            Flag.Path("-o|--output", "FILE", "a path"),
            Flag.Text("-p", "TEXT", "text", allowEmpty: true),
            Flag.UInt64("--seed", "S", "a seed"),
            Flag.IntList("-t", "N,N", "a list", min: 1),
        ],
        MaxPositional = 1,
        Run = (_, _, _) => 0,
    };

    private static string ParseError(params string[] args) =>
        Assert.Throws<UsageException>(() => Options.Parse(Spec, args)).Message;

    [Fact]
    public void A_switch_never_takes_the_next_word()
    {
        var o = Options.Parse(Spec, ["--ignore-eos", "-n", "3"]);
        Assert.True(o.Has("--ignore-eos"));
        Assert.Equal(3, o.Int(0, "-n"));
        Assert.Empty(o.Positional);
    }

    [Fact]
    public void Values_are_found_by_any_name_and_the_last_one_wins()
    {
        var o = Options.Parse(Spec, ["--n-predict", "3", "-n", "5", "--temp=0.5", "-p", "", "--seed", "-1", "-t", "1,2"]);
        Assert.Equal(5, o.Int(0, "-n"));
        Assert.Equal(5, o.Int(0, "--n-predict"));
        Assert.Equal(0.5f, o.Float(1, "--temp"));
        Assert.Equal("", o.Get("-p"));
        Assert.Equal(ulong.MaxValue, o.ULong(0, "--seed"));
        Assert.Equal([1, 2], o.IntList([], "-t"));
    }

    [Theory]
    [InlineData("unknown option --tmp for demo (did you mean --temp?)", "--tmp", "0")]
    [InlineData("unknown option --frobnicate", "--frobnicate")]
    [InlineData("unexpected argument 'b'", "a", "b")] // a second positional word
    [InlineData("-n needs a value", "-n")]
    [InlineData("-n expects an integer, got 'x'", "-n", "x")]
    [InlineData("-n must be from -1 to 100, got '101'", "-n", "101")]
    [InlineData("-n must be from -1 to 100, got '-2'", "-n", "-2")]
    [InlineData("-n expects an integer, got '99999999999999999999'", "-n", "99999999999999999999")]
    [InlineData("--temp expects a finite number, got 'NaN'", "--temp", "NaN")]
    [InlineData("--temp expects a finite number, got 'Infinity'", "--temp", "Infinity")]
    [InlineData("--temp expects a finite number, got '1e999'", "--temp", "1e999")]
    [InlineData("--temp must be at least 0, got '-1'", "--temp", "-1")]
    [InlineData("-o needs a non-empty FILE", "-o", "")]
    [InlineData("--seed expects an integer", "--seed", "1.5")]
    [InlineData("-t must be at least 1", "-t", "1,0")]
    [InlineData("-t expects integers", "-t", ",")]
    [InlineData("--ignore-eos is a switch", "--ignore-eos=1")]
    public void Bad_command_lines_are_one_usage_error(string expected, params string[] args)
    {
        string message = ParseError(args);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void Control_characters_in_a_bad_word_are_escaped()
    {
        string message = ParseError("--x\u001b[31m\nrm");
        Assert.DoesNotContain('\u001b', message);
        Assert.DoesNotContain('\n', message);
        Assert.Contains("\\u001b", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Negative_numbers_are_values_and_positional_words()
    {
        var o = Options.Parse(Spec, ["-n", "-1", "-5"]);
        Assert.Equal(-1, o.Int(0, "-n"));
        Assert.Equal(["-5"], o.Positional);
    }

    [Fact]
    public void Help_wins_anywhere_a_flag_may_stand_but_not_as_a_value()
    {
        Assert.True(Options.Parse(Spec, ["--bogus", "--help"]).HelpRequested);
        Assert.True(Options.Parse(Spec, ["-h"]).HelpRequested);
        var o = Options.Parse(Spec, ["-p", "--help"]);
        Assert.False(o.HelpRequested);
        Assert.Equal("--help", o.Get("-p"));
    }

    [Fact]
    public void Reading_an_undeclared_flag_is_a_programming_error()
    {
        var o = Options.Parse(Spec, []);
        Assert.Throws<InvalidOperationException>(() => o.Get("--top-k"));
    }

    public static TheoryData<string> CommandNames() => [.. CliMain.All.Select(c => c.Name)];

    [Theory, MemberData(nameof(CommandNames))]
    public void Every_command_prints_its_flags_with_help(string command)
    {
        var spec = CliMain.Find(command)!;
        var (code, output, err) = Run(command, "--help");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.StartsWith($"usage: microlm {command} ", output, StringComparison.Ordinal);
        foreach (var f in spec.Flags)
            foreach (var n in f.Names) Assert.Contains(n, output, StringComparison.Ordinal);
        Assert.Contains("-h, --help", output, StringComparison.Ordinal);
        Assert.Equal(output, Run("help", command).Out);
    }

    [Fact]
    public void Every_command_declares_each_name_once()
    {
        Assert.Equal(CliMain.All.Count, CliMain.All.Select(c => c.Name).Distinct().Count());
        foreach (var c in CliMain.All)
        {
            var names = c.Flags.SelectMany(f => f.Names).ToList();
            Assert.True(names.Count == names.Distinct().Count(), $"{c.Name} declares a flag name twice");
            Assert.DoesNotContain("-h", names);
            Assert.DoesNotContain("--help", names);
            Assert.All(names, n => Assert.StartsWith("-", n, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void The_overview_lists_every_command()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        foreach (var c in CliMain.All.Where(c => !c.Hidden)) Assert.Contains($"  {c.Name} ", output, StringComparison.Ordinal);
        Assert.Equal(2, Run().Code);
        AssertError(Run("frobnicate"), "unknown command 'frobnicate'");
    }
}
