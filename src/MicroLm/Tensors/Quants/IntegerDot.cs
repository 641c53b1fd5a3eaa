using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace MicroLm.Tensors.Quants;

/// <summary>Integer products of a 32-value weight block with a Q8_0 activation block, and the
/// reduction order of quantized dot products.
///
/// Contract: a block's products are summed exactly, as integers, in 8 groups of 4 consecutive values
/// (group j holds values 4j..4j+3). A row keeps 8 float lanes; block b adds (float)group_j · s_b to lane
/// j, where s_b = d_w · d_x is the product of the two block scales. After the last block the lanes fold
/// pairwise: j += j+4, then j += j+2, then lane 0 + lane 1. Integer sums are exact whatever the
/// instruction (VNNI, AVX2 pair sums, ARM dot product, or plain widening), and the float steps are the
/// same IEEE operations on every path, so the bits never depend on the CPU. Activations never hold
/// −128 (quants are within ±127), which keeps the 16-bit pair sums of the AVX2 path from saturating.</summary>
internal static class IntegerDot
{
    private static readonly bool UseX86 = Avx2.IsSupported && Vector256.IsHardwareAccelerated;

    /// <summary>Widest path used: 256 (x86 AVX2/VNNI) or 128, following the runtime's one width switch
    /// <see cref="Math.Kernels.VectorBits"/> (tests lower that to compare paths; below 256 the integer dots take
    /// the 128-bit path, which also serves the scalar setting: it has no narrower form).</summary>
    internal static int VectorBits => UseX86 && Math.Kernels.VectorBits >= 256 ? 256 : 128;

    /// <summary>The 8 group sums of w·x over 32 signed bytes, as two 4-lane halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<int> Lo, Vector128<int> Hi) Groups128(Vector128<sbyte> w0, Vector128<sbyte> w1, Vector128<sbyte> x0, Vector128<sbyte> x1)
    {
        if (Dp.IsSupported)
            return (Dp.DotProduct(Vector128<int>.Zero, w0, x0), Dp.DotProduct(Vector128<int>.Zero, w1, x1));
        return (Groups16(w0, x0), Groups16(w1, x1));
    }

    /// <summary>4 group sums over 16 signed bytes with portable operations only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Groups16(Vector128<sbyte> w, Vector128<sbyte> x)
    {
        var (wl, wh) = Vector128.Widen(w);
        var (xl, xh) = Vector128.Widen(x);
        // Products as 16-bit values; each int lane then holds two neighbours, summed by sign-extending shifts.
        var pl = (wl * xl).AsInt32();
        var ph = (wh * xh).AsInt32();
        var pairsL = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(pl, 16), 16) + Vector128.ShiftRightArithmetic(pl, 16);
        var pairsH = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(ph, 16), 16) + Vector128.ShiftRightArithmetic(ph, 16);
        // Pairs of pairs: lanes (0+1, 2+3) of each half.
        var ql = pairsL.AsInt64();
        var qh = pairsH.AsInt64();
        var sumL = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(ql, 32), 32) + Vector128.ShiftRightArithmetic(ql, 32);
        var sumH = Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(qh, 32), 32) + Vector128.ShiftRightArithmetic(qh, 32);
        return Vector128.Narrow(sumL, sumH);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Groups256(Vector256<sbyte> w, Vector256<sbyte> x) => Groups256(Magnitudes(w), w, x);

    /// <summary>|w| as unsigned bytes, the first operand of <see cref="Groups256(Vector256{byte}, Vector256{sbyte}, Vector256{sbyte})"/>
    /// (a tile takes it once per weight block and reuses it for every token).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Magnitudes(Vector256<sbyte> w) => Avx2.Abs(w);

    /// <summary><see cref="Groups256(Vector256{sbyte}, Vector256{sbyte})"/> with |w| given (<see cref="Magnitudes"/>): the same exact integers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Groups256(Vector256<byte> magnitudes, Vector256<sbyte> w, Vector256<sbyte> x)
    {
        if (AvxVnni.IsSupported)
            return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, magnitudes, Avx2.Sign(x, w));
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitudes, Avx2.Sign(x, w)), Vector256<short>.One);
    }

    /// <summary>Whether prefill tiles take the AVX-512 (VL) forms below: at the 512-bit setting of the width switch.</summary>
    internal static bool UseEvex => UseX86 && Avx512BW.VL.IsSupported && Math.Kernels.VectorBits >= 512;

    /// <summary><see cref="Groups256(Vector256{byte}, Vector256{sbyte}, Vector256{sbyte})"/> with the sign step as a masked
    /// blend of x and −x (−x where w &lt; 0; where w = 0 the magnitude is 0, so either gives 0): the same exact integers.
    /// vpsignb has only a VEX form, which confines a tile's registers to 16; the blend is EVEX, so a tile's 16 sums
    /// stay in registers (AVX-512 only). x never holds −128, so −x is exact.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Groups256Evex(Vector256<byte> magnitudes, Vector256<sbyte> negative, Vector256<sbyte> x, Vector256<sbyte> minusX)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitudes, Avx512BW.VL.BlendVariable(x, minusX, negative)), Vector256<short>.One);

    /// <summary>The 8 group sums of a Q4_0 block (16 packed bytes at <paramref name="qs"/>) with x, AVX2 only:
    /// the nibbles go unsigned into the u8·s8 pair products (no sign fix-ups, no −8 per value) and the
    /// activation's 8·Σx per group (<see cref="Activation.Q8GroupSums8"/>) is subtracted after, which
    /// is the same exact integer as Σ(n − 8)·x. Pair sums stay within ±3810, far from 16-bit saturation.</summary>
    /// <remarks>The caller pins the weights (the 16 bytes are broadcast straight from memory).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<int> GroupsQ4(ref byte qs, Vector256<sbyte> x, Vector256<int> groupSums8) =>
        GroupsQ4((byte*)Unsafe.AsPointer(ref qs), x, groupSums8);

    /// <summary><see cref="GroupsQ4(ref byte, Vector256{sbyte}, Vector256{int})"/> at a pointer (pinned weights).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<int> GroupsQ4(byte* qs, Vector256<sbyte> x, Vector256<int> groupSums8)
    {
        // Both 128-bit halves get the 16 bytes; the upper half shifts right by 4 to expose the high nibbles.
        var packed = Avx2.BroadcastVector128ToVector256(qs).AsUInt64();
        var nibbles = Avx2.ShiftRightLogicalVariable(packed, Vector256.Create(0UL, 0UL, 4UL, 4UL)).AsByte() & Vector256.Create((byte)0x0F);
        return GroupsNibbles(nibbles, x, groupSums8);
    }

    /// <summary>The 8 group sums <paramref name="start"/> + Σu·x over groups of 4, for unsigned bytes u: weights stored with an
    /// offset (a nibble n = w + 8, a Q8_0 quant as w + 128), started from −offset·Σx, give Σw·x exactly. With AVX-VNNI one
    /// instruction; without it the two widening steps, whose 16-bit pair sums saturate past u = 129, so there only
    /// nibbles may come here.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> GroupsUnsigned(Vector256<byte> u, Vector256<sbyte> x, Vector256<int> start)
    {
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(start, u, x);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, x), Vector256<short>.One) + start;
    }

    /// <summary>The 8 group sums of Σ(n − 8)·x for 32 unpacked nibbles n (0..15, value order), AVX2: see <see cref="GroupsQ4"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> GroupsNibbles(Vector256<byte> nibbles, Vector256<sbyte> x, Vector256<int> groupSums8)
    {
        // AVX-VNNI (Alder Lake and later, Zen 5) sums four u8·s8 products into the accumulator in one step, so starting
        // from −8·Σx gives the same exact integers as the two widening steps and the subtraction.
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero - groupSums8, nibbles, x);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(nibbles, x), Vector256<short>.One) - groupSums8;
    }

    /// <summary>A hint to fetch the cache line at <paramref name="at"/> + <paramref name="offset"/> (x86 only).
    /// Prefetches never fault, so the address may lie past the end of the weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch(ref byte at, int offset)
    {
        if (Sse.IsSupported) Sse.Prefetch0((byte*)Unsafe.AsPointer(ref at) + offset);
    }

    /// <summary>A hint to fetch every cache line of <paramref name="bytes"/> into L2 (x86 only): prefill asks for the next
    /// rows while it computes on the current ones, whose tiles run long enough between first touches of new weight
    /// lines that the hardware prefetchers fall behind.</summary>
    public static unsafe void PrefetchToL2(ReadOnlySpan<byte> bytes)
    {
        if (!Sse.IsSupported) return;
        fixed (byte* p = bytes)
            for (int i = 0; i < bytes.Length; i += 64) Sse.Prefetch1(p + i);
    }

    /// <summary><see cref="Prefetch(ref byte, int)"/> of the line at a pointer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch(byte* at)
    {
        if (Sse.IsSupported) Sse.Prefetch0(at);
    }

    /// <summary>Folds the 8 lanes in the contract's order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fold(Vector128<float> lo, Vector128<float> hi)
    {
        var s = lo + hi;                       // j += j+4
        float a = s.GetElement(0) + s.GetElement(2), b = s.GetElement(1) + s.GetElement(3);
        return a + b;
    }

    /// <summary><see cref="Fold"/> of four sums at once (x86): lane k of the result is Fold of sum k, by the same
    /// additions (j += j+4, then (0 + 2) + (1 + 3)) done on a transposed 4 × 4 block, so it has Fold's bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fold4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        Vector128<float> sa = a.GetLower() + a.GetUpper(), sb = b.GetLower() + b.GetUpper();
        Vector128<float> sc = c.GetLower() + c.GetUpper(), sd = d.GetLower() + d.GetUpper();
        var ab01 = Sse.UnpackLow(sa, sb);   // a0 b0 a1 b1
        var ab23 = Sse.UnpackHigh(sa, sb);  // a2 b2 a3 b3
        var cd01 = Sse.UnpackLow(sc, sd);
        var cd23 = Sse.UnpackHigh(sc, sd);
        var lane0 = Sse.MoveLowToHigh(ab01, cd01);  // a0 b0 c0 d0
        var lane1 = Sse.MoveHighToLow(cd01, ab01);  // a1 b1 c1 d1
        var lane2 = Sse.MoveLowToHigh(ab23, cd23);
        var lane3 = Sse.MoveHighToLow(cd23, ab23);
        return (lane0 + lane2) + (lane1 + lane3);
    }

    /// <summary>Tests set 1 to make <see cref="EmitFold"/> (only the emitted fold, never the C# one) combine the
    /// 8 lanes left to right instead: a different, equally valid order, so a test can show that the Wasmtime
    /// comparison catches a quantized kernel whose lane order differs from its C# twin's.</summary>
    internal static int AlternativeEmittedFoldForTests;

    /// <summary><see cref="Fold"/> in WebAssembly: leaves the sum of lanes <paramref name="lo"/> (0–3) and
    /// <paramref name="hi"/> (4–7) on the stack, folded j += j+4, then (0 + 2) + (1 + 3).</summary>
    internal static void EmitFold(Wasm.WasmFunction f, Wasm.Local lo, Wasm.Local hi)
    {
        if (AlternativeEmittedFoldForTests != 0)
        {
            f.Get(lo).F32x4ExtractLane(0);
            for (int j = 1; j < 8; j++) f.Get(j < 4 ? lo : hi).F32x4ExtractLane((byte)(j & 3)).F32Add();
            return;
        }
        f.Get(lo).Get(hi).F32x4Add().Set(lo);
        f.Get(lo).Get(lo).Get(lo).I8x16Shuffle(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7).F32x4Add().Set(lo);
        f.Get(lo).F32x4ExtractLane(0).Get(lo).F32x4ExtractLane(1).F32Add();
    }

    /// <summary>The 4 group sums (values 4j..4j+3) of 16 signed bytes <paramref name="w"/> · x in WebAssembly, as an
    /// i32x4 on the stack, with x given as its even- and odd-indexed bytes sign-extended to 16 bits
    /// (<see cref="EmitEvenOdd"/>): w's even bytes (each i16 lane shifted up and back) dotted with x's even
    /// bytes gives per lane j the products of values 4j and 4j+2, the odd bytes those of 4j+1 and 4j+3; their
    /// sum is group j. Exact integers (|w·x| ≤ 128·127), as every C# path; no shuffles needed.</summary>
    internal static void EmitGroups(Wasm.WasmFunction f, Wasm.Local w, Wasm.Local xEven, Wasm.Local xOdd)
    {
        f.Get(w).I32Const(8).I16x8Shl().I32Const(8).I16x8ShrS().Get(xEven).I32x4DotI16x8S();
        f.Get(w).I32Const(8).I16x8ShrS().Get(xOdd).I32x4DotI16x8S();
        f.I32x4Add();
    }

    /// <summary>Sets <paramref name="even"/>/<paramref name="odd"/> to the even-/odd-indexed signed bytes of the
    /// v128 on the stack, each sign-extended into its 16-bit lane (the form <see cref="EmitGroups"/> reads).</summary>
    internal static void EmitEvenOdd(Wasm.WasmFunction f, Wasm.Local even, Wasm.Local odd)
    {
        f.Tee(odd).I32Const(8).I16x8Shl().I32Const(8).I16x8ShrS().Set(even);
        f.Get(odd).I32Const(8).I16x8ShrS().Set(odd);
    }

    /// <summary>A row of 32-value blocks (f16 scale first, <paramref name="blockBytes"/> each) dotted with a
    /// Q8_0 activation in WebAssembly, in this contract's order: per block the 8 group sums (exact), as
    /// floats times d_w·d_x, added to lanes 0–3 (<c>lo</c>) and 4–7 (<c>hi</c>); then <see cref="EmitFold"/>.
    /// <paramref name="unpack"/> sets its two v128 locals to the block's values 0–15 and 16–31 as signed
    /// bytes, from the block's address. Leaves the f32 on the stack.</summary>
    internal static void EmitBlockDot(Wasm.WasmFunction f, Wasm.Local row, Wasm.Local x, Wasm.Local scales, Wasm.Local n, int blockBytes,
        Action<Wasm.WasmFunction, Wasm.Local, Wasm.Local, Wasm.Local> unpack)
    {
        var result = f.Local(Wasm.WasmType.F32);
        EmitBlockDotRows(f, [row], x, scales, n, blockBytes, unpack, [result]);
        f.Get(result);
    }

    /// <summary><see cref="EmitBlockDot"/> for one to four rows at once (addresses in <paramref name="rows"/>),
    /// results into <paramref name="results"/>: per block the activation is loaded and split into even and odd
    /// bytes once for every row, and each row adds its own 8 lanes with its own scale d_w·d_x by the same
    /// operations — so each result has the bits of that row's single dot.</summary>
    internal static void EmitBlockDotRows(Wasm.WasmFunction f, Wasm.Local[] rows, Wasm.Local x, Wasm.Local scales, Wasm.Local n, int blockBytes,
        Action<Wasm.WasmFunction, Wasm.Local, Wasm.Local, Wasm.Local> unpack, Wasm.Local[] results)
    {
        const Wasm.WasmType V = Wasm.WasmType.V128, I = Wasm.WasmType.I32;
        int count = rows.Length;
        if (count is < 1 or > 4 || results.Length != count) throw new ArgumentException("one to four rows, one result each");
        var lo = new Wasm.Local[count]; var hi = new Wasm.Local[count]; var wp = new Wasm.Local[count];
        for (int k = 0; k < count; k++) { lo[k] = f.Local(V); hi[k] = f.Local(V); wp[k] = f.Local(I); }
        Wasm.Local w0 = f.Local(V), w1 = f.Local(V), scale = f.Local(V);
        Wasm.Local x0 = f.Local(V), x1 = f.Local(V), x2 = f.Local(V), x3 = f.Local(V); // even, odd bytes of values 0–15, 16–31
        Wasm.Local xp = f.Local(I), sp = f.Local(I), end = f.Local(I), h = f.Local(I);
        var dx = f.Local(Wasm.WasmType.F32);
        for (int k = 0; k < count; k++)
        {
            f.F32Const(0).F32x4Splat().Set(lo[k]);
            f.F32Const(0).F32x4Splat().Set(hi[k]);
            f.Get(rows[k]).Set(wp[k]);
        }
        f.Get(x).Set(xp);
        f.Get(scales).Set(sp);
        f.Get(x).Get(n).I32Add().Set(end);
        int done = f.Block();
        f.Get(xp).Get(end).I32GeS().BrIf(done);
        int block = f.Loop();
        f.Get(sp).F32Load().Set(dx);
        f.Get(xp).V128Load();
        EmitEvenOdd(f, x0, x1);
        f.Get(xp).V128Load(16);
        EmitEvenOdd(f, x2, x3);
        for (int k = 0; k < count; k++)
        {
            // d_w · d_x: the half converted in scalar registers (idle beside the vector work), then one splat
            f.Get(wp[k]).I32Load16U().Set(h);
            F16Kernel.EmitHalfToSingle(f, h);
            f.Get(dx).F32Mul().F32x4Splat().Set(scale);
            unpack(f, wp[k], w0, w1);
            f.Get(lo[k]);
            EmitGroups(f, w0, x0, x1);
            f.F32x4ConvertI32x4S().Get(scale).F32x4Mul().F32x4Add().Set(lo[k]);
            f.Get(hi[k]);
            EmitGroups(f, w1, x2, x3);
            f.F32x4ConvertI32x4S().Get(scale).F32x4Mul().F32x4Add().Set(hi[k]);
            f.Get(wp[k]).I32Const(blockBytes).I32Add().Set(wp[k]);
        }
        f.Get(sp).I32Const(4).I32Add().Set(sp);
        f.Get(xp).I32Const(Activation.Q8Block).I32Add().Tee(xp).Get(end).I32LtS().BrIf(block);
        f.End();
        f.End();
        for (int k = 0; k < count; k++)
        {
            EmitFold(f, lo[k], hi[k]);
            f.Set(results[k]);
        }
    }

    /// <summary>The Q4_0 block's 32 values (nibble − 8) as two 16-byte halves: values 0..15, 16..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (Vector128<sbyte> Lo, Vector128<sbyte> Hi) UnpackQ4(ref byte qs)
    {
        var packed = Vector128.LoadUnsafe(ref qs);
        var eight = Vector128.Create((byte)8);
        return (((packed & Vector128.Create((byte)0x0F)) - eight).AsSByte(), (Vector128.ShiftRightLogical(packed, 4) - eight).AsSByte());
    }
}
