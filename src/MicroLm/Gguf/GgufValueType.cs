namespace MicroLm.Gguf;

/// <summary>The 13 metadata value types of GGUF.</summary>
internal enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>A metadata array as plain .NET data: <see cref="Items"/> is a typed array
/// (byte[], float[], string[], GgufArray[] for nested arrays, ...). Used by the writer and by
/// <see cref="GgufValue.ToObject"/>.</summary>
internal sealed record GgufArray(GgufValueType ElementType, Array Items);

internal static class GgufValueTypes
{
    /// <summary>Size of a fixed-size value, or 0 for string and array.</summary>
    public static int FixedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    public static bool IsKnown(uint t) => t <= (uint)GgufValueType.Float64;
}
