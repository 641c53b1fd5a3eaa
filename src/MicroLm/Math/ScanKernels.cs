using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MicroLm.Math;

/// <summary>The selective scan's inner step (Mamba2): one row of state updated and read in one pass.</summary>
internal static class ScanKernels
{
    /// <summary>s[j] ← s[j]·decay + b[j]·xDelta for every j (each product and the sum rounded; no FMA), then
    /// returns Σ s[j]·c[j] in the contract's order (<see cref="Kernels.Dot"/>'s 16 lanes): the same bits as
    /// that update loop followed by Kernels.Dot(s, c), on every vector width (<see cref="Kernels.VectorBits"/>).</summary>
    public static float UpdateAndDot(Span<float> s, ReadOnlySpan<float> b, ReadOnlySpan<float> c, float decay, float xDelta)
    {
        int n = s.Length;
        if (b.Length < n || c.Length < n) throw new ArgumentException("length mismatch");
        ref float ps = ref MemoryMarshal.GetReference(s);
        ref float pb = ref MemoryMarshal.GetReference(b);
        ref float pc = ref MemoryMarshal.GetReference(c);
        int i = 0, full = n & ~(Kernels.Lanes - 1), bits = Kernels.VectorBits;
        // Rows that are whole vectors (the usual state sizes) fold in registers: the stack round trip of the lanes
        // and their scalar fold had cost more than the update itself on 64-value rows (prefill and decode call this
        // once per state row and token). Same operations as ReduceLanes (lanes j + j+8, then Fold8).
        if (full == n && n > 0 && bits >= 256 && Kernels.AlternativeOrderForTests == 0)
            return bits >= 512 ? UpdateAndDot512(ref ps, ref pb, ref pc, n, decay, xDelta) : UpdateAndDot256(ref ps, ref pb, ref pc, n, decay, xDelta);
        Span<float> lanes = stackalloc float[Kernels.Lanes];
        lanes.Clear();
        ref float l = ref MemoryMarshal.GetReference(lanes);
        if (full > 0 && bits >= 512)
        {
            var d = Vector512.Create(decay); var x = Vector512.Create(xDelta);
            var acc = Vector512<float>.Zero;
            for (; i < full; i += 16)
            {
                var v = Vector512.LoadUnsafe(ref ps, (nuint)i) * d + Vector512.LoadUnsafe(ref pb, (nuint)i) * x;
                v.StoreUnsafe(ref ps, (nuint)i);
                acc += v * Vector512.LoadUnsafe(ref pc, (nuint)i);
            }
            acc.StoreUnsafe(ref l);
        }
        else if (full > 0 && bits >= 256)
        {
            var d = Vector256.Create(decay); var x = Vector256.Create(xDelta);
            var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
            for (; i < full; i += 16)
            {
                var v0 = Vector256.LoadUnsafe(ref ps, (nuint)i) * d + Vector256.LoadUnsafe(ref pb, (nuint)i) * x;
                var v1 = Vector256.LoadUnsafe(ref ps, (nuint)i + 8) * d + Vector256.LoadUnsafe(ref pb, (nuint)i + 8) * x;
                v0.StoreUnsafe(ref ps, (nuint)i); v1.StoreUnsafe(ref ps, (nuint)i + 8);
                acc0 += v0 * Vector256.LoadUnsafe(ref pc, (nuint)i);
                acc1 += v1 * Vector256.LoadUnsafe(ref pc, (nuint)i + 8);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 8);
        }
        else if (full > 0 && bits >= 128)
        {
            var d = Vector128.Create(decay); var x = Vector128.Create(xDelta);
            var acc0 = Vector128<float>.Zero; var acc1 = Vector128<float>.Zero;
            var acc2 = Vector128<float>.Zero; var acc3 = Vector128<float>.Zero;
            for (; i < full; i += 16)
            {
                var v0 = Vector128.LoadUnsafe(ref ps, (nuint)i) * d + Vector128.LoadUnsafe(ref pb, (nuint)i) * x;
                var v1 = Vector128.LoadUnsafe(ref ps, (nuint)i + 4) * d + Vector128.LoadUnsafe(ref pb, (nuint)i + 4) * x;
                var v2 = Vector128.LoadUnsafe(ref ps, (nuint)i + 8) * d + Vector128.LoadUnsafe(ref pb, (nuint)i + 8) * x;
                var v3 = Vector128.LoadUnsafe(ref ps, (nuint)i + 12) * d + Vector128.LoadUnsafe(ref pb, (nuint)i + 12) * x;
                v0.StoreUnsafe(ref ps, (nuint)i); v1.StoreUnsafe(ref ps, (nuint)i + 4);
                v2.StoreUnsafe(ref ps, (nuint)i + 8); v3.StoreUnsafe(ref ps, (nuint)i + 12);
                acc0 += v0 * Vector128.LoadUnsafe(ref pc, (nuint)i);
                acc1 += v1 * Vector128.LoadUnsafe(ref pc, (nuint)i + 4);
                acc2 += v2 * Vector128.LoadUnsafe(ref pc, (nuint)i + 8);
                acc3 += v3 * Vector128.LoadUnsafe(ref pc, (nuint)i + 12);
            }
            acc0.StoreUnsafe(ref l); acc1.StoreUnsafe(ref l, 4); acc2.StoreUnsafe(ref l, 8); acc3.StoreUnsafe(ref l, 12);
        }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref ps, i) * decay + Unsafe.Add(ref pb, i) * xDelta;
            Unsafe.Add(ref ps, i) = v;
            Unsafe.Add(ref l, i & 15) += v * Unsafe.Add(ref pc, i);
        }
        return Kernels.ReduceLanes(lanes);
    }

    /// <summary>State size the batched step keeps in registers (<see cref="UpdateAndDotTokens"/>).</summary>
    public const int TokensStateSize = 64;

    /// <summary>Whether <see cref="UpdateAndDotTokens"/> serves a state row of <paramref name="n"/> values here.</summary>
    public static bool HasTokensPath(int n) => n == TokensStateSize && Kernels.VectorBits >= 256 && Kernels.AlternativeOrderForTests == 0;

    /// <summary>One state row over several tokens (prefill), the row held in registers between them: for t &lt; count,
    /// with x_t = conv[t·convStride + i], b_t and c_t the n values at conv[t·convStride + bAt] and [… + cAt],
    /// s ← s·decay[t] + b_t·(x_t·delta[t]), then output[t·outputStride + i] ← (s·c_t + x_t·skip) · output[…].
    /// Each token's operations are <see cref="UpdateAndDot"/>'s and the scan's (same bits as calling it token by
    /// token), without the row's load and store per token. Only where <see cref="HasTokensPath"/>.</summary>
    public static void UpdateAndDotTokens(Span<float> s, ReadOnlySpan<float> conv, int convStride, int bAt, int cAt, int i,
        ReadOnlySpan<float> delta, ReadOnlySpan<float> decay, float skip, Span<float> output, int outputStride, int count)
    {
        if (!HasTokensPath(s.Length)) throw new InvalidOperationException("no batched scan step for this state size here");
        if ((count - 1) * convStride + System.Math.Max(System.Math.Max(bAt, cAt) + TokensStateSize, i + 1) > conv.Length
            || (count - 1) * outputStride + i >= output.Length || delta.Length < count || decay.Length < count)
            throw new ArgumentException("length mismatch");
        ref float ps = ref MemoryMarshal.GetReference(s);
        ref float rows = ref MemoryMarshal.GetReference(conv);
        ref float outs = ref MemoryMarshal.GetReference(output);
        if (Kernels.VectorBits >= 512)
        {
            var s0 = Vector512.LoadUnsafe(ref ps); var s1 = Vector512.LoadUnsafe(ref ps, 16);
            var s2 = Vector512.LoadUnsafe(ref ps, 32); var s3 = Vector512.LoadUnsafe(ref ps, 48);
            for (int t = 0; t < count; t++)
            {
                ref float row = ref Unsafe.Add(ref rows, t * convStride);
                ref float b = ref Unsafe.Add(ref row, bAt);
                ref float c = ref Unsafe.Add(ref row, cAt);
                float x = Unsafe.Add(ref row, i);
                var d = Vector512.Create(decay[t]); var xd = Vector512.Create(x * delta[t]);
                var acc = Vector512<float>.Zero;
                s0 = s0 * d + Vector512.LoadUnsafe(ref b) * xd; acc += s0 * Vector512.LoadUnsafe(ref c);
                s1 = s1 * d + Vector512.LoadUnsafe(ref b, 16) * xd; acc += s1 * Vector512.LoadUnsafe(ref c, 16);
                s2 = s2 * d + Vector512.LoadUnsafe(ref b, 32) * xd; acc += s2 * Vector512.LoadUnsafe(ref c, 32);
                s3 = s3 * d + Vector512.LoadUnsafe(ref b, 48) * xd; acc += s3 * Vector512.LoadUnsafe(ref c, 48);
                ref float y = ref Unsafe.Add(ref outs, t * outputStride + i);
                y = (Kernels.Fold8(acc.GetLower() + acc.GetUpper()) + x * skip) * y;
            }
            s0.StoreUnsafe(ref ps); s1.StoreUnsafe(ref ps, 16); s2.StoreUnsafe(ref ps, 32); s3.StoreUnsafe(ref ps, 48);
            return;
        }
        {
            var s0 = Vector256.LoadUnsafe(ref ps); var s1 = Vector256.LoadUnsafe(ref ps, 8);
            var s2 = Vector256.LoadUnsafe(ref ps, 16); var s3 = Vector256.LoadUnsafe(ref ps, 24);
            var s4 = Vector256.LoadUnsafe(ref ps, 32); var s5 = Vector256.LoadUnsafe(ref ps, 40);
            var s6 = Vector256.LoadUnsafe(ref ps, 48); var s7 = Vector256.LoadUnsafe(ref ps, 56);
            for (int t = 0; t < count; t++)
            {
                ref float row = ref Unsafe.Add(ref rows, t * convStride);
                ref float b = ref Unsafe.Add(ref row, bAt);
                ref float c = ref Unsafe.Add(ref row, cAt);
                float x = Unsafe.Add(ref row, i);
                var d = Vector256.Create(decay[t]); var xd = Vector256.Create(x * delta[t]);
                // Lanes 0–7 and 8–15 of UpdateAndDot256's two sums.
                var lo = Vector256<float>.Zero; var hi = Vector256<float>.Zero;
                s0 = s0 * d + Vector256.LoadUnsafe(ref b) * xd; lo += s0 * Vector256.LoadUnsafe(ref c);
                s1 = s1 * d + Vector256.LoadUnsafe(ref b, 8) * xd; hi += s1 * Vector256.LoadUnsafe(ref c, 8);
                s2 = s2 * d + Vector256.LoadUnsafe(ref b, 16) * xd; lo += s2 * Vector256.LoadUnsafe(ref c, 16);
                s3 = s3 * d + Vector256.LoadUnsafe(ref b, 24) * xd; hi += s3 * Vector256.LoadUnsafe(ref c, 24);
                s4 = s4 * d + Vector256.LoadUnsafe(ref b, 32) * xd; lo += s4 * Vector256.LoadUnsafe(ref c, 32);
                s5 = s5 * d + Vector256.LoadUnsafe(ref b, 40) * xd; hi += s5 * Vector256.LoadUnsafe(ref c, 40);
                s6 = s6 * d + Vector256.LoadUnsafe(ref b, 48) * xd; lo += s6 * Vector256.LoadUnsafe(ref c, 48);
                s7 = s7 * d + Vector256.LoadUnsafe(ref b, 56) * xd; hi += s7 * Vector256.LoadUnsafe(ref c, 56);
                ref float y = ref Unsafe.Add(ref outs, t * outputStride + i);
                y = (Kernels.Fold8(lo + hi) + x * skip) * y;
            }
            s0.StoreUnsafe(ref ps); s1.StoreUnsafe(ref ps, 8); s2.StoreUnsafe(ref ps, 16); s3.StoreUnsafe(ref ps, 24);
            s4.StoreUnsafe(ref ps, 32); s5.StoreUnsafe(ref ps, 40); s6.StoreUnsafe(ref ps, 48); s7.StoreUnsafe(ref ps, 56);
        }
    }

    /// <summary><see cref="UpdateAndDot"/>'s 512-bit loop for n a multiple of 16, folded in registers.</summary>
    private static float UpdateAndDot512(ref float ps, ref float pb, ref float pc, int n, float decay, float xDelta)
    {
        var d = Vector512.Create(decay); var x = Vector512.Create(xDelta);
        var acc = Vector512<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            var v = Vector512.LoadUnsafe(ref ps, (nuint)i) * d + Vector512.LoadUnsafe(ref pb, (nuint)i) * x;
            v.StoreUnsafe(ref ps, (nuint)i);
            acc += v * Vector512.LoadUnsafe(ref pc, (nuint)i);
        }
        return Kernels.Fold8(acc.GetLower() + acc.GetUpper());
    }

    /// <summary><see cref="UpdateAndDot"/>'s 256-bit loop (lanes 0–7 and 8–15) for n a multiple of 16, folded in registers.</summary>
    private static float UpdateAndDot256(ref float ps, ref float pb, ref float pc, int n, float decay, float xDelta)
    {
        var d = Vector256.Create(decay); var x = Vector256.Create(xDelta);
        var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero;
        for (int i = 0; i < n; i += 16)
        {
            var v0 = Vector256.LoadUnsafe(ref ps, (nuint)i) * d + Vector256.LoadUnsafe(ref pb, (nuint)i) * x;
            var v1 = Vector256.LoadUnsafe(ref ps, (nuint)i + 8) * d + Vector256.LoadUnsafe(ref pb, (nuint)i + 8) * x;
            v0.StoreUnsafe(ref ps, (nuint)i); v1.StoreUnsafe(ref ps, (nuint)i + 8);
            acc0 += v0 * Vector256.LoadUnsafe(ref pc, (nuint)i);
            acc1 += v1 * Vector256.LoadUnsafe(ref pc, (nuint)i + 8);
        }
        return Kernels.Fold8(acc0 + acc1);
    }
}
