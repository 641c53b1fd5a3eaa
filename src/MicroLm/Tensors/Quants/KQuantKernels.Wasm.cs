using MicroLm.Tensors.Wasm;

namespace MicroLm.Tensors.Quants;

// WebAssembly kernels of the K-quants (see Wasm.CompiledKernels), beside KQuantKernels.cs: per super-block the
// exact integers isum = Σ_sub scale·Σ q_w·q_x (and imin = Σ_sub min·Σ q_x from the Q8_K form's per-16 sums),
// then the C# BlockDot's float steps, added in super-block order (BlockSums.EmitQ8KBlocks). The sub-blocks are
// unrolled, so every byte offset, shift and mask below is a constant of the layout in KQuantKernels.cs.

internal static class KBlockWasm
{
    /// <summary>Pushes the 6-bit scale (or, with <paramref name="min"/>, the min) of sub-block
    /// <paramref name="j"/> of a Q4_K/Q5_K block whose 12 scale bytes start at <paramref name="at"/>, as <see cref="KBlock.ScaleMin"/>.</summary>
    public static void EmitScaleMin(WasmFunction f, Local p, uint at, int j, bool min)
    {
        uint b = at + (uint)j;
        if (j < 4)
            f.Get(p).I32Load8U(min ? b + 4 : b).I32Const(63).I32And();
        else if (!min)
            f.Get(p).I32Load8U(b + 4).I32Const(0xF).I32And().Get(p).I32Load8U(b - 4).I32Const(6).I32ShrU().I32Const(4).I32Shl().I32Or();
        else
            f.Get(p).I32Load8U(b + 4).I32Const(4).I32ShrU().Get(p).I32Load8U(b).I32Const(6).I32ShrU().I32Const(4).I32Shl().I32Or();
    }

    /// <summary>Replaces the v128 on the stack by its bytes shifted left (<paramref name="shift"/> &gt; 0) or right (unsigned).</summary>
    public static void EmitShift(WasmFunction f, int shift)
    {
        if (shift > 0) f.I32Const(shift).I8x16Shl();
        else if (shift < 0) f.I32Const(-shift).I8x16ShrU();
    }

    /// <summary>Adds the i32x4 on the stack times the i32 scale pushed by <paramref name="scale"/> to
    /// <paramref name="acc"/> (or sets it, for the first sub-block).</summary>
    public static void EmitScaledAdd(WasmFunction f, Local acc, bool first, Action scale)
    {
        scale();
        f.I32x4Splat().I32x4Mul();
        if (!first) f.Get(acc).I32x4Add();
        f.Set(acc);
    }
}

internal sealed partial class Q2_KKernel
{
    // scales[16] at 0 (low nibble scale, high nibble min), qs[64] at 16, f16 d at 80, dmin at 82.
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.Q2_K).BytesPerBlock, static (f, p, xp, dx, sums) =>
        {
            Local acc = f.Local(WasmType.V128), w = f.Local(WasmType.V128), s4 = f.Local(WasmType.V128);
            Local isum = f.Local(WasmType.I32), imin = f.Local(WasmType.I32), h = f.Local(WasmType.I32);
            for (int s = 0; s < 16; s++)
            {
                int half = s >> 3, shift = 2 * ((s & 7) >> 1), l0 = 32 * half + (s & 1) * 16;
                f.Get(p).V128Load((uint)(16 + l0));
                KBlockWasm.EmitShift(f, -shift);
                BlockSums.EmitSplat(f, 3);
                f.V128And().Set(w);
                BlockSums.EmitDot16(f, w, xp, (uint)(16 * s));
                int sub = s;
                KBlockWasm.EmitScaledAdd(f, acc, s == 0, () => f.Get(p).I32Load8U((uint)sub).I32Const(0xF).I32And());
            }
            f.Get(acc);
            BlockSums.EmitLaneSum(f, s4);
            f.Set(isum);
            for (int s = 0; s < 16; s++)
            {
                f.Get(p).I32Load8U((uint)s).I32Const(4).I32ShrU().Get(sums).I32Load((uint)(4 * s)).I32Mul();
                if (s > 0) f.I32Add();
            }
            f.Set(imin);
            BlockSums.EmitKTerm(f, p, dx, isum, 80, imin, 82, h);
        });
}

internal sealed partial class Q3_KKernel
{
    // hmask[32] at 0, qs[64] at 32, scales[12] at 96 (16 six-bit scales, offset 32), f16 d at 108.
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.Q3_K).BytesPerBlock, static (f, p, xp, dx, sums) =>
        {
            Local acc = f.Local(WasmType.V128), w = f.Local(WasmType.V128), s4 = f.Local(WasmType.V128);
            Local isum = f.Local(WasmType.I32), h = f.Local(WasmType.I32);
            for (int s = 0; s < 16; s++)
            {
                int half = s >> 3, j = (s & 7) >> 1, l0 = (s & 1) * 16, m = 1 << (4 * half + j);
                // ((q >> 2j) & 3) − (the hmask bit is clear ? 4 : 0)
                f.Get(p).V128Load((uint)(32 + 32 * half + l0));
                KBlockWasm.EmitShift(f, -2 * j);
                BlockSums.EmitSplat(f, 3);
                f.V128And();
                f.Get(p).V128Load((uint)l0);
                BlockSums.EmitSplat(f, m);
                f.V128And();
                BlockSums.EmitSplat(f, 0);
                f.I8x16Eq();
                BlockSums.EmitSplat(f, 4);
                f.V128And().I8x16Sub().Set(w);
                BlockSums.EmitDot16(f, w, xp, (uint)(16 * s));
                int sub = s;
                KBlockWasm.EmitScaledAdd(f, acc, s == 0, () =>
                {
                    // KBlock.Q3Scale: low 4 bits from byte s%8 (low nibble for s < 8), high 2 from byte 8 + s%4.
                    f.Get(p).I32Load8U((uint)(96 + (sub & 7)));
                    if (sub < 8) f.I32Const(0xF).I32And(); else f.I32Const(4).I32ShrU();
                    f.Get(p).I32Load8U((uint)(96 + 8 + (sub & 3))).I32Const(2 * (sub >> 2)).I32ShrU().I32Const(3).I32And().I32Const(4).I32Shl().I32Or();
                    f.I32Const(32).I32Sub();
                });
            }
            f.Get(acc);
            BlockSums.EmitLaneSum(f, s4);
            f.Set(isum);
            BlockSums.EmitKTerm(f, p, dx, isum, 108, null, 0, h);
        });
}

internal sealed partial class Q4_KKernel
{
    // f16 d at 0, dmin at 2, scales[12] at 4, qs[128] at 16 (chunk c: low nibbles sub-block 2c, high 2c+1).
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.Q4_K).BytesPerBlock,
            static (f, p, xp, dx, sums) => EmitTerm(f, p, xp, dx, sums, qhAt: null, qsAt: 16));

    /// <summary>The Q4_K term, and Q5_K's with the fifth bits at <paramref name="qhAt"/>: sub-block s is the low
    /// (s even) or high nibble of qs[32·(s/2) + l], | bit s of qh[l] &lt;&lt; 4 for Q5_K.</summary>
    internal static void EmitTerm(WasmFunction f, Local p, Local xp, Local dx, Local sums, uint? qhAt, uint qsAt)
    {
        Local acc = f.Local(WasmType.V128), w = f.Local(WasmType.V128), s4 = f.Local(WasmType.V128);
        Local isum = f.Local(WasmType.I32), imin = f.Local(WasmType.I32), h = f.Local(WasmType.I32);
        for (int s = 0; s < 8; s++)
        {
            int c = s >> 1;
            for (int k = 0; k < 2; k++)   // values l = 16k .. 16k+15 of the sub-block
            {
                f.Get(p).V128Load((uint)(qsAt + 32 * c + 16 * k));
                if ((s & 1) == 0) { BlockSums.EmitSplat(f, 0xF); f.V128And(); }
                else f.I32Const(4).I8x16ShrU();
                if (qhAt is uint qh)
                {
                    // ((qh[l] >> s) & 1) << 4
                    f.Get(p).V128Load((uint)(qh + 16 * k));
                    KBlockWasm.EmitShift(f, 4 - s);
                    BlockSums.EmitSplat(f, 0x10);
                    f.V128And().V128Or();
                }
                f.Set(w);
                BlockSums.EmitDot16(f, w, xp, (uint)(32 * s + 16 * k));
                if (k == 1) f.I32x4Add();
            }
            int sub = s;
            KBlockWasm.EmitScaledAdd(f, acc, s == 0, () => KBlockWasm.EmitScaleMin(f, p, 4, sub, min: false));
        }
        f.Get(acc);
        BlockSums.EmitLaneSum(f, s4);
        f.Set(isum);
        for (int s = 0; s < 8; s++)
        {
            KBlockWasm.EmitScaleMin(f, p, 4, s, min: true);
            f.Get(sums).I32Load((uint)(8 * s)).Get(sums).I32Load((uint)(8 * s + 4)).I32Add().I32Mul();
            if (s > 0) f.I32Add();
        }
        f.Set(imin);
        BlockSums.EmitKTerm(f, p, dx, isum, 0, imin, 2, h);
    }
}

internal sealed partial class Q5_KKernel
{
    // f16 d at 0, dmin at 2, scales[12] at 4, qh[32] at 16, qs[128] at 48.
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.Q5_K).BytesPerBlock,
            static (f, p, xp, dx, sums) => Q4_KKernel.EmitTerm(f, p, xp, dx, sums, qhAt: 16, qsAt: 48));
}

internal sealed partial class Q6_KKernel
{
    // ql[128] at 0, qh[64] at 128, i8 scales[16] at 192, f16 d at 208. Sub-block s (values 16s..16s+15):
    // half = s/8, j = (s/2)%4, l from 16·(s%2): low 4 bits from ql[64·half + 32·(j%2) + l] (low nibble for j < 2),
    // high 2 bits from bits 2j of qh[32·half + l]; value − 32.
    internal override WasmDot WasmDot => static (f, row, x, blocks, n) =>
        BlockSums.EmitQ8KBlocks(f, row, x, blocks, n, TensorTypes.Get(GgmlType.Q6_K).BytesPerBlock, static (f, p, xp, dx, sums) =>
        {
            Local acc = f.Local(WasmType.V128), w = f.Local(WasmType.V128), s4 = f.Local(WasmType.V128);
            Local isum = f.Local(WasmType.I32), h = f.Local(WasmType.I32);
            for (int s = 0; s < 16; s++)
            {
                int half = s >> 3, j = (s >> 1) & 3, l0 = 16 * (s & 1);
                f.Get(p).V128Load((uint)(64 * half + 32 * (j & 1) + l0));
                if (j < 2) { BlockSums.EmitSplat(f, 0xF); f.V128And(); }
                else f.I32Const(4).I8x16ShrU();
                f.Get(p).V128Load((uint)(128 + 32 * half + l0));
                KBlockWasm.EmitShift(f, 4 - 2 * j);                        // bits 2j, 2j+1 to bits 4, 5
                BlockSums.EmitSplat(f, 0x30);
                f.V128And().V128Or();
                BlockSums.EmitSplat(f, 32);
                f.I8x16Sub().Set(w);
                BlockSums.EmitDot16(f, w, xp, (uint)(16 * s));
                int sub = s;
                KBlockWasm.EmitScaledAdd(f, acc, s == 0, () => f.Get(p).I32Load8S((uint)(192 + sub)));
            }
            f.Get(acc);
            BlockSums.EmitLaneSum(f, s4);
            f.Set(isum);
            BlockSums.EmitKTerm(f, p, dx, isum, 208, null, 0, h);
        });
}
