using MicroLm.Tensors;

namespace MicroLm.Quantization;

/// <summary>llama.cpp's file types (llama_ftype, the value of <c>general.file_type</c>) that
/// <c>microlm quantize</c> writes, under llama-quantize's names.</summary>
internal enum FileType : uint
{
    ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q4_1 = 3, MOSTLY_Q8_0 = 7, MOSTLY_Q5_0 = 8, MOSTLY_Q5_1 = 9,
    MOSTLY_Q2_K = 10, MOSTLY_Q3_K_S = 11, MOSTLY_Q3_K_M = 12, MOSTLY_Q3_K_L = 13, MOSTLY_Q4_K_S = 14, MOSTLY_Q4_K_M = 15,
    MOSTLY_Q5_K_S = 16, MOSTLY_Q5_K_M = 17, MOSTLY_Q6_K = 18, MOSTLY_IQ4_NL = 25, MOSTLY_IQ4_XS = 30, MOSTLY_BF16 = 32,
}

/// <summary>A quantization preset: its llama-quantize name, file type and default tensor type.</summary>
internal sealed record QuantPreset(string Name, FileType FileType, GgmlType DefaultType)
{
    public static readonly QuantPreset[] All =
    [
        new("F32", FileType.ALL_F32, GgmlType.F32),
        new("F16", FileType.MOSTLY_F16, GgmlType.F16),
        new("BF16", FileType.MOSTLY_BF16, GgmlType.BF16),
        new("Q8_0", FileType.MOSTLY_Q8_0, GgmlType.Q8_0),
        new("Q4_0", FileType.MOSTLY_Q4_0, GgmlType.Q4_0),
        new("Q4_1", FileType.MOSTLY_Q4_1, GgmlType.Q4_1),
        new("Q5_0", FileType.MOSTLY_Q5_0, GgmlType.Q5_0),
        new("Q5_1", FileType.MOSTLY_Q5_1, GgmlType.Q5_1),
        new("Q2_K", FileType.MOSTLY_Q2_K, GgmlType.Q2_K),
        new("Q3_K_S", FileType.MOSTLY_Q3_K_S, GgmlType.Q3_K),
        new("Q3_K_M", FileType.MOSTLY_Q3_K_M, GgmlType.Q3_K),
        new("Q3_K_L", FileType.MOSTLY_Q3_K_L, GgmlType.Q3_K),
        new("Q4_K_S", FileType.MOSTLY_Q4_K_S, GgmlType.Q4_K),
        new("Q4_K_M", FileType.MOSTLY_Q4_K_M, GgmlType.Q4_K),
        new("Q5_K_S", FileType.MOSTLY_Q5_K_S, GgmlType.Q5_K),
        new("Q5_K_M", FileType.MOSTLY_Q5_K_M, GgmlType.Q5_K),
        new("Q6_K", FileType.MOSTLY_Q6_K, GgmlType.Q6_K),
        new("IQ4_NL", FileType.MOSTLY_IQ4_NL, GgmlType.IQ4_NL),
        new("IQ4_XS", FileType.MOSTLY_IQ4_XS, GgmlType.IQ4_XS),
    ];

    /// <summary>The preset named <paramref name="name"/> (case-insensitive; llama-quantize's aliases
    /// Q3_K → Q3_K_M, Q4_K → Q4_K_M, Q5_K → Q5_K_M accepted), or null.</summary>
    public static QuantPreset? Find(string name)
    {
        string n = name.ToUpperInvariant() switch { "Q3_K" => "Q3_K_M", "Q4_K" => "Q4_K_M", "Q5_K" => "Q5_K_M", var s => s };
        return All.FirstOrDefault(p => p.Name == n);
    }

    public static string Names => string.Join(", ", All.Select(p => p.Name));

    public bool IsQuantized => DefaultType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16);
}
