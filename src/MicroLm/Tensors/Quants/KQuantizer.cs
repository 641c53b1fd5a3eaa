using System.Buffers.Binary;

namespace MicroLm.Tensors.Quants;

/// <summary>Encoders for the 256-value K super-blocks (Q2_K … Q6_K) and the IQ4 codebook types, with the
/// rules of ggml's reference quantizers without an importance matrix (what llama-quantize runs when no
/// imatrix is given), so the blocks are the ones llama.cpp writes for the same floats. Layouts are
/// described beside the kernels (KQuantKernels.cs, IQuantKernels.cs).
///
/// Every step is single-precision IEEE arithmetic in the order ggml's C evaluates it (no FMA, no
/// reassociation; C promotes int operands to float the same way C# does), so the bytes are the same on
/// every platform. The searches:
///   Q2_K: per 16 values an asymmetric fit (scale, min) of 2-bit levels minimising Σ|x|·|err| over 16
///         trial scales; then the scales and mins quantized to 4 bits under f16 d and dmin.
///   Q3_K: per 16 values a symmetric 3-bit fit refined by coordinate descent on Σx²·err²; scales to
///         6 signed bits under f16 d.
///   Q4_K/Q5_K: per 32 values an asymmetric fit weighted by rms+|x| (21 / 16 trial scales); 6-bit
///         scales and mins under f16 d and dmin.
///   Q6_K: per 16 values a symmetric 6-bit fit weighted by x² over 19 trial scales; 8-bit scales.
///   IQ4_NL/IQ4_XS: per 32 values the best of 16 scales for the fixed codebook, weighted by x²;
///         IQ4_XS then stores the block scales as 6 bits under an f16 super-block scale.
/// After the scales are rounded, each value is re-quantized against the rounded scale, as ggml does.</summary>
[System.Runtime.CompilerServices.SkipLocalsInit]
internal static class KQuantizer
{
    private const float GroupMaxEps = 1e-15f;

    /// <summary>ggml's nearest_int: add 1.5·2^23 and read the low mantissa bits — round half to even
    /// for |x| &lt; 2^22 (and the same wrapped value outside, for byte equality in degenerate cases).</summary>
    private static int NearestInt(float f)
    {
        float v = f + 12582912f;
        int i = BitConverter.SingleToInt32Bits(v);
        return (i & 0x007fffff) - 0x00400000;
    }

    private static ushort Half(float f) => Quantizer.ToHalfBits(f);
    private static float FromHalf(ReadOnlySpan<byte> b) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b));

    // ---------------------------------------------------------------- shared fits

    /// <summary>Symmetric fit with levels −nmax..nmax−1 (make_qx_quants, rmse_type 1, weights x²).
    /// L receives level + nmax.</summary>
    private static float FitSymmetric(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = LargestMagnitude(x[..n], out float amax);
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        var (sumlx, suml2) = SymmetricLevels(n, nmax, -nmax / max, x, L, nmax);
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            float iscale = -(nmax + 0.1f * step) / max;
            (sumlx, suml2) = SymmetricLevels(n, nmax, iscale, x, default, 0);
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                SymmetricLevels(n, nmax, iscale, x, L, nmax);
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>The levels l = round(iscale·x) clamped to −nmax..nmax−1, stored in <paramref name="L"/> as l +
    /// <paramref name="offset"/> unless L is empty, and their fit Σw·x·l and Σw·l² with weights w = x².</summary>
    private static (float SumLx, float SumL2) SymmetricLevels(int n, int nmax, float iscale, ReadOnlySpan<float> x, Span<sbyte> L, int offset)
    {
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = System.Math.Max(-nmax, System.Math.Min(nmax - 1, NearestInt(iscale * x[i])));
            if (!L.IsEmpty) L[i] = (sbyte)(l + offset);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        return (sumlx, suml2);
    }

    /// <summary>The value of largest magnitude (the first of equals; 0 for none), and that magnitude.</summary>
    private static float LargestMagnitude(ReadOnlySpan<float> x, out float amax)
    {
        float max = 0;
        amax = 0;
        for (int i = 0; i < x.Length; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        return max;
    }

    /// <summary>Q3_K's symmetric fit (make_q3_quants with rmse): start from −nmax/max, then up to five
    /// rounds of moving single levels while Σw·x·l)²/Σw·l² grows. L receives level + nmax.</summary>
    private static float FitQ3(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = LargestMagnitude(x[..n], out float amax);
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            return 0f;
        }
        var (sumlx, suml2) = SymmetricLevels(n, nmax, -nmax / max, x, L, 0);
        for (int round = 0; round < 5; round++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0)
                {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int newL = System.Math.Max(-nmax, System.Math.Min(nmax - 1, NearestInt(x[i] * sl2 / slx)));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        for (int i = 0; i < n; i++) L[i] = (sbyte)(L[i] + nmax);
        return suml2 > 0f ? sumlx / suml2 : 0f;
    }

    /// <summary>Asymmetric fit with levels 0..nmax (make_qkx2_quants): the weighted least-squares
    /// (scale, min) for each of nstep+1 trial scales, the one with the smallest weighted error kept.
    /// Returns the scale; <paramref name="theMin"/> receives −min (≥ 0).</summary>
    private static float FitAsymmetric(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            for (int i = 0; i < n; i++) L[i] = 0;
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)System.Math.Max(0, System.Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = System.Math.Max(0, System.Math.Min(nmax, NearestInt(iscale * (x[i] - min))));
                Laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float error = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    error += weights[i] * diff;
                }
                if (error < bestError)
                {
                    Laux[..n].CopyTo(L);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    // ---------------------------------------------------------------- Q2_K

    public static void Q2_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> L = stackalloc byte[256];
        Span<byte> Laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[16];
        Span<float> scales = stackalloc float[16];
        const float q4scale = 15f;
        var sc = y[..16];
        var qs = y.Slice(16, 64);

        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 16; j++)
        {
            var xs = x.Slice(16 * j, 16);
            for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(xs[l]);
            scales[j] = FitAsymmetric(16, 3, xs, weights, L.Slice(16 * j, 16), out mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        ushort d, dmin;
        if (maxScale > 0)
        {
            float iscale = q4scale / maxScale;
            for (int j = 0; j < 16; j++) sc[j] = (byte)NearestInt(iscale * scales[j]);
            d = Half(maxScale / q4scale);
        }
        else
        {
            sc.Clear();
            d = Half(0f);
        }
        if (maxMin > 0)
        {
            float iscale = q4scale / maxMin;
            for (int j = 0; j < 16; j++) sc[j] |= (byte)(NearestInt(iscale * mins[j]) << 4);
            dmin = Half(maxMin / q4scale);
        }
        else dmin = Half(0f);
        BinaryPrimitives.WriteUInt16LittleEndian(y[80..], d);
        BinaryPrimitives.WriteUInt16LittleEndian(y[82..], dmin);
        float df = (float)BitConverter.UInt16BitsToHalf(d), dminf = (float)BitConverter.UInt16BitsToHalf(dmin);
        for (int j = 0; j < 16; j++)
        {
            float dl = df * (sc[j] & 0xF);
            if (dl == 0) continue;
            float dm = dminf * (sc[j] >> 4);
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (byte)System.Math.Max(0, System.Math.Min(3, NearestInt((x[16 * j + i] + dm) / dl)));
        }
        PackTwoBits(L, qs);
    }

    /// <summary>Values j, j+32, j+64, j+96 of each 128 go to bit pairs 0, 2, 4, 6 of byte j.</summary>
    private static void PackTwoBits(ReadOnlySpan<byte> L, Span<byte> qs)
    {
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }

    // ---------------------------------------------------------------- Q3_K

    public static void Q3_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        var hmask = y[..32];
        var qs = y.Slice(32, 64);
        var sc = y.Slice(96, 12);

        float maxScale = 0, amax = 0;
        for (int j = 0; j < 16; j++)
        {
            scales[j] = FitQ3(16, 4, x.Slice(16 * j, 16), L.Slice(16 * j, 16));
            float a = MathF.Abs(scales[j]);
            if (a > amax) { amax = a; maxScale = scales[j]; }
        }
        sc.Clear();
        ushort d;
        if (maxScale != 0)
        {
            float iscale = -32f / maxScale;
            for (int j = 0; j < 16; j++)
            {
                int l = (sbyte)NearestInt(iscale * scales[j]);
                l = System.Math.Max(-32, System.Math.Min(31, l)) + 32;
                if (j < 8) sc[j] = (byte)(l & 0xF);
                else sc[j - 8] |= (byte)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
            }
            d = Half(1 / iscale);
        }
        else d = Half(0f);
        BinaryPrimitives.WriteUInt16LittleEndian(y[108..], d);
        float df = (float)BitConverter.UInt16BitsToHalf(d);
        for (int j = 0; j < 16; j++)
        {
            int s = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
            s = (sbyte)((s | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32);
            float dl = df * s;
            if (dl == 0) continue;
            for (int i = 0; i < 16; i++)
            {
                int l = System.Math.Max(-4, System.Math.Min(3, NearestInt(x[16 * j + i] / dl)));
                L[16 * j + i] = (sbyte)(l + 4);
            }
        }
        hmask.Clear();
        int m = 0;
        byte hm = 1;
        for (int j = 0; j < 256; j++)
        {
            if (L[j] > 3)
            {
                hmask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == 32) { m = 0; hm <<= 1; }
        }
        PackTwoBits(System.Runtime.InteropServices.MemoryMarshal.Cast<sbyte, byte>(L), qs);
    }

    // ---------------------------------------------------------------- Q4_K / Q5_K

    /// <summary>The per-32 asymmetric fits of Q4_K (nmax 15) and Q5_K (nmax 31), the 6-bit scale/min
    /// packing, and the re-quantization against the rounded scales. Writes d, dmin and scales at
    /// y[0..16]; returns the levels in <paramref name="L"/>.</summary>
    private static void FitK32(ReadOnlySpan<float> x, Span<byte> y, Span<byte> L, int nmax, float rmin, int nstep)
    {
        Span<byte> Laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[8];
        Span<float> scales = stackalloc float[8];
        var sc = y.Slice(4, 12);

        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            var xs = x.Slice(32 * j, 32);
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += xs[l] * xs[l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xs[l]);
            scales[j] = FitAsymmetric(32, nmax, xs, weights, L.Slice(32 * j, 32), out mins[j], Laux, rmin, 0.1f, nstep, false);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        sc.Clear();
        for (int j = 0; j < 8; j++)
        {
            byte ls = System.Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
            byte lm = System.Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
            if (j < 4)
            {
                sc[j] = ls;
                sc[j + 4] = lm;
            }
            else
            {
                sc[j + 4] = (byte)((ls & 0xF) | (lm & 0xF) << 4);
                sc[j - 4] |= (byte)((ls >> 4) << 6);
                sc[j] |= (byte)((lm >> 4) << 6);
            }
        }
        ushort d = Half(maxScale / 63f), dmin = Half(maxMin / 63f);
        BinaryPrimitives.WriteUInt16LittleEndian(y, d);
        BinaryPrimitives.WriteUInt16LittleEndian(y[2..], dmin);
        float df = (float)BitConverter.UInt16BitsToHalf(d), dminf = (float)BitConverter.UInt16BitsToHalf(dmin);
        for (int j = 0; j < 8; j++)
        {
            KBlock.ScaleMin(sc, j, out int s, out int m);
            float dl = df * s;
            if (dl == 0) continue;
            float dm = dminf * m;
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = (byte)System.Math.Max(0, System.Math.Min(nmax, NearestInt((x[32 * j + i] + dm) / dl)));
        }
    }

    public static void Q4_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> L = stackalloc byte[256];
        FitK32(x, y, L, 15, -1f, 20);
        var q = y.Slice(16, 128);
        for (int j = 0, o = 0; j < 256; j += 64, o += 32)
            for (int l = 0; l < 32; l++) q[o + l] = (byte)(L[j + l] | L[j + l + 32] << 4);
    }

    public static void Q5_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> L = stackalloc byte[256];
        FitK32(x, y, L, 31, -0.5f, 15);
        var qh = y.Slice(16, 32);
        var ql = y.Slice(48, 128);
        qh.Clear();
        byte m1 = 1, m2 = 2;
        for (int n = 0, o = 0; n < 256; n += 64, o += 32)
        {
            for (int j = 0; j < 32; j++)
            {
                int l1 = L[n + j];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                int l2 = L[n + j + 32];
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[o + j] = (byte)(l1 | l2 << 4);
            }
            m1 <<= 2; m2 <<= 2;
        }
    }

    // ---------------------------------------------------------------- Q6_K

    public static void Q6_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        var ql = y[..128];
        var qh = y.Slice(128, 64);
        var sc = y.Slice(192, 16);

        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < 16; ib++)
        {
            float scale = FitSymmetric(16, 32, x.Slice(16 * ib, 16), L.Slice(16 * ib, 16));
            scales[ib] = scale;
            float a = MathF.Abs(scale);
            if (a > maxAbsScale) { maxAbsScale = a; maxScale = scale; }
        }
        if (maxAbsScale < GroupMaxEps)
        {
            y[..210].Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(y[208..], Half(0f));
            return;
        }
        float iscale = -128f / maxScale;
        ushort d = Half(1 / iscale);
        BinaryPrimitives.WriteUInt16LittleEndian(y[208..], d);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (byte)(sbyte)System.Math.Min(127, NearestInt(iscale * scales[ib]));
        float df = (float)BitConverter.UInt16BitsToHalf(d);
        for (int j = 0; j < 16; j++)
        {
            float dl = df * (sbyte)sc[j];
            if (dl == 0) continue;
            for (int i = 0; i < 16; i++)
            {
                int l = System.Math.Max(-32, System.Math.Min(31, NearestInt(x[16 * j + i] / dl)));
                L[16 * j + i] = (sbyte)(l + 32);
            }
        }
        for (int j = 0, lo = 0, ho = 0; j < 256; j += 128, lo += 64, ho += 32)
        {
            for (int l = 0; l < 32; l++)
            {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[lo + l] = (byte)(q1 | q3 << 4);
                ql[lo + l + 32] = (byte)(q2 | q4 << 4);
                qh[ho + l] = (byte)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 | (L[j + l + 64] >> 4) << 4 | (L[j + l + 96] >> 4) << 6);
            }
        }
    }

    // ---------------------------------------------------------------- IQ4_NL / IQ4_XS

    /// <summary>Index of the codebook level nearest to <paramref name="x"/> (ties and near-ties resolved
    /// as ggml does: x − lower &lt; upper − x picks the lower level).</summary>
    private static int BestIndex(ReadOnlySpan<sbyte> val, float x)
    {
        if (x <= val[0]) return 0;
        if (x >= val[15]) return 15;
        int lo = 0, hi = 15;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (x < val[mid]) hi = mid; else lo = mid;
        }
        return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
    }

    /// <summary>quantize_row_iq4_nl_impl with ntry = 7 and no importance weights, over one super-block of
    /// <paramref name="superBlock"/> values (32 for IQ4_NL, 256 for IQ4_XS) in blocks of 32.</summary>
    private static void IQ4Block(int superBlock, ReadOnlySpan<float> x, out ushort dh, Span<byte> q4, out ushort scalesH,
        Span<byte> scalesL)
    {
        const int ntry = 7, blockSize = 32;
        var values = IQ4.Values;
        Span<byte> L = stackalloc byte[256];
        Span<float> weight = stackalloc float[32];
        Span<float> scales = stackalloc float[8];
        int nb = superBlock / blockSize;
        q4[..(superBlock / 2)].Clear();
        dh = Half(0f);
        scalesH = 0;

        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(ib * blockSize, blockSize);
            var Lb = L.Slice(ib * blockSize, blockSize);
            for (int j = 0; j < blockSize; j++) weight[j] = xb[j] * xb[j];
            float max = LargestMagnitude(xb, out float amax);
            if (amax < GroupMaxEps)
            {
                scales[ib] = 0;
                continue;
            }
            float d = -max / values[0];
            float id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < blockSize; j++)
            {
                int l = BestIndex(values, id * xb[j]);
                Lb[j] = (byte)l;
                float q = values[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            d = sumqx / sumq2;
            float best = d * sumqx;
            for (int t = -ntry; t <= ntry; t++)
            {
                id = (t + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < blockSize; j++)
                {
                    int l = BestIndex(values, id * xb[j]);
                    float q = values[l];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
            scales[ib] = d;
            float absD = MathF.Abs(d);
            if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
        }

        if (nb > 1)
        {
            scalesL[..(nb / 2)].Clear();
            float d = -maxScale / 32;
            dh = Half(d);
            float id = d != 0 ? 1 / d : 0f;
            uint sh = 0;
            for (int ib = 0; ib < nb; ib++)
            {
                int l = System.Math.Max(-32, System.Math.Min(31, NearestInt(id * scales[ib])));
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0f;
                var Lb = L.Slice(ib * blockSize, blockSize);
                var xb = x.Slice(ib * blockSize, blockSize);
                for (int j = 0; j < blockSize; j++) Lb[j] = (byte)BestIndex(values, idl * xb[j]);
                l += 32;
                int lLow = l & 0xF, lHigh = (l >> 4) & 0xFF;
                if (ib % 2 == 0) scalesL[ib / 2] = (byte)lLow;
                else scalesL[ib / 2] |= (byte)(lLow << 4);
                sh |= (uint)(lHigh << 2 * (ib % 8));
            }
            scalesH = (ushort)sh;
        }
        else
        {
            dh = Half(scales[0]);
            float id = scales[0] != 0 ? 1 / scales[0] : 0;
            for (int j = 0; j < superBlock; j++) L[j] = (byte)BestIndex(values, id * x[j]);
        }
        for (int i = 0; i < superBlock / 32; i++)
            for (int j = 0; j < 16; j++)
                q4[16 * i + j] = (byte)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
    }

    public static void IQ4_NL(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> unused = stackalloc byte[4];
        IQ4Block(32, x, out ushort d, y.Slice(2, 16), out _, unused);
        BinaryPrimitives.WriteUInt16LittleEndian(y, d);
    }

    public static void IQ4_XS(ReadOnlySpan<float> x, Span<byte> y)
    {
        IQ4Block(256, x, out ushort d, y.Slice(8, 128), out ushort scalesH, y.Slice(4, 4));
        BinaryPrimitives.WriteUInt16LittleEndian(y, d);
        BinaryPrimitives.WriteUInt16LittleEndian(y[2..], scalesH);
    }
}
