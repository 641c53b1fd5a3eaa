using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Math;

/// <summary>The float kernels of the forward pass, and the one reduction order every sum keeps.
///
/// Reduction order (the determinism contract): a sum of n terms is kept in 16 lanes; term i goes to
/// lane i % 16, each lane adding its terms in increasing i. The lanes are then combined pairwise:
/// lane j += lane j+8 (j &lt; 8), then j += j+4 (j &lt; 4), then j += j+2, then lane 0 + lane 1.
/// One Vector512, two Vector256, four Vector128 or sixteen scalars hold the same 16 lanes, so every
/// path performs the same IEEE operations in the same order and gives the same bits. Multiply and
/// add are always separate (never fused): not every target has FMA, and emulating it is slow.</summary>
internal static class Kernels
{
    public const int Lanes = 16;

    /// <summary>Widest vector path used (512, 256, 128 or 0 for scalar). Tests lower it to check
    /// that every path gives the same bits.</summary>
    internal static int VectorBits = Vector512.IsHardwareAccelerated ? 512
        : Vector256.IsHardwareAccelerated ? 256
        : Vector128.IsHardwareAccelerated ? 128 : 0;

    /// <summary>Σ a[i]·b[i] in the contract's order.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length;
        if ((n & (Lanes - 1)) == 0 && n > 0 && VectorBits >= 256 && AlternativeOrderForTests == 0 && b.Length >= n)
            return VectorBits >= 512 ? DotInRegisters512(ref MemoryMarshal.GetReference(a), ref MemoryMarshal.GetReference(b), n)
                : DotInRegisters256(ref MemoryMarshal.GetReference(a), ref MemoryMarshal.GetReference(b), n);
        Span<float> lanes = stackalloc float[Lanes];
        lanes.Clear();
        AccumulateLanes(a, b, lanes);
        return ReduceLanes(lanes);
    }

    /// <summary><see cref="Dot"/> for lengths that are a multiple of 16, its lanes never leaving registers (decode
    /// calls Dot once per weight row: the stack round trip cost ~10 % on 288-long rows). Same operations.</summary>
    private static float DotInRegisters512(ref float a, ref float b, int n)
    {
        var acc = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
            acc += Vector512.LoadUnsafe(ref a, (nuint)i) * Vector512.LoadUnsafe(ref b, (nuint)i);
        return Fold8(acc.GetLower() + acc.GetUpper());
    }

    /// <summary><see cref="DotInRegisters512"/> on two 256-bit halves (lanes 0–7 and 8–15); a method of its own, as
    /// <see cref="Tensors.Quants.FloatRows"/> found the JIT's 256-bit loop slower when it shares one with the 512-bit loop.</summary>
    private static float DotInRegisters256(ref float a, ref float b, int n)
    {
        var lo = Vector256<float>.Zero; var hi = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            lo += Vector256.LoadUnsafe(ref a, (nuint)i) * Vector256.LoadUnsafe(ref b, (nuint)i);
            hi += Vector256.LoadUnsafe(ref a, (nuint)i + 8) * Vector256.LoadUnsafe(ref b, (nuint)i + 8);
        }
        return Fold8(lo + hi);
    }

    /// <summary>The rest of <see cref="ReduceLanes"/> from the 8 sums lane j + lane j+8: j += j+4, then (0 + 2) + (1 + 3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Fold8(Vector256<float> s)
    {
        var q = s.GetLower() + s.GetUpper();
        return (q.GetElement(0) + q.GetElement(2)) + (q.GetElement(1) + q.GetElement(3));
    }

    /// <summary>lanes[i % 16] += a[i]·b[i] in increasing i. a.Length must be a multiple of 16 for a
    /// later call to continue the same lane pattern (callers that work in chunks use multiples of 16).</summary>
    public static void AccumulateLanes(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> lanes)
    {
        int n = a.Length;
        if (b.Length < n) throw new ArgumentException("length mismatch");
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        ref float l = ref MemoryMarshal.GetReference(lanes);
        int i = 0, full = n & ~(Lanes - 1);
        int bits = VectorBits;
        if (full > 0 && bits >= 512)
        {
            var acc = Vector512.LoadUnsafe(ref l);
            for (; i < full; i += 16)
                acc += Vector512.LoadUnsafe(ref pa, (nuint)i) * Vector512.LoadUnsafe(ref pb, (nuint)i);
            acc.StoreUnsafe(ref l);
        }
        else if (full > 0 && bits >= 256)
        {
            var acc0 = Vector256.LoadUnsafe(ref l); var acc1 = Vector256.LoadUnsafe(ref l, 8);
            for (; i < full; i += 16)
            {
                acc0 += Vector256.LoadUnsafe(ref pa, (nuint)i) * Vector256.LoadUnsafe(ref pb, (nuint)i);
                acc1 += Vector256.LoadUnsafe(ref pa, (nuint)i + 8) * Vector256.LoadUnsafe(ref pb, (nuint)i + 8);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 8);
        }
        else if (full > 0 && bits >= 128)
        {
            var acc0 = Vector128.LoadUnsafe(ref l); var acc1 = Vector128.LoadUnsafe(ref l, 4);
            var acc2 = Vector128.LoadUnsafe(ref l, 8); var acc3 = Vector128.LoadUnsafe(ref l, 12);
            for (; i < full; i += 16)
            {
                acc0 += Vector128.LoadUnsafe(ref pa, (nuint)i) * Vector128.LoadUnsafe(ref pb, (nuint)i);
                acc1 += Vector128.LoadUnsafe(ref pa, (nuint)i + 4) * Vector128.LoadUnsafe(ref pb, (nuint)i + 4);
                acc2 += Vector128.LoadUnsafe(ref pa, (nuint)i + 8) * Vector128.LoadUnsafe(ref pb, (nuint)i + 8);
                acc3 += Vector128.LoadUnsafe(ref pa, (nuint)i + 12) * Vector128.LoadUnsafe(ref pb, (nuint)i + 12);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 4); acc2.StoreUnsafe(ref l, 8); acc3.StoreUnsafe(ref l, 12);
        }
        else
        {
            for (; i < full; i += 16)
                for (int j = 0; j < 16; j++)
                    Unsafe.Add(ref l, j) += Unsafe.Add(ref pa, i + j) * Unsafe.Add(ref pb, i + j);
        }
        for (; i < n; i++) Unsafe.Add(ref l, i & 15) += Unsafe.Add(ref pa, i) * Unsafe.Add(ref pb, i);
    }

    /// <summary><see cref="Dot"/> in WebAssembly over a weight row of any element type: lanes 0–15 in four
    /// f32x4 accumulators from +0, term i to lane i % 16 (product rounded, then added), the last partial
    /// chunk lane by lane (never zero-padded: that would turn a −0 lane into +0), then
    /// <see cref="EmitReduceLanes"/>. <paramref name="loadFour"/> pushes four weights as an f32x4 from
    /// the given byte offset of the pointer local, <paramref name="loadOne"/> one weight as an f32;
    /// <paramref name="weightBytes"/> is an element's size. Leaves the f32 on the stack.</summary>
    internal static void EmitDot(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local row, Tensors.Wasm.Local x, Tensors.Wasm.Local n, int weightBytes,
        Action<Tensors.Wasm.WasmFunction, Tensors.Wasm.Local, uint> loadFour, Action<Tensors.Wasm.WasmFunction, Tensors.Wasm.Local, uint> loadOne)
    {
        var result = f.Local(Tensors.Wasm.WasmType.F32);
        EmitDotTokens(f, row, [x], n, weightBytes, loadFour, loadOne, [result]);
        f.Get(result);
    }

    /// <summary><see cref="EmitDot"/> of one row with several activations at once (batched prefill): each chunk of
    /// the row is loaded (and converted) once and multiplied with every activation; each activation keeps its own
    /// four accumulators and gets exactly the operations of its single dot, in the same order, so each result in
    /// <paramref name="results"/> has the bits of <see cref="EmitDot"/> (which is this function with one activation).
    /// Keep the count small (two or three): four accumulators each must stay in the engine's vector registers.</summary>
    internal static void EmitDotTokens(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local row, Tensors.Wasm.Local[] xs, Tensors.Wasm.Local n, int weightBytes,
        Action<Tensors.Wasm.WasmFunction, Tensors.Wasm.Local, uint> loadFour, Action<Tensors.Wasm.WasmFunction, Tensors.Wasm.Local, uint> loadOne,
        Tensors.Wasm.Local[] results)
    {
        const Tensors.Wasm.WasmType V = Tensors.Wasm.WasmType.V128, I = Tensors.Wasm.WasmType.I32, F = Tensors.Wasm.WasmType.F32;
        int tokens = xs.Length;
        if (tokens < 1 || results.Length != tokens) throw new ArgumentException("one result per activation");
        var acc = new Tensors.Wasm.Local[tokens][];
        var xp = new Tensors.Wasm.Local[tokens];
        for (int j = 0; j < tokens; j++) { acc[j] = [f.Local(V), f.Local(V), f.Local(V), f.Local(V)]; xp[j] = f.Local(I); }
        var wp = f.Local(I); var end = f.Local(I); var rest = f.Local(I);
        var w4 = tokens > 1 ? f.Local(V) : default;
        var w1 = tokens > 1 ? f.Local(F) : default;
        foreach (var a in acc) foreach (var l in a) f.F32Const(0).F32x4Splat().Set(l);
        f.Get(row).Set(wp);
        for (int j = 0; j < tokens; j++) f.Get(xs[j]).Set(xp[j]);
        f.Get(xs[0]).Get(n).I32Const(-Lanes).I32And().I32Const(2).I32Shl().I32Add().Set(end); // end of the full chunks of the first activation
        int chunksDone = f.Block();
        f.Get(xp[0]).Get(end).I32GeS().BrIf(chunksDone);
        int chunk = f.Loop();
        for (int k = 0; k < 4; k++)
        {
            if (tokens == 1)
            {
                f.Get(acc[0][k]);
                loadFour(f, wp, (uint)(4 * k * weightBytes));
                f.Get(xp[0]).V128Load((uint)(16 * k)).F32x4Mul().F32x4Add().Set(acc[0][k]);
                continue;
            }
            loadFour(f, wp, (uint)(4 * k * weightBytes));
            f.Set(w4);
            for (int j = 0; j < tokens; j++)
                f.Get(acc[j][k]).Get(w4).Get(xp[j]).V128Load((uint)(16 * k)).F32x4Mul().F32x4Add().Set(acc[j][k]);
        }
        f.Get(wp).I32Const(Lanes * weightBytes).I32Add().Set(wp);
        for (int j = 1; j < tokens; j++) f.Get(xp[j]).I32Const(Lanes * 4).I32Add().Set(xp[j]);
        f.Get(xp[0]).I32Const(Lanes * 4).I32Add().Tee(xp[0]).Get(end).I32LtS().BrIf(chunk);
        f.End();
        f.End();
        // The last n % 16 terms, term k to lane k.
        f.Get(n).I32Const(Lanes - 1).I32And().Set(rest);
        int tailDone = f.Block();
        for (int k = 0; k < Lanes - 1; k++)
        {
            f.I32Const(k).Get(rest).I32GeS().BrIf(tailDone);
            byte lane = (byte)(k & 3);
            if (tokens > 1) { loadOne(f, wp, (uint)(k * weightBytes)); f.Set(w1); }
            for (int j = 0; j < tokens; j++)
            {
                var a = acc[j][k >> 2];
                f.Get(a).Get(a).F32x4ExtractLane(lane);
                if (tokens == 1) loadOne(f, wp, (uint)(k * weightBytes)); else f.Get(w1);
                f.Get(xp[j]).F32Load((uint)(4 * k)).F32Mul().F32Add().F32x4ReplaceLane(lane).Set(a);
            }
        }
        f.End();
        for (int j = 0; j < tokens; j++)
        {
            EmitReduceLanes(f, acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
            f.Set(results[j]);
        }
    }

    /// <summary>Batched prefill's float tile: rows w0..w3 with tokens a and b, results[2·row + token] (token a = 0),
    /// each with exactly <see cref="Dot"/>'s operations (term i into lane i % 16 from +0, multiply then add, then
    /// <see cref="ReduceLanes"/>). One load of a row chunk serves two tokens and one load of a token chunk four
    /// rows (6 loads per 8 products, where <see cref="Dot4"/> needs 5 per 4): +15 % CPU time on F32 prefill matmuls
    /// at 512 bits. 256 bits take rows 0–1, then 2–3 (<see cref="Tile4x2In256"/>: there a token chunk serves two rows,
    /// 8 loads per 8 products); 128 bits and lengths that are not a multiple of 16 take <see cref="Dot4"/> twice.</summary>
    public static void Dot4Rows2Tokens(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> w2, ReadOnlySpan<float> w3,
        ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> results)
    {
        int n = a.Length;
        if ((n & (Lanes - 1)) != 0 || n == 0 || VectorBits < 256 || AlternativeOrderForTests != 0
            || b.Length < n || w0.Length < n || w1.Length < n || w2.Length < n || w3.Length < n || results.Length < 8)
        {
            Span<float> four = stackalloc float[4];
            Dot4(a, w0, w1, w2, w3, four);
            results[0] = four[0]; results[2] = four[1]; results[4] = four[2]; results[6] = four[3];
            Dot4(b, w0, w1, w2, w3, four);
            results[1] = four[0]; results[3] = four[1]; results[5] = four[2]; results[7] = four[3];
            return;
        }
        ref float pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b);
        if (VectorBits < 512)
        {
            Tile4x2In256(ref MemoryMarshal.GetReference(w0), ref MemoryMarshal.GetReference(w1), ref MemoryMarshal.GetReference(w2),
                ref MemoryMarshal.GetReference(w3), ref pa, ref pb, n, results);
            return;
        }
        Tile4x2In512(ref MemoryMarshal.GetReference(w0), ref MemoryMarshal.GetReference(w1), ref MemoryMarshal.GetReference(w2),
            ref MemoryMarshal.GetReference(w3), ref pa, ref pb, n, results);
    }

    /// <summary>The 4 × 2 tile in 256-bit registers, which cannot hold its sixteen 16-lane sums (32 registers) at once: rows
    /// 0–1 with both tokens, then rows 2–3 (<see cref="Tile2x2In256"/>), each a whole pass over the row with its eight
    /// registers of sums. Replaced two sweeps per block of 512 values (lanes 0–7, then 8–15, the sums kept in memory
    /// between them): `--prefill-kernels --isa avx2` CPU time, three alternations, Intel Xeon (family 6 model 207), GMAC/s:
    /// 110M shape F32 16.9–18.3 → 18.8–19.7, 15M F32 16.5–18.2 → 19.4–19.8; F16 (rows converted to F32 first) 110M 20.1–20.6
    /// → 20.1–21.1, 15M 17.2–19.7 → 19.9–20.4.</summary>
    private static void Tile4x2In256(ref float w0, ref float w1, ref float w2, ref float w3, ref float pa, ref float pb, int n, Span<float> results)
    {
        Tile2x2In256(ref w0, ref w1, ref pa, ref pb, n).CopyTo(results);
        Tile2x2In256(ref w2, ref w3, ref pa, ref pb, n).CopyTo(results[4..]);
    }

    /// <summary>Rows w0, w1 with tokens a, b: the four sums in <see cref="Dot"/>'s order (lanes 0–7 and 8–15 of each in two
    /// registers, term i into lane i mod 16 from +0, multiply then add), folded as row 0 token a, row 0 token b, row 1
    /// token a, row 1 token b (results[2·row + token]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Tile2x2In256(ref float w0, ref float w1, ref float pa, ref float pb, int n)
    {
        Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default;
        Vector256<float> c0 = default, d0 = default, c1 = default, d1 = default; // lanes 8–15 of a0, b0, a1, b1
        for (nuint i = 0; i < (nuint)n; i += 16)
        {
            var xa = Vector256.LoadUnsafe(ref pa, i); var xc = Vector256.LoadUnsafe(ref pa, i + 8);
            var xb = Vector256.LoadUnsafe(ref pb, i); var xd = Vector256.LoadUnsafe(ref pb, i + 8);
            var r = Vector256.LoadUnsafe(ref w0, i); a0 += r * xa; b0 += r * xb;
            r = Vector256.LoadUnsafe(ref w0, i + 8); c0 += r * xc; d0 += r * xd;
            r = Vector256.LoadUnsafe(ref w1, i); a1 += r * xa; b1 += r * xb;
            r = Vector256.LoadUnsafe(ref w1, i + 8); c1 += r * xc; d1 += r * xd;
        }
        return Fold4(a0 + c0, b0 + d0, a1 + c1, b1 + d1);
    }

    private static void Tile4x2In512(ref float w0, ref float w1, ref float w2, ref float w3, ref float pa, ref float pb, int n, Span<float> results)
    {
        var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
        var b0 = Vector512<float>.Zero; var b1 = Vector512<float>.Zero; var b2 = Vector512<float>.Zero; var b3 = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            var xa = Vector512.LoadUnsafe(ref pa, (nuint)i);
            var xb = Vector512.LoadUnsafe(ref pb, (nuint)i);
            var r = Vector512.LoadUnsafe(ref w0, (nuint)i); a0 += r * xa; b0 += r * xb;
            r = Vector512.LoadUnsafe(ref w1, (nuint)i); a1 += r * xa; b1 += r * xb;
            r = Vector512.LoadUnsafe(ref w2, (nuint)i); a2 += r * xa; b2 += r * xb;
            r = Vector512.LoadUnsafe(ref w3, (nuint)i); a3 += r * xa; b3 += r * xb;
        }
        // Fold4 leaves the four sums side by side: rows 0..3 of token a, then of token b.
        var ra = Fold4(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper(), a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper());
        var rb = Fold4(b0.GetLower() + b0.GetUpper(), b1.GetLower() + b1.GetUpper(), b2.GetLower() + b2.GetUpper(), b3.GetLower() + b3.GetUpper());
        System.Runtime.Intrinsics.X86.Sse.UnpackLow(ra, rb).CopyTo(results);       // a0 b0 a1 b1
        System.Runtime.Intrinsics.X86.Sse.UnpackHigh(ra, rb).CopyTo(results[4..]); // a2 b2 a3 b3
    }

    /// <summary>Batched prefill's float tile at 512 bits: rows w0..w3 with tokens x0..x3, results[4·token + row], each
    /// with exactly <see cref="Dot"/>'s operations, like <see cref="Dot4Rows2Tokens"/> (whose contract and fallbacks it
    /// shares); 8 loads per 16 products. False where that one would not take the 512-bit tile (the caller then pairs).</summary>
    public static bool Dot4Rows4Tokens(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> w2, ReadOnlySpan<float> w3,
        ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> results)
    {
        int n = x0.Length;
        if ((n & (Lanes - 1)) != 0 || n == 0 || VectorBits < 512 || AlternativeOrderForTests != 0 || results.Length < 16
            || x1.Length < n || x2.Length < n || x3.Length < n || w0.Length < n || w1.Length < n || w2.Length < n || w3.Length < n)
            return false;
        Tile4x4In512(ref MemoryMarshal.GetReference(w0), ref MemoryMarshal.GetReference(w1), ref MemoryMarshal.GetReference(w2),
            ref MemoryMarshal.GetReference(w3), ref MemoryMarshal.GetReference(x0), ref MemoryMarshal.GetReference(x1),
            ref MemoryMarshal.GetReference(x2), ref MemoryMarshal.GetReference(x3), n, results);
        return true;
    }

    private static void Tile4x4In512(ref float w0, ref float w1, ref float w2, ref float w3,
        ref float p0, ref float p1, ref float p2, ref float p3, int n, Span<float> results)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        for (int i = 0; i < n; i += 16)
        {
            var xa = Vector512.LoadUnsafe(ref p0, (nuint)i);
            var xb = Vector512.LoadUnsafe(ref p1, (nuint)i);
            var xc = Vector512.LoadUnsafe(ref p2, (nuint)i);
            var xd = Vector512.LoadUnsafe(ref p3, (nuint)i);
            var r = Vector512.LoadUnsafe(ref w0, (nuint)i); a0 += r * xa; b0 += r * xb; c0 += r * xc; d0 += r * xd;
            r = Vector512.LoadUnsafe(ref w1, (nuint)i); a1 += r * xa; b1 += r * xb; c1 += r * xc; d1 += r * xd;
            r = Vector512.LoadUnsafe(ref w2, (nuint)i); a2 += r * xa; b2 += r * xb; c2 += r * xc; d2 += r * xd;
            r = Vector512.LoadUnsafe(ref w3, (nuint)i); a3 += r * xa; b3 += r * xb; c3 += r * xc; d3 += r * xd;
        }
        Fold4(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper(), a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper()).CopyTo(results);
        Fold4(b0.GetLower() + b0.GetUpper(), b1.GetLower() + b1.GetUpper(), b2.GetLower() + b2.GetUpper(), b3.GetLower() + b3.GetUpper()).CopyTo(results[4..]);
        Fold4(c0.GetLower() + c0.GetUpper(), c1.GetLower() + c1.GetUpper(), c2.GetLower() + c2.GetUpper(), c3.GetLower() + c3.GetUpper()).CopyTo(results[8..]);
        Fold4(d0.GetLower() + d0.GetUpper(), d1.GetLower() + d1.GetUpper(), d2.GetLower() + d2.GetUpper(), d3.GetLower() + d3.GetUpper()).CopyTo(results[12..]);
    }

    /// <summary>Four dot products of one row with four vectors (batched prefill): each result has
    /// exactly the bits of <see cref="Dot"/>; the row is only loaded once per chunk.</summary>
    [SkipLocalsInit] // the lanes are stored whole before the tail reads them; zeroing them cost a fifth of a short call
    public static void Dot4(ReadOnlySpan<float> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1,
        ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> results)
    {
        int n = w.Length, full = n & ~(Lanes - 1), bits = VectorBits;
        if (full == 0 || bits < 256)
        {
            results[0] = Dot(w, x0); results[1] = Dot(w, x1); results[2] = Dot(w, x2); results[3] = Dot(w, x3);
            return;
        }
        ref float pw = ref MemoryMarshal.GetReference(w);
        ref float p0 = ref MemoryMarshal.GetReference(x0);
        ref float p1 = ref MemoryMarshal.GetReference(x1);
        ref float p2 = ref MemoryMarshal.GetReference(x2);
        ref float p3 = ref MemoryMarshal.GetReference(x3);
        Span<float> lanes = stackalloc float[4 * Lanes];
        ref float l = ref MemoryMarshal.GetReference(lanes);
        int i = 0;
        if (bits >= 512)
        {
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
            for (; i < full; i += 16)
            {
                var r = Vector512.LoadUnsafe(ref pw, (nuint)i);
                a0 += r * Vector512.LoadUnsafe(ref p0, (nuint)i);
                a1 += r * Vector512.LoadUnsafe(ref p1, (nuint)i);
                a2 += r * Vector512.LoadUnsafe(ref p2, (nuint)i);
                a3 += r * Vector512.LoadUnsafe(ref p3, (nuint)i);
            }
            if (i == n) { ReduceLanes4(a0, a1, a2, a3, results); return; }
            a0.StoreUnsafe(ref l); a1.StoreUnsafe(ref l, 16); a2.StoreUnsafe(ref l, 32); a3.StoreUnsafe(ref l, 48);
        }
        else
        {
            var a0 = Vector256<float>.Zero; var b0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var b1 = Vector256<float>.Zero;
            var a2 = Vector256<float>.Zero; var b2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero; var b3 = Vector256<float>.Zero;
            for (; i < full; i += 16)
            {
                var r = Vector256.LoadUnsafe(ref pw, (nuint)i);
                var s = Vector256.LoadUnsafe(ref pw, (nuint)i + 8);
                a0 += r * Vector256.LoadUnsafe(ref p0, (nuint)i); b0 += s * Vector256.LoadUnsafe(ref p0, (nuint)i + 8);
                a1 += r * Vector256.LoadUnsafe(ref p1, (nuint)i); b1 += s * Vector256.LoadUnsafe(ref p1, (nuint)i + 8);
                a2 += r * Vector256.LoadUnsafe(ref p2, (nuint)i); b2 += s * Vector256.LoadUnsafe(ref p2, (nuint)i + 8);
                a3 += r * Vector256.LoadUnsafe(ref p3, (nuint)i); b3 += s * Vector256.LoadUnsafe(ref p3, (nuint)i + 8);
            }
            if (i == n)
            {
                ReduceLanes4(a0, b0, a1, b1, a2, b2, a3, b3, results);
                return;
            }
            a0.StoreUnsafe(ref l); b0.StoreUnsafe(ref l, 8); a1.StoreUnsafe(ref l, 16); b1.StoreUnsafe(ref l, 24);
            a2.StoreUnsafe(ref l, 32); b2.StoreUnsafe(ref l, 40); a3.StoreUnsafe(ref l, 48); b3.StoreUnsafe(ref l, 56);
        }
        for (int k = i; k < n; k++)
        {
            float wk = Unsafe.Add(ref pw, k);
            Unsafe.Add(ref l, k & 15) += wk * Unsafe.Add(ref p0, k);
            Unsafe.Add(ref l, 16 + (k & 15)) += wk * Unsafe.Add(ref p1, k);
            Unsafe.Add(ref l, 32 + (k & 15)) += wk * Unsafe.Add(ref p2, k);
            Unsafe.Add(ref l, 48 + (k & 15)) += wk * Unsafe.Add(ref p3, k);
        }
        for (int t = 0; t < 4; t++) results[t] = ReduceLanes(lanes.Slice(t * Lanes, Lanes));
    }

    /// <summary>Four 16-lane sums held in registers reduced in <see cref="ReduceLanes"/>' order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ReduceLanes4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, Span<float> results)
    {
        if (AlternativeOrderForTests == 0)
        {
            Fold4(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper(), a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper()).CopyTo(results);
            return;
        }
        ReduceLanes4Slow(a0, a1, a2, a3, results);
    }

    /// <summary><see cref="ReduceLanes4(Vector512{float}, Vector512{float}, Vector512{float}, Vector512{float}, Span{float})"/>
    /// of sums held as 256-bit halves (lanes 0–7 in l, 8–15 in h): the 256-bit paths need no 512-bit value
    /// (which the JIT builds in memory where 512-bit vectors are not hardware-accelerated).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ReduceLanes4(Vector256<float> l0, Vector256<float> h0, Vector256<float> l1, Vector256<float> h1,
        Vector256<float> l2, Vector256<float> h2, Vector256<float> l3, Vector256<float> h3, Span<float> results)
    {
        if (AlternativeOrderForTests == 0) Fold4(l0 + h0, l1 + h1, l2 + h2, l3 + h3).CopyTo(results);
        else ReduceLanes4Slow(l0, h0, l1, h1, l2, h2, l3, h3, results);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // keeps 512-bit temporaries (stack-zeroed at AVX2) out of the callers
    private static void ReduceLanes4Slow(Vector256<float> l0, Vector256<float> h0, Vector256<float> l1, Vector256<float> h1,
        Vector256<float> l2, Vector256<float> h2, Vector256<float> l3, Vector256<float> h3, Span<float> results) =>
        ReduceLanes4Slow(Vector512.Create(l0, h0), Vector512.Create(l1, h1), Vector512.Create(l2, h2), Vector512.Create(l3, h3), results);

    /// <summary>The test-only alternative order (<see cref="AlternativeOrderForTests"/>), sum by sum.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ReduceLanes4Slow(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, Span<float> results)
    {
        Span<float> lanes = stackalloc float[Lanes];
        a0.CopyTo(lanes); results[0] = ReduceLanes(lanes);
        a1.CopyTo(lanes); results[1] = ReduceLanes(lanes);
        a2.CopyTo(lanes); results[2] = ReduceLanes(lanes);
        a3.CopyTo(lanes); results[3] = ReduceLanes(lanes);
    }

    /// <summary>Finishes four reductions at once from their 8-lane sums (lane j = l[j] + l[j+8]):
    /// j += j+4, then (0 + 2) + (1 + 3), as <see cref="ReduceLanes"/> does, with the four results
    /// side by side (x86 only: callers reach it from the 256/512-bit paths).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Fold4(Vector256<float> s0, Vector256<float> s1, Vector256<float> s2, Vector256<float> s3)
    {
        var q0 = s0.GetLower() + s0.GetUpper(); var q1 = s1.GetLower() + s1.GetUpper();
        var q2 = s2.GetLower() + s2.GetUpper(); var q3 = s3.GetLower() + s3.GetUpper();
        // t[0] = q[0] + q[2], t[1] = q[1] + q[3]
        var t0 = q0 + Vector128.Shuffle(q0, Vector128.Create(2, 3, 0, 1));
        var t1 = q1 + Vector128.Shuffle(q1, Vector128.Create(2, 3, 0, 1));
        var t2 = q2 + Vector128.Shuffle(q2, Vector128.Create(2, 3, 0, 1));
        var t3 = q3 + Vector128.Shuffle(q3, Vector128.Create(2, 3, 0, 1));
        var u01 = System.Runtime.Intrinsics.X86.Sse.UnpackLow(t0, t1); // t0[0], t1[0], t0[1], t1[1]
        var u23 = System.Runtime.Intrinsics.X86.Sse.UnpackLow(t2, t3);
        var first = System.Runtime.Intrinsics.X86.Sse.MoveLowToHigh(u01, u23);  // t0[0], t1[0], t2[0], t3[0]
        var second = System.Runtime.Intrinsics.X86.Sse.MoveHighToLow(u23, u01); // t0[1], t1[1], t2[1], t3[1]
        return first + second;
    }

    /// <summary>Tests set 1 to combine lanes left to right instead: a different, equally valid
    /// order, used to show that the trace check notices a change of reduction order.</summary>
    internal static int AlternativeOrderForTests;

    /// <summary>Combines 16 lanes in the contract's fixed pairwise order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ReduceLanes(Span<float> l)
    {
        if (AlternativeOrderForTests != 0)
        {
            float s = l[0];
            for (int j = 1; j < 16; j++) s += l[j];
            return s;
        }
        for (int j = 0; j < 8; j++) l[j] += l[j + 8];
        for (int j = 0; j < 4; j++) l[j] += l[j + 4];
        l[0] += l[2]; l[1] += l[3];
        return l[0] + l[1];
    }

    /// <summary>The same fold in WebAssembly: lanes 0–15 held in four f32x4 (<paramref name="a0"/> = lanes
    /// 0–3 … <paramref name="a3"/> = 12–15); leaves the sum (f32) on the stack. Follows
    /// <see cref="AlternativeOrderForTests"/> too, so a test can emit a kernel with the other order.</summary>
    internal static void EmitReduceLanes(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local a0, Tensors.Wasm.Local a1, Tensors.Wasm.Local a2, Tensors.Wasm.Local a3)
    {
        if (AlternativeOrderForTests != 0)
        {
            Tensors.Wasm.Local[] all = [a0, a1, a2, a3];
            f.Get(a0).F32x4ExtractLane(0);
            for (int j = 1; j < 16; j++) f.Get(all[j >> 2]).F32x4ExtractLane((byte)(j & 3)).F32Add();
            return;
        }
        f.Get(a0).Get(a2).F32x4Add().Set(a0);                  // j += j+8
        f.Get(a1).Get(a3).F32x4Add().Set(a1);
        f.Get(a0).Get(a1).F32x4Add().Set(a0);                  // j += j+4
        f.Get(a0).Get(a0).Get(a0).I8x16Shuffle(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7).F32x4Add().Set(a0); // j += j+2
        f.Get(a0).F32x4ExtractLane(0).Get(a0).F32x4ExtractLane(1).F32Add(); // lane 0 + lane 1
    }

    /// <summary>Σ x[i] in the contract's order.</summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        Span<float> lanes = stackalloc float[Lanes];
        lanes.Clear();
        int n = x.Length, i = 0, full = n & ~(Lanes - 1), bits = VectorBits;
        ref float px = ref MemoryMarshal.GetReference(x);
        // Lane j of the vectors is lanes[j]: the same additions in the same order as the loop below.
        if (full > 0 && bits >= 512)
        {
            var acc = Vector512<float>.Zero;
            for (; i < full; i += 16) acc += Vector512.LoadUnsafe(ref px, (nuint)i);
            acc.CopyTo(lanes);
        }
        else if (full > 0 && bits >= 256)
        {
            var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
            for (; i < full; i += 16) { acc0 += Vector256.LoadUnsafe(ref px, (nuint)i); acc1 += Vector256.LoadUnsafe(ref px, (nuint)i + 8); }
            acc0.CopyTo(lanes); acc1.CopyTo(lanes[8..]);
        }
        else if (full > 0 && bits >= 128)
        {
            var acc0 = Vector128<float>.Zero; var acc1 = Vector128<float>.Zero; var acc2 = Vector128<float>.Zero; var acc3 = Vector128<float>.Zero;
            for (; i < full; i += 16)
            {
                acc0 += Vector128.LoadUnsafe(ref px, (nuint)i); acc1 += Vector128.LoadUnsafe(ref px, (nuint)i + 4);
                acc2 += Vector128.LoadUnsafe(ref px, (nuint)i + 8); acc3 += Vector128.LoadUnsafe(ref px, (nuint)i + 12);
            }
            acc0.CopyTo(lanes); acc1.CopyTo(lanes[4..]); acc2.CopyTo(lanes[8..]); acc3.CopyTo(lanes[12..]);
        }
        for (; i < n; i++) lanes[i & 15] += x[i];
        return ReduceLanes(lanes);
    }

    /// <summary>out = w ⊙ (x · 1/√(mean(x²) + eps)).</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, float eps, Span<float> output)
    {
        float ss = Dot(x, x) / x.Length + eps;
        float scale = 1f / MathF.Sqrt(ss);
        int n = x.Length, i = 0;
        if (w.Length < n || output.Length < n) throw new ArgumentException("length mismatch");
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pw = ref MemoryMarshal.GetReference(w);
        ref float po = ref MemoryMarshal.GetReference(output);
        // Elementwise, so any width gives the loop's bits: w·(scale·x), two roundings per value.
        if (VectorBits >= 512)
            for (var s = Vector512.Create(scale); i + 16 <= n; i += 16)
                (Vector512.LoadUnsafe(ref pw, (nuint)i) * (s * Vector512.LoadUnsafe(ref px, (nuint)i))).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 256)
            for (var s = Vector256.Create(scale); i + 8 <= n; i += 8)
                (Vector256.LoadUnsafe(ref pw, (nuint)i) * (s * Vector256.LoadUnsafe(ref px, (nuint)i))).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 128)
            for (var s = Vector128.Create(scale); i + 4 <= n; i += 4)
                (Vector128.LoadUnsafe(ref pw, (nuint)i) * (s * Vector128.LoadUnsafe(ref px, (nuint)i))).StoreUnsafe(ref po, (nuint)i);
        for (; i < n; i++) output[i] = w[i] * (scale * x[i]);
    }

    /// <summary>out = (x − mean)/√(var + eps) ⊙ w + b, with mean and variance summed in the contract's order.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float eps, Span<float> output)
    {
        int n = x.Length;
        if (w.Length < n || b.Length < n || output.Length < n) throw new ArgumentException("length mismatch");
        float mean = Sum(x) / n;
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pw = ref MemoryMarshal.GetReference(w);
        ref float pb = ref MemoryMarshal.GetReference(b);
        ref float po = ref MemoryMarshal.GetReference(output);
        // Both loops are elementwise, so any width gives the scalar loops' bits.
        int i = 0;
        if (VectorBits >= 512)
            for (var m = Vector512.Create(mean); i + 16 <= n; i += 16) (Vector512.LoadUnsafe(ref px, (nuint)i) - m).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 256)
            for (var m = Vector256.Create(mean); i + 8 <= n; i += 8) (Vector256.LoadUnsafe(ref px, (nuint)i) - m).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 128)
            for (var m = Vector128.Create(mean); i + 4 <= n; i += 4) (Vector128.LoadUnsafe(ref px, (nuint)i) - m).StoreUnsafe(ref po, (nuint)i);
        for (; i < n; i++) output[i] = x[i] - mean;
        float variance = Dot(output, output) / n;
        float scale = 1f / MathF.Sqrt(variance + eps);
        i = 0;
        if (VectorBits >= 512)
            for (var s = Vector512.Create(scale); i + 16 <= n; i += 16)
                (Vector512.LoadUnsafe(ref po, (nuint)i) * s * Vector512.LoadUnsafe(ref pw, (nuint)i) + Vector512.LoadUnsafe(ref pb, (nuint)i)).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 256)
            for (var s = Vector256.Create(scale); i + 8 <= n; i += 8)
                (Vector256.LoadUnsafe(ref po, (nuint)i) * s * Vector256.LoadUnsafe(ref pw, (nuint)i) + Vector256.LoadUnsafe(ref pb, (nuint)i)).StoreUnsafe(ref po, (nuint)i);
        if (VectorBits >= 128)
            for (var s = Vector128.Create(scale); i + 4 <= n; i += 4)
                (Vector128.LoadUnsafe(ref po, (nuint)i) * s * Vector128.LoadUnsafe(ref pw, (nuint)i) + Vector128.LoadUnsafe(ref pb, (nuint)i)).StoreUnsafe(ref po, (nuint)i);
        for (; i < n; i++) output[i] = output[i] * scale * w[i] + b[i];
    }

    /// <summary>y += x.</summary>
    public static void Add(Span<float> y, ReadOnlySpan<float> x) => Elementwise<AddOp>(y, x);

    /// <summary>y ⊙= x (each product rounded once).</summary>
    public static void Multiply(Span<float> y, ReadOnlySpan<float> x) => Elementwise<MultiplyOp>(y, x);

    /// <summary>y[i] = y[i] op x[i] at the widest width, then one at a time: elementwise, so any width gives the
    /// scalar loop's bits.</summary>
    private static void Elementwise<TOp>(Span<float> y, ReadOnlySpan<float> x) where TOp : struct, IElementwiseOp
    {
        int n = y.Length, i = 0;
        if (x.Length < n) throw new ArgumentException("length mismatch");
        ref float py = ref MemoryMarshal.GetReference(y);
        ref float px = ref MemoryMarshal.GetReference(x);
        if (VectorBits >= 512)
            for (; i + 16 <= n; i += 16) TOp.Apply(Vector512.LoadUnsafe(ref py, (nuint)i), Vector512.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        if (VectorBits >= 256)
            for (; i + 8 <= n; i += 8) TOp.Apply(Vector256.LoadUnsafe(ref py, (nuint)i), Vector256.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        if (VectorBits >= 128)
            for (; i + 4 <= n; i += 4) TOp.Apply(Vector128.LoadUnsafe(ref py, (nuint)i), Vector128.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        for (; i < n; i++) y[i] = TOp.Apply(y[i], x[i]);
    }

    private interface IElementwiseOp
    {
        static abstract Vector512<float> Apply(Vector512<float> y, Vector512<float> x);
        static abstract Vector256<float> Apply(Vector256<float> y, Vector256<float> x);
        static abstract Vector128<float> Apply(Vector128<float> y, Vector128<float> x);
        static abstract float Apply(float y, float x);
    }

    private struct AddOp : IElementwiseOp
    {
        public static Vector512<float> Apply(Vector512<float> y, Vector512<float> x) => y + x;
        public static Vector256<float> Apply(Vector256<float> y, Vector256<float> x) => y + x;
        public static Vector128<float> Apply(Vector128<float> y, Vector128<float> x) => y + x;
        public static float Apply(float y, float x) => y + x;
    }

    private struct MultiplyOp : IElementwiseOp
    {
        public static Vector512<float> Apply(Vector512<float> y, Vector512<float> x) => y * x;
        public static Vector256<float> Apply(Vector256<float> y, Vector256<float> x) => y * x;
        public static Vector128<float> Apply(Vector128<float> y, Vector128<float> x) => y * x;
        public static float Apply(float y, float x) => y * x;
    }

    /// <summary><see cref="Add"/> in WebAssembly over n floats at y and x: four at a time, then one at a time
    /// (each element's own IEEE add, so the bits of the C# loop).</summary>
    internal static void EmitAddInPlace(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local y, Tensors.Wasm.Local x, Tensors.Wasm.Local n)
    {
        var i = f.Local(Tensors.Wasm.WasmType.I32); var quads = f.Local(Tensors.Wasm.WasmType.I32); var bytes = f.Local(Tensors.Wasm.WasmType.I32);
        f.Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().Set(quads);
        f.Get(n).I32Const(2).I32Shl().Set(bytes);
        int quadsDone = f.Block();
        f.Get(quads).I32Eqz().BrIf(quadsDone);
        int quad = f.Loop();
        f.Get(y).Get(i).I32Add().Get(y).Get(i).I32Add().V128Load().Get(x).Get(i).I32Add().V128Load().F32x4Add().V128Store();
        f.Get(i).I32Const(16).I32Add().Tee(i).Get(quads).I32LtS().BrIf(quad);
        f.End();
        f.End();
        int done = f.Block();
        f.Get(i).Get(bytes).I32GeS().BrIf(done);
        int one = f.Loop();
        f.Get(y).Get(i).I32Add().Get(y).Get(i).I32Add().F32Load().Get(x).Get(i).I32Add().F32Load().F32Add().F32Store();
        f.Get(i).I32Const(4).I32Add().Tee(i).Get(bytes).I32LtS().BrIf(one);
        f.End();
        f.End();
    }

    /// <summary>Where <see cref="EmitRmsNormRows"/> reads its arguments (i32 index into the argument block).</summary>
    internal enum RmsNormArg { X, Length, Weight, Outputs, Count, Eps, Size }

    /// <summary><see cref="RmsNorm"/> of several rows in WebAssembly, each exactly as the C# steps: ss = Dot(x, x)
    /// (the 16-lane order, <see cref="EmitDot"/>) / n + eps, scale = 1 / √ss (f32.sqrt, correctly rounded like
    /// MathF.Sqrt), out[i] = w[i] · (scale · x[i]). The argument block (<see cref="RmsNormArg"/>): rows at x, n
    /// floats apart; w; a table of each row's output address; the row count; eps's bits.</summary>
    internal static void EmitRmsNormRows(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local args)
    {
        const Tensors.Wasm.WasmType I = Tensors.Wasm.WasmType.I32, F = Tensors.Wasm.WasmType.F32, V = Tensors.Wasm.WasmType.V128;
        Tensors.Wasm.Local x = f.Local(I), n = f.Local(I), w = f.Local(I), outputs = f.Local(I), count = f.Local(I), eps = f.Local(F);
        Tensors.Wasm.Local t = f.Local(I), row = f.Local(I), output = f.Local(I), i = f.Local(I), quads = f.Local(I), bytes = f.Local(I);
        Tensors.Wasm.Local scale = f.Local(F), scale4 = f.Local(V);
        f.Get(args).I32Load(4 * (uint)RmsNormArg.X).Set(x);
        f.Get(args).I32Load(4 * (uint)RmsNormArg.Length).Set(n);
        f.Get(args).I32Load(4 * (uint)RmsNormArg.Weight).Set(w);
        f.Get(args).I32Load(4 * (uint)RmsNormArg.Outputs).Set(outputs);
        f.Get(args).I32Load(4 * (uint)RmsNormArg.Count).Set(count);
        f.Get(args).F32Load(4 * (uint)RmsNormArg.Eps).Set(eps);
        f.Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().Set(quads);
        f.Get(n).I32Const(2).I32Shl().Set(bytes);
        int none = f.Block();
        f.Get(count).I32Eqz().BrIf(none);
        f.Get(n).I32Eqz().BrIf(none);
        f.Get(x).Set(row);
        int eachRow = f.Loop();
        f.Get(outputs).Get(t).I32Const(2).I32Shl().I32Add().I32Load().Set(output);
        f.F32Const(1f);
        EmitDot(f, row, row, n, 4, static (f, p, offset) => f.Get(p).V128Load(offset), static (f, p, offset) => f.Get(p).F32Load(offset));
        f.Get(n).F32ConvertI32S().F32Div().Get(eps).F32Add().F32Sqrt().F32Div().Tee(scale).F32x4Splat().Set(scale4);
        f.I32Const(0).Set(i);
        int quadsDone = f.Block();
        f.Get(quads).I32Eqz().BrIf(quadsDone);
        int quad = f.Loop();
        f.Get(output).Get(i).I32Add();
        f.Get(w).Get(i).I32Add().V128Load().Get(scale4).Get(row).Get(i).I32Add().V128Load().F32x4Mul().F32x4Mul().V128Store();
        f.Get(i).I32Const(16).I32Add().Tee(i).Get(quads).I32LtS().BrIf(quad);
        f.End();
        f.End();
        int tailDone = f.Block();
        f.Get(i).Get(bytes).I32GeS().BrIf(tailDone);
        int one = f.Loop();
        f.Get(output).Get(i).I32Add();
        f.Get(w).Get(i).I32Add().F32Load().Get(scale).Get(row).Get(i).I32Add().F32Load().F32Mul().F32Mul().F32Store();
        f.Get(i).I32Const(4).I32Add().Tee(i).Get(bytes).I32LtS().BrIf(one);
        f.End();
        f.End();
        f.Get(row).Get(bytes).I32Add().Set(row);
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtU().BrIf(eachRow);
        f.End();
        f.End();
    }

    /// <summary>output[i] = Σ_t weights[t]·rows[offset + t·stride + i], summed from +0 in increasing t, each
    /// product rounded before its add (attention's weighted values). Elementwise, so the vector width
    /// does not change the bits; the output stays in registers across t.</summary>
    public static void WeightedRowSum(ReadOnlySpan<float> weights, float[] rows, int offset, int stride, Span<float> output)
    {
        int n = output.Length, count = weights.Length, i = 0;
        if ((long)offset + (long)(count - 1) * stride + n > rows.Length || offset < 0) throw new ArgumentOutOfRangeException(nameof(rows));
        ref float pr = ref MemoryMarshal.GetArrayDataReference(rows);
        ref float pw = ref MemoryMarshal.GetReference(weights);
        ref float po = ref MemoryMarshal.GetReference(output);
        if (VectorBits >= 256)
        {
            for (; i + 32 <= n; i += 32)
            {
                var a0 = Vector256<float>.Zero; var a1 = Vector256<float>.Zero; var a2 = Vector256<float>.Zero; var a3 = Vector256<float>.Zero;
                for (int t = 0; t < count; t++)
                {
                    ref float r = ref Unsafe.Add(ref pr, offset + t * stride + i);
                    var w = Vector256.Create(Unsafe.Add(ref pw, t));
                    a0 += w * Vector256.LoadUnsafe(ref r); a1 += w * Vector256.LoadUnsafe(ref r, 8);
                    a2 += w * Vector256.LoadUnsafe(ref r, 16); a3 += w * Vector256.LoadUnsafe(ref r, 24);
                }
                a0.StoreUnsafe(ref po, (nuint)i); a1.StoreUnsafe(ref po, (nuint)i + 8);
                a2.StoreUnsafe(ref po, (nuint)i + 16); a3.StoreUnsafe(ref po, (nuint)i + 24);
            }
            for (; i + 8 <= n; i += 8)
            {
                var a = Vector256<float>.Zero;
                for (int t = 0; t < count; t++)
                    a += Vector256.Create(Unsafe.Add(ref pw, t)) * Vector256.LoadUnsafe(ref Unsafe.Add(ref pr, offset + t * stride + i));
                a.StoreUnsafe(ref po, (nuint)i);
            }
        }
        else if (VectorBits >= 128)
        {
            for (; i + 4 <= n; i += 4)
            {
                var a = Vector128<float>.Zero;
                for (int t = 0; t < count; t++)
                    a += Vector128.Create(Unsafe.Add(ref pw, t)) * Vector128.LoadUnsafe(ref Unsafe.Add(ref pr, offset + t * stride + i));
                a.StoreUnsafe(ref po, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float a = 0;
            for (int t = 0; t < count; t++) a += Unsafe.Add(ref pw, t) * Unsafe.Add(ref pr, offset + t * stride + i);
            Unsafe.Add(ref po, i) = a;
        }
    }

    /// <summary><see cref="WeightedRowSum"/> in WebAssembly: out[i] = Σ_t w[t]·rows[t·stride + i] from +0 in
    /// increasing t, product rounded before the add; four outputs per f32x4, the last n % 4 one by one
    /// (elementwise, so the bits are the C# kernel's). <paramref name="strideBytes"/> is the row stride in bytes.</summary>
    internal static void EmitWeightedRowSum(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local weights, Tensors.Wasm.Local count,
        Tensors.Wasm.Local rows, Tensors.Wasm.Local strideBytes, Tensors.Wasm.Local output, Tensors.Wasm.Local n)
    {
        const Tensors.Wasm.WasmType I = Tensors.Wasm.WasmType.I32;
        var i = f.Local(I); var t = f.Local(I); var wp = f.Local(I); var rp = f.Local(I); var four = f.Local(I);
        var acc = f.Local(Tensors.Wasm.WasmType.V128); var a = f.Local(Tensors.Wasm.WasmType.F32);
        f.Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().Set(four); // bytes of whole f32x4 groups
        f.I32Const(0).Set(i);
        int vectorsDone = f.Block();
        f.Get(i).Get(four).I32GeS().BrIf(vectorsDone);
        int vectors = f.Loop();
        f.F32Const(0).F32x4Splat().Set(acc);
        f.Get(weights).Set(wp);
        f.Get(rows).Get(i).I32Add().Set(rp);
        f.I32Const(0).Set(t);
        int terms = f.Loop();
        f.Get(acc).Get(wp).F32Load().F32x4Splat().Get(rp).V128Load().F32x4Mul().F32x4Add().Set(acc);
        f.Get(wp).I32Const(4).I32Add().Set(wp);
        f.Get(rp).Get(strideBytes).I32Add().Set(rp);
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtS().BrIf(terms);
        f.End();
        f.Get(output).Get(i).I32Add().Get(acc).V128Store();
        f.Get(i).I32Const(16).I32Add().Tee(i).Get(four).I32LtS().BrIf(vectors);
        f.End();
        f.End();
        int scalarsDone = f.Block();
        f.Get(i).Get(n).I32Const(2).I32Shl().I32GeS().BrIf(scalarsDone);
        int scalars = f.Loop();
        f.F32Const(0).Set(a);
        f.Get(weights).Set(wp);
        f.Get(rows).Get(i).I32Add().Set(rp);
        f.I32Const(0).Set(t);
        int scalarTerms = f.Loop();
        f.Get(a).Get(wp).F32Load().Get(rp).F32Load().F32Mul().F32Add().Set(a);
        f.Get(wp).I32Const(4).I32Add().Set(wp);
        f.Get(rp).Get(strideBytes).I32Add().Set(rp);
        f.Get(t).I32Const(1).I32Add().Tee(t).Get(count).I32LtS().BrIf(scalarTerms);
        f.End();
        f.Get(output).Get(i).I32Add().Get(a).F32Store();
        f.Get(i).I32Const(4).I32Add().Tee(i).Get(n).I32Const(2).I32Shl().I32LtS().BrIf(scalars);
        f.End();
        f.End();
    }

    /// <summary>Index of the largest value (the first on ties); NaN never wins (and a NaN first value
    /// is never replaced, since nothing compares greater than it).</summary>
    public static unsafe int ArgMax(ReadOnlySpan<float> x)
    {
        if (x.Length > 1)
            fixed (float* p = x)
                if (Tensors.Wasm.CompiledKernels.TryCall(Tensors.Wasm.Utility.ArgMax, (int)p, x.Length) is { } compiled) return compiled;
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary><see cref="ArgMax"/> in WebAssembly over n floats at <paramref name="x"/>: the same scalar
    /// comparisons in the same order (the best value kept in a local); leaves the index (i32) on the stack.</summary>
    internal static void EmitArgMax(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local x, Tensors.Wasm.Local n)
    {
        const Tensors.Wasm.WasmType I = Tensors.Wasm.WasmType.I32;
        var i = f.Local(I); var best = f.Local(I); var p = f.Local(I); var v = f.Local(Tensors.Wasm.WasmType.F32); var bv = f.Local(Tensors.Wasm.WasmType.F32);
        int done = f.Block();
        f.Get(n).I32Const(2).I32LtS().BrIf(done);
        f.Get(x).F32Load().Set(bv);
        f.Get(x).Set(p);
        f.I32Const(1).Set(i);
        int each = f.Loop();
        f.Get(p).F32Load(4).Tee(v).Get(bv).F32Gt().If();
        f.Get(i).Set(best);
        f.Get(v).Set(bv);
        f.End();
        f.Get(p).I32Const(4).I32Add().Set(p);
        f.Get(i).I32Const(1).I32Add().Tee(i).Get(n).I32LtS().BrIf(each);
        f.End();
        f.End();
        f.Get(best);
    }

    public static unsafe bool AllFinite(ReadOnlySpan<float> x)
    {
        if (x.Length >= 64)
            fixed (float* p = x)
                if (Tensors.Wasm.CompiledKernels.TryCall(Tensors.Wasm.Utility.AllFinite, (int)p, x.Length) is { } compiled) return compiled != 0;
        // On the bits, a vector at a time: the logits check ran one float at a time, ~2 % of a Pythia-14M token
        // (50,304 logits). A value is finite unless its exponent bits are all ones.
        const int Exponent = 0x7F800000;
        ref int v = ref Unsafe.As<float, int>(ref MemoryMarshal.GetReference(x));
        int i = 0, n = x.Length, bits = VectorBits;
        if (bits >= 512)
        {
            var e = Vector512.Create(Exponent); var bad = Vector512<int>.Zero;
            for (; i + 16 <= n; i += 16) bad |= Vector512.Equals(Vector512.LoadUnsafe(ref v, (nuint)i) & e, e);
            if (bad != Vector512<int>.Zero) return false;
        }
        else if (bits >= 256)
        {
            var e = Vector256.Create(Exponent); var bad = Vector256<int>.Zero;
            for (; i + 8 <= n; i += 8) bad |= Vector256.Equals(Vector256.LoadUnsafe(ref v, (nuint)i) & e, e);
            if (bad != Vector256<int>.Zero) return false;
        }
        else if (bits >= 128)
        {
            var e = Vector128.Create(Exponent); var bad = Vector128<int>.Zero;
            for (; i + 4 <= n; i += 4) bad |= Vector128.Equals(Vector128.LoadUnsafe(ref v, (nuint)i) & e, e);
            if (bad != Vector128<int>.Zero) return false;
        }
        for (; i < n; i++) if ((Unsafe.Add(ref v, i) & Exponent) == Exponent) return false;
        return true;
    }

    /// <summary><see cref="AllFinite"/> in WebAssembly: a value is finite unless its exponent bits are all
    /// ones; four at a time, then one by one. Leaves 1 (all finite) or 0 on the stack.</summary>
    internal static void EmitAllFinite(Tensors.Wasm.WasmFunction f, Tensors.Wasm.Local x, Tensors.Wasm.Local n)
    {
        const Tensors.Wasm.WasmType I = Tensors.Wasm.WasmType.I32;
        var p = f.Local(I); var end = f.Local(I); var bad = f.Local(I); var any = f.Local(Tensors.Wasm.WasmType.V128); var mask = f.Local(Tensors.Wasm.WasmType.V128);
        const int Exponent = 0x7F800000;
        f.I32Const(Exponent).I32x4Splat().Set(mask);
        f.I32Const(0).I32x4Splat().Set(any);
        f.Get(x).Set(p);
        f.Get(x).Get(n).I32Const(-4).I32And().I32Const(2).I32Shl().I32Add().Set(end);
        int vectorsDone = f.Block();
        f.Get(p).Get(end).I32GeS().BrIf(vectorsDone);
        int vectors = f.Loop();
        f.Get(any).Get(p).V128Load().Get(mask).V128And().Get(mask).I32x4Eq().V128Or().Set(any);
        f.Get(p).I32Const(16).I32Add().Tee(p).Get(end).I32LtS().BrIf(vectors);
        f.End();
        f.End();
        f.Get(any).V128AnyTrue().Set(bad);
        f.Get(x).Get(n).I32Const(2).I32Shl().I32Add().Set(end);
        int scalarsDone = f.Block();
        f.Get(p).Get(end).I32GeS().BrIf(scalarsDone);
        int scalars = f.Loop();
        f.Get(bad).Get(p).I32Load().I32Const(Exponent).I32And().I32Const(Exponent).I32Eq().I32Or().Set(bad);
        f.Get(p).I32Const(4).I32Add().Tee(p).Get(end).I32LtS().BrIf(scalars);
        f.End();
        f.End();
        f.Get(bad).I32Eqz();
    }
}
