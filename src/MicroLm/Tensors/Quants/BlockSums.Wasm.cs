using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

/// <summary>WebAssembly pieces of the block formats whose C# dot adds one float term per block, in block
/// order, to a sum that starts at +0: Q4_1, Q5_0, Q5_1 and IQ4_NL per 32-value block with the Q8_0
/// activation, the K-quants and IQ4_XS per 256-value super-block with the Q8_K activation. A term's integer
/// parts (Σ w·x, Σ scale·Σ w·x, Σ min·Σ x) are exact integers (wrapping, like C#'s int), so any grouping of
/// them gives the C# integers; its float steps are the C# expression's, operation for operation.</summary>
internal static class BlockSums
{
    private const WasmType V = WasmType.V128, I = WasmType.I32, F = WasmType.F32;

    /// <summary>Pushes an i32x4 whose lanes add up to Σ w[k]·x[k] over 16 signed bytes: <paramref name="w"/> a
    /// v128 local, x read from memory at <paramref name="xp"/> + <paramref name="offset"/>.</summary>
    public static void EmitDot16(WasmFunction f, Local w, Local xp, uint offset)
    {
        f.Get(w).I16x8ExtendLowI8x16S().Get(xp).V128Load8x8S(offset).I32x4DotI16x8S();
        f.Get(w).I16x8ExtendHighI8x16S().Get(xp).V128Load8x8S(offset + 8).I32x4DotI16x8S();
        f.I32x4Add();
    }

    /// <summary>Pops an i32x4 and pushes the i32 sum of its lanes.</summary>
    public static void EmitLaneSum(WasmFunction f, Local scratch)
    {
        f.Set(scratch);
        f.Get(scratch).Get(scratch).Get(scratch).I8x16Shuffle(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7).I32x4Add().Set(scratch);
        f.Get(scratch).I32x4ExtractLane(0).Get(scratch).I32x4ExtractLane(1).I32Add();
    }

    /// <summary>Pushes the f32 of the IEEE half at <paramref name="p"/> + <paramref name="offset"/> (exact for every half).</summary>
    public static void EmitHalf(WasmFunction f, Local p, uint offset, Local scratch)
    {
        f.Get(p).I32Load16U(offset).Set(scratch);
        F16Kernel.EmitHalfToSingle(f, scratch);
    }

    /// <summary>Pushes a v128 of 16 bytes <paramref name="b"/>.</summary>
    public static void EmitSplat(WasmFunction f, int b) => f.I32Const(b).I8x16Splat();

    /// <summary>A row of 32-value blocks dotted with the Q8_0 activation (quants at <paramref name="x"/>, block
    /// scales at <paramref name="scales"/>): sum = +0, then per block sum += term. <paramref name="term"/> pushes
    /// the block's f32 term from the block's address, the activation block's address and its scale d_x.</summary>
    public static void EmitQ8_0Blocks(WasmFunction f, Local row, Local x, Local scales, Local n, int blockBytes,
        Action<WasmFunction, Local, Local, Local> term)
    {
        Local sum = f.Local(F), dx = f.Local(F), wp = f.Local(I), xp = f.Local(I), sp = f.Local(I), end = f.Local(I);
        f.F32Const(0).Set(sum);
        f.Get(row).Set(wp);
        f.Get(x).Set(xp);
        f.Get(scales).Set(sp);
        f.Get(x).Get(n).I32Add().Set(end);
        int done = f.Block();
        f.Get(xp).Get(end).I32GeS().BrIf(done);
        int block = f.Loop();
        f.Get(sp).F32Load().Set(dx);
        f.Get(sum);
        term(f, wp, xp, dx);
        f.F32Add().Set(sum);
        f.Get(wp).I32Const(blockBytes).I32Add().Set(wp);
        f.Get(sp).I32Const(4).I32Add().Set(sp);
        f.Get(xp).I32Const(Activation.Q8Block).I32Add().Tee(xp).Get(end).I32LtS().BrIf(block);
        f.End();
        f.End();
        f.Get(sum);
    }

    /// <summary>The term of a 32-value block with the Q8_0 activation, as the C# kernels write it:
    /// <c>isum·(d·d_x)</c>, plus <c>m·(d_x·Σq_x)</c> for the types with an offset m (f16 at <paramref name="minAt"/>;
    /// the activation's <see cref="Activation.Q8ScaledSums"/> is <c>d_x·Σq_x</c>, recomputed here from the quants).
    /// <paramref name="lo"/>/<paramref name="hi"/> hold the block's values 0–15 and 16–31 as signed bytes; d is the f16 at 0.</summary>
    public static void EmitQ8_0Term(WasmFunction f, Local wp, Local xp, Local dx, Local lo, Local hi, uint? minAt)
    {
        Local h = f.Local(I), s = f.Local(V);
        EmitDot16(f, lo, xp, 0);
        EmitDot16(f, hi, xp, 16);
        f.I32x4Add();
        EmitLaneSum(f, s);
        f.F32ConvertI32S();
        EmitHalf(f, wp, 0, h);
        f.Get(dx).F32Mul().F32Mul();                                    // isum · (d · d_x)
        if (minAt is uint m)
        {
            EmitHalf(f, wp, m, h);
            f.Get(dx);
            f.Get(xp).V128Load().I16x8ExtaddPairwiseI8x16S().Get(xp).V128Load(16).I16x8ExtaddPairwiseI8x16S().I16x8Add().I32x4ExtaddPairwiseI16x8S();
            EmitLaneSum(f, s);
            f.F32ConvertI32S().F32Mul().F32Mul();                       // m · (d_x · Σq_x)
            f.F32Add();
        }
    }

    /// <summary>Sets bit 4 of byte k of <paramref name="lo"/> (k = 0–15) and <paramref name="hi"/> (values 16–31)
    /// where bit k (16 + k) of the little-endian u32 at <paramref name="p"/> + <paramref name="at"/> is set: Q5's fifth bits.</summary>
    public static void EmitFifthBits(WasmFunction f, Local p, uint at, Local lo, Local hi, Local scratch)
    {
        ReadOnlySpan<byte> bits = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        f.Get(p).I32Load(at).I32x4Splat().Set(scratch);
        foreach (var (v, first) in new[] { (lo, (byte)0), (hi, (byte)2) })
        {
            byte second = (byte)(first + 1);
            f.Get(v);
            f.Get(scratch).V128Const(first, first, first, first, first, first, first, first, second, second, second, second, second, second, second, second).I8x16Swizzle();
            f.V128Const(bits).V128And().V128Const(bits).I8x16Eq();
            EmitSplat(f, 0x10);
            f.V128And().V128Or().Set(v);
        }
    }

    /// <summary>A row of 256-value super-blocks dotted with the Q8_K activation: quants at <paramref name="x"/>,
    /// and at <paramref name="blocks"/> the form's <see cref="Q8KForm.Blocks"/> (per super-block d as f32, then
    /// per 16 values Σq as i32). sum = +0, then per super-block sum += term. <paramref name="term"/> pushes the
    /// f32 term from the super-block's address, the activation's 256 quants, d_x, and its 16 sums.</summary>
    public static void EmitQ8KBlocks(WasmFunction f, Local row, Local x, Local blocks, Local n, int blockBytes,
        Action<WasmFunction, Local, Local, Local, Local> term)
    {
        const int Log2N = 8;
        System.Diagnostics.Debug.Assert(1 << Log2N == KBlock.N);
        Local sum = f.Local(F), dx = f.Local(F), wp = f.Local(I), xp = f.Local(I), dp = f.Local(I), sp = f.Local(I), end = f.Local(I);
        f.F32Const(0).Set(sum);
        f.Get(row).Set(wp);
        f.Get(x).Set(xp);
        f.Get(blocks).Set(dp);
        f.Get(blocks).Get(n).I32Const(Log2N).I32ShrS().I32Const(2).I32Shl().I32Add().Set(sp);   // the sums follow the n/256 d's
        f.Get(x).Get(n).I32Add().Set(end);
        int done = f.Block();
        f.Get(xp).Get(end).I32GeS().BrIf(done);
        int block = f.Loop();
        f.Get(dp).F32Load().Set(dx);
        f.Get(sum);
        term(f, wp, xp, dx, sp);
        f.F32Add().Set(sum);
        f.Get(wp).I32Const(blockBytes).I32Add().Set(wp);
        f.Get(dp).I32Const(4).I32Add().Set(dp);
        f.Get(sp).I32Const(4 * KBlock.N / 16).I32Add().Set(sp);
        f.Get(xp).I32Const(KBlock.N).I32Add().Tee(xp).Get(end).I32LtS().BrIf(block);
        f.End();
        f.End();
        f.Get(sum);
    }

    /// <summary>The float steps of a K-quant term: <c>(d_x·d)·isum</c>, minus <c>(d_x·dmin)·imin</c> when
    /// <paramref name="imin"/> is given (d and dmin are the f16s at <paramref name="dAt"/>, <paramref name="dminAt"/>;
    /// isum and imin are i32 locals).</summary>
    public static void EmitKTerm(WasmFunction f, Local wp, Local dx, Local isum, uint dAt, Local? imin, uint dminAt, Local h)
    {
        f.Get(dx);
        EmitHalf(f, wp, dAt, h);
        f.F32Mul().Get(isum).F32ConvertI32S().F32Mul();                  // d_x · d · isum
        if (imin is Local m)
        {
            f.Get(dx);
            EmitHalf(f, wp, dminAt, h);
            f.F32Mul().Get(m).F32ConvertI32S().F32Mul();                 // d_x · dmin · imin
            f.F32Sub();
        }
    }
}
