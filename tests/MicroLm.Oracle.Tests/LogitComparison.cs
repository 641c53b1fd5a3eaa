using Xunit.Abstractions;

namespace MicroLm.Oracle.Tests;

/// <summary>Our logits against llama.cpp's, position by position: the largest |Δlogit| of each position, the
/// largest |logit| (llama.cpp's), and whether the two argmaxes agree. Each test states its own tolerance on these.</summary>
internal sealed class LogitComparison
{
    /// <summary>A position "matches to float rounding" when no logit differs by more than this.</summary>
    public const double ExactWithin = 1e-5;

    public float[][] Ours { get; }
    public float[][] Theirs { get; }
    /// <summary>max_i |ours[p][i] − theirs[p][i]| for each position p.</summary>
    public double[] PositionMax { get; }
    public double MaxAbs { get; }
    /// <summary>The first position with the largest difference.</summary>
    public int Worst { get; }
    public double MaxAbsLogit { get; }
    public int Agree { get; }
    public int Exact { get; }
    public int Positions => Ours.Length;
    public double FirstMax => PositionMax[0];

    /// <summary>Compares every position (ORACLE_POSITIONS=1 prints each position's difference to <paramref name="output"/>).</summary>
    public LogitComparison(float[][] ours, float[][] theirs, ITestOutputHelper? output = null)
    {
        Assert.Equal(ours.Length, theirs.Length);
        Ours = ours;
        Theirs = theirs;
        PositionMax = new double[ours.Length];
        bool print = output is not null && Environment.GetEnvironmentVariable("ORACLE_POSITIONS") == "1";
        double maxAbs = 0, maxLogit = 0;
        for (int p = 0; p < ours.Length; p++)
        {
            Assert.Equal(ours[p].Length, theirs[p].Length);
            double positionMax = 0;
            for (int i = 0; i < ours[p].Length; i++)
            {
                positionMax = System.Math.Max(positionMax, System.Math.Abs((double)ours[p][i] - theirs[p][i]));
                maxLogit = System.Math.Max(maxLogit, System.Math.Abs(theirs[p][i]));
            }
            // Math.Max propagates NaN, and a NaN would then compare false against every tolerance below: fail here instead.
            Assert.True(double.IsFinite(positionMax), $"position {p}: a logit is not finite (ours or llama.cpp's)");
            PositionMax[p] = positionMax;
            if (print) output!.WriteLine($"  position {p}: max |Δ| {positionMax:E2}");
            if (positionMax > maxAbs) { maxAbs = positionMax; Worst = p; }
            if (positionMax <= ExactWithin) Exact++;
            if (ArgMaxAgrees(p)) Agree++;
        }
        MaxAbs = maxAbs;
        MaxAbsLogit = maxLogit;
    }

    public bool ArgMaxAgrees(int position) => OurModel.ArgMax(Ours[position]) == OurModel.ArgMax(Theirs[position]);
}
