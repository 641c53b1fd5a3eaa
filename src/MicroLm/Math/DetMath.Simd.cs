using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using F128 = System.Runtime.Intrinsics.Vector128<float>;
using D128 = System.Runtime.Intrinsics.Vector128<double>;
using L128 = System.Runtime.Intrinsics.Vector128<long>;
using F256 = System.Runtime.Intrinsics.Vector256<float>;
using D256 = System.Runtime.Intrinsics.Vector256<double>;
using L256 = System.Runtime.Intrinsics.Vector256<long>;
using F512 = System.Runtime.Intrinsics.Vector512<float>;
using D512 = System.Runtime.Intrinsics.Vector512<double>;
using L512 = System.Runtime.Intrinsics.Vector512<long>;

namespace MicroLm.Math;

// The span kernels, written once for every vector width. Each lane performs exactly the op sequence of the
// scalar function (float -> double widen, the double kernel, double -> float narrow, explicit NaN/-inf
// selects), so results are bit-identical to the scalar path. The kernels (VectorPaths) are generic over a
// width: a struct whose one-line members are that width's Vector128/256/512 operations (the BCL's own
// ISimdVector and the vectors' operator interfaces are not public in .NET 10). The JIT compiles each width's
// instantiation on its own and inlines those members, so each width runs the instructions it ran when the
// kernels were written out once per width.
internal static partial class DetMath
{
    internal static void ExpShiftedV128Path(ReadOnlySpan<float> x, Span<float> y, double shift) => VectorPaths<Width128, F128, D128, L128>.ExpShifted(x, y, shift);
    internal static void ExpShiftedV256Path(ReadOnlySpan<float> x, Span<float> y, double shift) => VectorPaths<Width256, F256, D256, L256>.ExpShifted(x, y, shift);
    internal static void ExpShiftedV512Path(ReadOnlySpan<float> x, Span<float> y, double shift) => VectorPaths<Width512, F512, D512, L512>.ExpShifted(x, y, shift);
    internal static void ExpV128Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV128Path(x, y, 0.0);
    internal static void ExpV256Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV256Path(x, y, 0.0);
    internal static void ExpV512Path(ReadOnlySpan<float> x, Span<float> y) => ExpShiftedV512Path(x, y, 0.0);
    internal static void SiluV128Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width128, F128, D128, L128>.Silu(x, y);
    internal static void SiluV256Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width256, F256, D256, L256>.Silu(x, y);
    internal static void SiluV512Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width512, F512, D512, L512>.Silu(x, y);
    internal static void GeluTanhV128Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width128, F128, D128, L128>.GeluTanh(x, y);
    internal static void GeluTanhV256Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width256, F256, D256, L256>.GeluTanh(x, y);
    internal static void GeluTanhV512Path(ReadOnlySpan<float> x, Span<float> y) => VectorPaths<Width512, F512, D512, L512>.GeluTanh(x, y);
    internal static float SoftmaxV128Path(Span<float> x) => VectorPaths<Width128, F128, D128, L128>.Softmax(x);
    internal static float SoftmaxV256Path(Span<float> x) => VectorPaths<Width256, F256, D256, L256>.Softmax(x);
    internal static float SoftmaxV512Path(Span<float> x) => VectorPaths<Width512, F512, D512, L512>.Softmax(x);

    /// <summary>The span kernels at one vector width <typeparamref name="W"/>: TF holds its floats, TD and TL
    /// half as many doubles and longs.</summary>
    internal static class VectorPaths<W, TF, TD, TL> where W : struct, IVectorWidth<TF, TD, TL> where TF : unmanaged
    {
        // Each entry point is compiled on its own, fully optimized from the first call: every width operation
        // is then inlined into it. (Tier-0 code would call each one-line width member; and once a caller
        // inlined an entry point, the JIT's inlining budget ran out before TimesGate.)
        private const MethodImplOptions Entry = MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static TD ClampSmall(TD t)
        {
            TD hi = W.Create(SmallExpLimit);
            TD lo = W.Create(-SmallExpLimit);
            t = W.Select(W.GreaterThan(t, hi), hi, t);
            return W.Select(W.LessThan(t, lo), lo, t);
        }

        /// <summary>Lane-wise <see cref="DetMath.ExpCoreSmall"/>, same operations in the same order.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static TD ExpCoreSmall(TD t)
        {
            TD shifter = W.Create(Shifter);
            TD kd = W.Add(W.Mul(t, W.Create(InvLn2)), shifter);
            TL kbits = W.AsInt64(kd);
            kd = W.Sub(kd, shifter);
            TD r = W.Sub(W.Sub(t, W.Mul(kd, W.Create(Ln2Hi))), W.Mul(kd, W.Create(Ln2Lo)));
            TD q = W.Create(E13);
            q = W.Add(W.Mul(q, r), W.Create(E12));
            q = W.Add(W.Mul(q, r), W.Create(E11));
            q = W.Add(W.Mul(q, r), W.Create(E10));
            q = W.Add(W.Mul(q, r), W.Create(E9));
            q = W.Add(W.Mul(q, r), W.Create(E8));
            q = W.Add(W.Mul(q, r), W.Create(E7));
            q = W.Add(W.Mul(q, r), W.Create(E6));
            q = W.Add(W.Mul(q, r), W.Create(E5));
            q = W.Add(W.Mul(q, r), W.Create(E4));
            q = W.Add(W.Mul(q, r), W.Create(E3));
            q = W.Add(W.Mul(q, r), W.Create(E2));
            q = W.Add(W.Mul(q, r), W.Create(E1));
            TD p = W.Add(W.Create(1.0), W.Mul(r, q));
            TD scale = W.AsDouble(W.ShiftLeft(W.Add(W.Sub(kbits, W.Create(ShifterBits)), W.Create(1023L)), 52));
            return W.Mul(p, scale);
        }

        /// <summary>Lane-wise SiLU of doubles: x / (1 + e^(-x)).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static TD SiluCore(TD xd) => W.Div(xd, W.Add(W.Create(1.0), ExpCoreSmall(ClampSmall(W.Neg(xd)))));

        /// <summary>Lane-wise tanh-GELU of doubles: x / (1 + e^(-2c(x + 0.044715x³))).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static TD GeluTanhCore(TD xd)
        {
            TD inner = W.Add(xd, W.Mul(W.Create(GeluCubic), W.Mul(W.Mul(xd, xd), xd)));
            TD e = ExpCoreSmall(ClampSmall(W.Mul(inner, W.Create(-GeluTwoC))));
            return W.Div(xd, W.Add(W.Create(1.0), e));
        }

        [MethodImpl(Entry)]
        internal static void ExpShifted(ReadOnlySpan<float> x, Span<float> y, double shift)
        {
            int n = x.Length;
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            TD s = W.Create(shift);
            TF nan = W.Create(CanonicalNaN);
            int i = 0;
            for (; i <= n - W.Count; i += W.Count)
            {
                TF v = W.Load(ref xr, (nuint)i);
                (TD lo, TD hi) = W.Widen(v);
                lo = ExpCoreSmall(ClampSmall(W.Sub(lo, s)));
                hi = ExpCoreSmall(ClampSmall(W.Sub(hi, s)));
                TF res = W.Narrow(lo, hi);
                res = W.Select(W.Equal(v, v), res, nan);
                W.Store(res, ref yr, (nuint)i);
            }
            for (; i < n; i++)
                y[i] = ExpShiftedScalar(x[i], shift);
        }

        [MethodImpl(Entry)]
        internal static void Silu(ReadOnlySpan<float> x, Span<float> y)
        {
            for (int i = TimesGate(x, y, silu: true); i < x.Length; i++)
                y[i] = DetMath.Silu(x[i]);
        }

        [MethodImpl(Entry)]
        internal static void GeluTanh(ReadOnlySpan<float> x, Span<float> y)
        {
            for (int i = TimesGate(x, y, silu: false); i < x.Length; i++)
                y[i] = DetMath.GeluTanh(x[i]);
        }

        /// <summary>SiLU or tanh-GELU (both x times a logistic gate) of the whole vectors of x into y, with the
        /// scalar functions' special cases (−∞ gives −0, NaN the canonical NaN); returns where the tail begins.
        /// Always inlined, so <paramref name="silu"/> is a constant and each caller keeps one loop body.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int TimesGate(ReadOnlySpan<float> x, Span<float> y, bool silu)
        {
            int n = x.Length;
            ref float xr = ref MemoryMarshal.GetReference(x);
            ref float yr = ref MemoryMarshal.GetReference(y);
            TF nan = W.Create(CanonicalNaN);
            TF negInf = W.Create(float.NegativeInfinity);
            TF negZero = W.Create(-0f);
            int i = 0;
            for (; i <= n - W.Count; i += W.Count)
            {
                TF v = W.Load(ref xr, (nuint)i);
                (TD lo, TD hi) = W.Widen(v);
                TF res = silu ? W.Narrow(SiluCore(lo), SiluCore(hi)) : W.Narrow(GeluTanhCore(lo), GeluTanhCore(hi));
                res = W.Select(W.Equal(v, negInf), negZero, res);
                res = W.Select(W.Equal(v, v), res, nan);
                W.Store(res, ref yr, (nuint)i);
            }
            return i;
        }

        [MethodImpl(Entry)]
        internal static float Softmax(Span<float> x)
        {
            int n = x.Length;
            if (n == 0) return 0f;
            ref float xr = ref MemoryMarshal.GetReference(x);
            int i = 0;

            // 1. max (order-independent) and NaN detection.
            TF mv = W.Create(float.NegativeInfinity);
            TF bad = W.Create(0f);
            for (; i <= n - W.Count; i += W.Count)
            {
                TF v = W.Load(ref xr, (nuint)i);
                mv = W.Select(W.GreaterThan(v, mv), v, mv);
                bad = W.Or(bad, W.Not(W.Equal(v, v)));
            }
            bool nan = W.AnyBitSet(bad);
            float m = float.NegativeInfinity;
            for (int j = 0; j < W.Count; j++)
                if (W.Element(mv, j) > m) m = W.Element(mv, j);
            for (; i < n; i++)
            {
                float v = x[i];
                if (IsNaN(v)) nan = true;
                else if (v > m) m = v;
            }
            if (nan || float.IsInfinity(m))
            {
                x.Fill(CanonicalNaN);
                return CanonicalNaN;
            }

            // 2. e_i = exp(x_i - max) (subtraction in double, exact for all but huge gaps).
            ExpShifted(x, x, m);

            // 3. sum in the project's fixed order: element i into lane i % 16, lanes combined pairwise.
            const int Lanes = 16;
            int a = Lanes / W.Count;
            Span<TF> acc = stackalloc TF[a];
            acc.Clear();
            for (i = 0; i <= n - Lanes; i += Lanes)
                for (int j = 0; j < a; j++)
                    acc[j] = W.Add(acc[j], W.Load(ref xr, (nuint)(i + j * W.Count)));
            Span<float> lanes = stackalloc float[Lanes];
            for (int j = 0; j < a; j++)
                W.CopyTo(acc[j], lanes.Slice(j * W.Count));
            for (; i < n; i++)
                lanes[i & (Lanes - 1)] += x[i];
            float sum = CombineLanes16(lanes);

            // 4. y_i = e_i / sum (correctly rounded division per element).
            TF sv = W.Create(sum);
            for (i = 0; i <= n - W.Count; i += W.Count)
                W.Store(W.Div(W.Load(ref xr, (nuint)i), sv), ref xr, (nuint)i);
            for (; i < n; i++)
                x[i] /= sum;
            return sum;
        }
    }

    /// <summary>One vector width's operations on its float (TF), double (TD) and long (TL) vectors, for
    /// <see cref="VectorPaths{W, TF, TD, TL}"/>; one row per operation, each the BCL call of that width.</summary>
    internal interface IVectorWidth<TF, TD, TL>
    {
        static abstract int Count { get; }
        static abstract TF Create(float value);
        static abstract TD Create(double value);
        static abstract TL Create(long value);
        static abstract TF Load(ref float source, nuint index);
        static abstract void Store(TF value, ref float destination, nuint index);
        static abstract void CopyTo(TF value, Span<float> destination);
        static abstract float Element(TF value, int index);
        static abstract bool AnyBitSet(TF value);
        static abstract TF Equal(TF left, TF right);
        static abstract TF GreaterThan(TF left, TF right);
        static abstract TD GreaterThan(TD left, TD right);
        static abstract TD LessThan(TD left, TD right);
        static abstract TF Select(TF mask, TF left, TF right);
        static abstract TD Select(TD mask, TD left, TD right);
        static abstract TF Or(TF left, TF right);
        static abstract TF Not(TF value);
        static abstract TF Add(TF left, TF right);
        static abstract TF Div(TF left, TF right);
        static abstract TD Add(TD left, TD right);
        static abstract TD Sub(TD left, TD right);
        static abstract TD Mul(TD left, TD right);
        static abstract TD Div(TD left, TD right);
        static abstract TD Neg(TD value);
        static abstract TL Add(TL left, TL right);
        static abstract TL Sub(TL left, TL right);
        static abstract TL ShiftLeft(TL value, int count);
        static abstract (TD Lower, TD Upper) Widen(TF value);
        static abstract TF Narrow(TD lower, TD upper);
        static abstract TL AsInt64(TD value);
        static abstract TD AsDouble(TL value);
    }

    internal readonly struct Width128 : IVectorWidth<F128, D128, L128>
    {
        public static int Count => F128.Count;
        public static F128 Create(float value) => Vector128.Create(value);
        public static D128 Create(double value) => Vector128.Create(value);
        public static L128 Create(long value) => Vector128.Create(value);
        public static F128 Load(ref float source, nuint index) => Vector128.LoadUnsafe(ref source, index);
        public static void Store(F128 value, ref float destination, nuint index) => value.StoreUnsafe(ref destination, index);
        public static void CopyTo(F128 value, Span<float> destination) => value.CopyTo(destination);
        public static float Element(F128 value, int index) => value.GetElement(index);
        public static bool AnyBitSet(F128 value) => value.AsInt32() != Vector128<int>.Zero;
        public static F128 Equal(F128 left, F128 right) => Vector128.Equals(left, right);
        public static F128 GreaterThan(F128 left, F128 right) => Vector128.GreaterThan(left, right);
        public static D128 GreaterThan(D128 left, D128 right) => Vector128.GreaterThan(left, right);
        public static D128 LessThan(D128 left, D128 right) => Vector128.LessThan(left, right);
        public static F128 Select(F128 mask, F128 left, F128 right) => Vector128.ConditionalSelect(mask, left, right);
        public static D128 Select(D128 mask, D128 left, D128 right) => Vector128.ConditionalSelect(mask, left, right);
        public static F128 Or(F128 left, F128 right) => left | right;
        public static F128 Not(F128 value) => ~value;
        public static F128 Add(F128 left, F128 right) => left + right;
        public static F128 Div(F128 left, F128 right) => left / right;
        public static D128 Add(D128 left, D128 right) => left + right;
        public static D128 Sub(D128 left, D128 right) => left - right;
        public static D128 Mul(D128 left, D128 right) => left * right;
        public static D128 Div(D128 left, D128 right) => left / right;
        public static D128 Neg(D128 value) => -value;
        public static L128 Add(L128 left, L128 right) => left + right;
        public static L128 Sub(L128 left, L128 right) => left - right;
        public static L128 ShiftLeft(L128 value, int count) => value << count;
        public static (D128 Lower, D128 Upper) Widen(F128 value) => Vector128.Widen(value);
        public static F128 Narrow(D128 lower, D128 upper) => Vector128.Narrow(lower, upper);
        public static L128 AsInt64(D128 value) => value.AsInt64();
        public static D128 AsDouble(L128 value) => value.AsDouble();
    }

    internal readonly struct Width256 : IVectorWidth<F256, D256, L256>
    {
        public static int Count => F256.Count;
        public static F256 Create(float value) => Vector256.Create(value);
        public static D256 Create(double value) => Vector256.Create(value);
        public static L256 Create(long value) => Vector256.Create(value);
        public static F256 Load(ref float source, nuint index) => Vector256.LoadUnsafe(ref source, index);
        public static void Store(F256 value, ref float destination, nuint index) => value.StoreUnsafe(ref destination, index);
        public static void CopyTo(F256 value, Span<float> destination) => value.CopyTo(destination);
        public static float Element(F256 value, int index) => value.GetElement(index);
        public static bool AnyBitSet(F256 value) => value.AsInt32() != Vector256<int>.Zero;
        public static F256 Equal(F256 left, F256 right) => Vector256.Equals(left, right);
        public static F256 GreaterThan(F256 left, F256 right) => Vector256.GreaterThan(left, right);
        public static D256 GreaterThan(D256 left, D256 right) => Vector256.GreaterThan(left, right);
        public static D256 LessThan(D256 left, D256 right) => Vector256.LessThan(left, right);
        public static F256 Select(F256 mask, F256 left, F256 right) => Vector256.ConditionalSelect(mask, left, right);
        public static D256 Select(D256 mask, D256 left, D256 right) => Vector256.ConditionalSelect(mask, left, right);
        public static F256 Or(F256 left, F256 right) => left | right;
        public static F256 Not(F256 value) => ~value;
        public static F256 Add(F256 left, F256 right) => left + right;
        public static F256 Div(F256 left, F256 right) => left / right;
        public static D256 Add(D256 left, D256 right) => left + right;
        public static D256 Sub(D256 left, D256 right) => left - right;
        public static D256 Mul(D256 left, D256 right) => left * right;
        public static D256 Div(D256 left, D256 right) => left / right;
        public static D256 Neg(D256 value) => -value;
        public static L256 Add(L256 left, L256 right) => left + right;
        public static L256 Sub(L256 left, L256 right) => left - right;
        public static L256 ShiftLeft(L256 value, int count) => value << count;
        public static (D256 Lower, D256 Upper) Widen(F256 value) => Vector256.Widen(value);
        public static F256 Narrow(D256 lower, D256 upper) => Vector256.Narrow(lower, upper);
        public static L256 AsInt64(D256 value) => value.AsInt64();
        public static D256 AsDouble(L256 value) => value.AsDouble();
    }

    internal readonly struct Width512 : IVectorWidth<F512, D512, L512>
    {
        public static int Count => F512.Count;
        public static F512 Create(float value) => Vector512.Create(value);
        public static D512 Create(double value) => Vector512.Create(value);
        public static L512 Create(long value) => Vector512.Create(value);
        public static F512 Load(ref float source, nuint index) => Vector512.LoadUnsafe(ref source, index);
        public static void Store(F512 value, ref float destination, nuint index) => value.StoreUnsafe(ref destination, index);
        public static void CopyTo(F512 value, Span<float> destination) => value.CopyTo(destination);
        public static float Element(F512 value, int index) => value.GetElement(index);
        public static bool AnyBitSet(F512 value) => value.AsInt32() != Vector512<int>.Zero;
        public static F512 Equal(F512 left, F512 right) => Vector512.Equals(left, right);
        public static F512 GreaterThan(F512 left, F512 right) => Vector512.GreaterThan(left, right);
        public static D512 GreaterThan(D512 left, D512 right) => Vector512.GreaterThan(left, right);
        public static D512 LessThan(D512 left, D512 right) => Vector512.LessThan(left, right);
        public static F512 Select(F512 mask, F512 left, F512 right) => Vector512.ConditionalSelect(mask, left, right);
        public static D512 Select(D512 mask, D512 left, D512 right) => Vector512.ConditionalSelect(mask, left, right);
        public static F512 Or(F512 left, F512 right) => left | right;
        public static F512 Not(F512 value) => ~value;
        public static F512 Add(F512 left, F512 right) => left + right;
        public static F512 Div(F512 left, F512 right) => left / right;
        public static D512 Add(D512 left, D512 right) => left + right;
        public static D512 Sub(D512 left, D512 right) => left - right;
        public static D512 Mul(D512 left, D512 right) => left * right;
        public static D512 Div(D512 left, D512 right) => left / right;
        public static D512 Neg(D512 value) => -value;
        public static L512 Add(L512 left, L512 right) => left + right;
        public static L512 Sub(L512 left, L512 right) => left - right;
        public static L512 ShiftLeft(L512 value, int count) => value << count;
        public static (D512 Lower, D512 Upper) Widen(F512 value) => Vector512.Widen(value);
        public static F512 Narrow(D512 lower, D512 upper) => Vector512.Narrow(lower, upper);
        public static L512 AsInt64(D512 value) => value.AsInt64();
        public static D512 AsDouble(L512 value) => value.AsDouble();
    }
}
