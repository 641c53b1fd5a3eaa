using System.Runtime.Intrinsics;

namespace MicroLm.Train;

/// <summary>The trainer's matrix product, written so that every output element is one fixed sum:
/// y[t,n] = (((0 + x[t,0]·w[0,n]) + x[t,1]·w[1,n]) + …), k ascending, each product rounded before it is
/// added (no FMA). Vectors run across n — across outputs, never across the sum — so 256-bit, 128-bit and
/// scalar code give the same bits, and threads split the rows t, never a sum.</summary>
internal static class TrainKernels
{
    /// <summary>y[T×N] = x[T×K] · w[K×N] (all row-major, contiguous), rows split over <paramref name="threads"/>.</summary>
    public static void MatMul(float[] x, int xOff, int rows, int k, float[] w, int wOff, int n, float[] y, int yOff, int threads)
    {
        if (threads <= 1 || rows < 2) { Rows(x, xOff, 0, rows, k, w, wOff, n, y, yOff); return; }
        int parts = System.Math.Min(threads, rows);
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, p =>
        {
            int r0 = (int)((long)rows * p / parts), r1 = (int)((long)rows * (p + 1) / parts);
            Rows(x, xOff, r0, r1, k, w, wOff, n, y, yOff);
        });
    }

    private static void Rows(float[] x, int xOff, int r0, int r1, int k, float[] w, int wOff, int n, float[] y, int yOff)
    {
        for (int t = r0; t < r1; t++)
        {
            var xr = new ReadOnlySpan<float>(x, xOff + t * k, k);
            var yr = new Span<float>(y, yOff + t * n, n);
            int j = 0;
            if (Vector256.IsHardwareAccelerated)
                for (; j + 32 <= n; j += 32) Block256(xr, w, wOff + j, n, yr.Slice(j, 32));
            if (Vector128.IsHardwareAccelerated)
                for (; j + 16 <= n; j += 16) Block128(xr, w, wOff + j, n, yr.Slice(j, 16));
            for (; j < n; j++)
            {
                float acc = 0f;
                for (int i = 0, o = wOff + j; i < xr.Length; i++, o += n) acc += xr[i] * w[o];
                yr[j] = acc;
            }
        }
    }

    private static void Block256(ReadOnlySpan<float> x, float[] w, int col, int n, Span<float> y)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        ref float wr = ref w[0];
        for (int i = 0, o = col; i < x.Length; i++, o += n)
        {
            var s = Vector256.Create(x[i]);
            a0 += s * Vector256.LoadUnsafe(ref wr, (nuint)o);
            a1 += s * Vector256.LoadUnsafe(ref wr, (nuint)(o + 8));
            a2 += s * Vector256.LoadUnsafe(ref wr, (nuint)(o + 16));
            a3 += s * Vector256.LoadUnsafe(ref wr, (nuint)(o + 24));
        }
        a0.CopyTo(y); a1.CopyTo(y[8..]); a2.CopyTo(y[16..]); a3.CopyTo(y[24..]);
    }

    private static void Block128(ReadOnlySpan<float> x, float[] w, int col, int n, Span<float> y)
    {
        Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
        ref float wr = ref w[0];
        for (int i = 0, o = col; i < x.Length; i++, o += n)
        {
            var s = Vector128.Create(x[i]);
            a0 += s * Vector128.LoadUnsafe(ref wr, (nuint)o);
            a1 += s * Vector128.LoadUnsafe(ref wr, (nuint)(o + 4));
            a2 += s * Vector128.LoadUnsafe(ref wr, (nuint)(o + 8));
            a3 += s * Vector128.LoadUnsafe(ref wr, (nuint)(o + 12));
        }
        a0.CopyTo(y); a1.CopyTo(y[4..]); a2.CopyTo(y[8..]); a3.CopyTo(y[12..]);
    }

    /// <summary>dst[c×r] = src[r×c]ᵀ.</summary>
    public static void Transpose(float[] src, int srcOff, int r, int c, float[] dst, int dstOff)
    {
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                dst[dstOff + j * r + i] = src[srcOff + i * c + j];
    }

    /// <summary>Runs body(i) for i in [0, count) on up to <paramref name="threads"/> threads; each i is one unit of work
    /// that writes only its own outputs, so the split does not change any result.</summary>
    public static void For(int count, int threads, Action<int> body)
    {
        if (threads <= 1 || count < 2) { for (int i = 0; i < count; i++) body(i); return; }
        int parts = System.Math.Min(threads, count);
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = threads }, p =>
        {
            int i0 = (int)((long)count * p / parts), i1 = (int)((long)count * (p + 1) / parts);
            for (int i = i0; i < i1; i++) body(i);
        });
    }
}
