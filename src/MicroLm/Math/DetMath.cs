namespace MicroLm.Math;

/// <summary>Placeholder; replaced by the deterministic math library.</summary>
public static class DetMath
{
}
