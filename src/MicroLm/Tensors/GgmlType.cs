namespace MicroLm.Tensors;

/// <summary>ggml's tensor type ids, exactly as stored in GGUF files.</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/// <summary>What every tensor type is: its name and block geometry. Kernels for a type live in
/// <see cref="Quants"/> and are looked up through the same table, so a type is described once.</summary>
internal sealed record TensorTypeInfo(GgmlType Type, string Name, int BlockSize, int BytesPerBlock)
{
    /// <summary>Decoding and dot products for this type; null where the runtime cannot compute with it yet.</summary>
    public Quants.RowKernel? Kernel { get; init; }

    /// <summary>Bytes of a row of <paramref name="elements"/> values (which must be a multiple of the block size).</summary>
    public long RowBytes(long elements) => elements / BlockSize * BytesPerBlock;
}

internal static class TensorTypes
{
    // Block geometry from the GGUF / ggml format description (values per block, bytes per block).
    private static readonly TensorTypeInfo[] Table =
    [
        new(GgmlType.F32, "F32", 1, 4) { Kernel = Quants.F32Kernel.Instance },
        new(GgmlType.F16, "F16", 1, 2) { Kernel = Quants.F16Kernel.Instance },
        new(GgmlType.Q4_0, "Q4_0", 32, Quants.Q4_0Kernel.BlockBytes) { Kernel = Quants.Q4_0Kernel.Instance },
        new(GgmlType.Q4_1, "Q4_1", 32, Quants.Q4_1Kernel.BlockBytes) { Kernel = Quants.Q4_1Kernel.Instance },
        new(GgmlType.Q5_0, "Q5_0", 32, Quants.Q5_0Kernel.BlockBytes) { Kernel = Quants.Q5_0Kernel.Instance },
        new(GgmlType.Q5_1, "Q5_1", 32, Quants.Q5_1Kernel.BlockBytes) { Kernel = Quants.Q5_1Kernel.Instance },
        new(GgmlType.Q8_0, "Q8_0", 32, Quants.Q8_0Kernel.BlockBytes) { Kernel = Quants.Q8_0Kernel.Instance },
        new(GgmlType.Q8_1, "Q8_1", 32, 36),
        new(GgmlType.Q2_K, "Q2_K", 256, 84) { Kernel = Quants.Q2_KKernel.Instance },
        new(GgmlType.Q3_K, "Q3_K", 256, 110) { Kernel = Quants.Q3_KKernel.Instance },
        new(GgmlType.Q4_K, "Q4_K", 256, 144) { Kernel = Quants.Q4_KKernel.Instance },
        new(GgmlType.Q5_K, "Q5_K", 256, 176) { Kernel = Quants.Q5_KKernel.Instance },
        new(GgmlType.Q6_K, "Q6_K", 256, 210) { Kernel = Quants.Q6_KKernel.Instance },
        new(GgmlType.Q8_K, "Q8_K", 256, 292),
        new(GgmlType.IQ2_XXS, "IQ2_XXS", 256, 66),
        new(GgmlType.IQ2_XS, "IQ2_XS", 256, 74),
        new(GgmlType.IQ3_XXS, "IQ3_XXS", 256, 98),
        new(GgmlType.IQ1_S, "IQ1_S", 256, 50),
        new(GgmlType.IQ4_NL, "IQ4_NL", 32, 18) { Kernel = Quants.IQ4_NLKernel.Instance },
        new(GgmlType.IQ3_S, "IQ3_S", 256, 110),
        new(GgmlType.IQ2_S, "IQ2_S", 256, 82),
        new(GgmlType.IQ4_XS, "IQ4_XS", 256, 136) { Kernel = Quants.IQ4_XSKernel.Instance },
        new(GgmlType.I8, "I8", 1, 1),
        new(GgmlType.I16, "I16", 1, 2),
        new(GgmlType.I32, "I32", 1, 4),
        new(GgmlType.I64, "I64", 1, 8),
        new(GgmlType.F64, "F64", 1, 8),
        new(GgmlType.IQ1_M, "IQ1_M", 256, 56),
        new(GgmlType.BF16, "BF16", 1, 2) { Kernel = Quants.BF16Kernel.Instance },
        new(GgmlType.TQ1_0, "TQ1_0", 256, 54),
        new(GgmlType.TQ2_0, "TQ2_0", 256, 66),
        new(GgmlType.MXFP4, "MXFP4", 32, 17),
    ];

    private static readonly TensorTypeInfo?[] ById = BuildIndex();

    private static TensorTypeInfo?[] BuildIndex()
    {
        var byId = new TensorTypeInfo?[64];
        foreach (var t in Table) byId[(int)t.Type] = t;
        return byId;
    }

    public static IReadOnlyList<TensorTypeInfo> All => Table;

    /// <summary>The type with ggml id <paramref name="id"/>, or null if the id is not a known type.</summary>
    public static TensorTypeInfo? TryGet(uint id) => id < ById.Length ? ById[id] : null;

    public static TensorTypeInfo Get(GgmlType type) =>
        TryGet((uint)type) ?? throw new ArgumentException($"unknown tensor type id {(uint)type}");

    public static bool TryParse(string name, out GgmlType type)
    {
        foreach (var t in Table)
            if (string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase)) { type = t.Type; return true; }
        type = default;
        return false;
    }
}
