using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

// WebAssembly kernels of IQ4_NL and IQ4_XS (see Wasm.CompiledKernels), beside IQuantKernels.cs: a 4-bit code
// becomes its codebook value by one i8x16.swizzle of the 16-entry table; then the block sums of BlockSums in the
// order of the C# dots (IQ4_NL per 32-value block with Q8_0, IQ4_XS per super-block with Q8_K).

internal static class IQ4Wasm
{
    /// <summary>Replaces the v128 of 16 codes (0..15) on the stack by their codebook values (signed bytes).</summary>
    public static void EmitLookup(WasmFunction f, Local codes)
    {
        Span<byte> table = stackalloc byte[16];
        for (int i = 0; i < 16; i++) table[i] = (byte)IQ4.Values[i];
        f.V128Const(table).Get(codes).I8x16Swizzle();
    }

    /// <summary>Sets <paramref name="lo"/>/<paramref name="hi"/> to the values of the low and high nibbles of the 16 bytes at p + at.</summary>
    public static void EmitUnpack(WasmFunction f, Local p, uint at, Local lo, Local hi)
    {
        f.Get(p).V128Load(at).Set(hi);
        f.Get(hi); BlockSums.EmitSplat(f, 0xF); f.V128And().Set(lo);
        f.Get(hi).I32Const(4).I8x16ShrU().Set(hi);
        EmitLookup(f, lo); f.Set(lo);
        EmitLookup(f, hi); f.Set(hi);
    }
}

internal sealed partial class IQ4_NLKernel
{
    // Block: f16 d at 0, 16 bytes of codes at 2 (low nibbles values 0..15, high 16..31).
    internal override WasmDot WasmDot => static (f, row, x, scales, n) =>
        BlockSums.EmitQ8_0Blocks(f, row, x, scales, n, TensorTypes.Get(GgmlType.IQ4_NL).BytesPerBlock, static (f, p, xp, dx) =>
        {
            Local lo = f.Local(WasmType.V128), hi = f.Local(WasmType.V128);
            IQ4Wasm.EmitUnpack(f, p, 2, lo, hi);
            BlockSums.EmitQ8_0Term(f, p, xp, dx, lo, hi, minAt: null);
        });
}

internal sealed partial class IQ4_XSKernel
{
    // f16 d at 0, u16 scales_h at 2, scales_l[4] at 4, qs[128] at 8: sub-block s is one IQ4_NL block's codes at
    // 8 + 16s with the 6-bit scale (nibble s%2 of scales_l[s/2] | bits 2s..2s+1 of scales_h << 4) − 32.
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.IQ4_XS).BytesPerBlock, static (f, p, xp, dx, sums) =>
        {
            Local acc = f.Local(WasmType.V128), lo = f.Local(WasmType.V128), hi = f.Local(WasmType.V128), s4 = f.Local(WasmType.V128);
            Local isum = f.Local(WasmType.I32), h = f.Local(WasmType.I32), scalesH = f.Local(WasmType.I32);
            f.Get(p).I32Load16U(2).Set(scalesH);
            for (int s = 0; s < 8; s++)
            {
                IQ4Wasm.EmitUnpack(f, p, (uint)(8 + 16 * s), lo, hi);
                BlockSums.EmitDot16(f, lo, xp, (uint)(32 * s));
                BlockSums.EmitDot16(f, hi, xp, (uint)(32 * s + 16));
                f.I32x4Add();
                int sub = s;
                KBlockWasm.EmitScaledAdd(f, acc, s == 0, () =>
                {
                    f.Get(p).I32Load8U((uint)(4 + (sub >> 1))).I32Const(4 * (sub & 1)).I32ShrU().I32Const(0xF).I32And();
                    f.Get(scalesH).I32Const(2 * sub).I32ShrU().I32Const(3).I32And().I32Const(4).I32Shl().I32Or();
                    f.I32Const(32).I32Sub();
                });
            }
            f.Get(acc);
            BlockSums.EmitLaneSum(f, s4);
            f.Set(isum);
            BlockSums.EmitKTerm(f, p, dx, isum, 0, null, 0, h);
        });
}
