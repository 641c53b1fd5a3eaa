#!/usr/bin/env python3
"""Derives every constant and polynomial coefficient used by src/MicroLm/Math.

Run: python3 tools/derive_math_constants.py   (needs mpmath; used only offline)

All coefficients are *Taylor* coefficients (exact rationals 1/n!, 1/(2n+1), ...)
rounded once to the nearest double; the script also prints the truncation error
of each series on its reduced range so the chosen degrees can be checked.
Constants (ln2, pi/2, 2/pi splits) are computed from mpmath at 200 digits.
"""
from fractions import Fraction
from math import factorial
import mpmath as mp

mp.mp.dps = 200

def d(x):
    """Nearest double of an mpf / Fraction, printed round-trip."""
    return repr(float(x)) if isinstance(x, Fraction) else repr(float(mp.mpf(x)))

def trunc_bits(x, bits):
    """x truncated to `bits` significant bits (as an exact double)."""
    x = mp.mpf(x)
    e = int(mp.floor(mp.log(abs(x), 2)))
    scale = mp.mpf(2) ** (bits - 1 - e)
    return mp.floor(x * scale) / scale

print("// ---- exp ----")
ln2 = mp.log(2)
ln2hi = trunc_bits(ln2, 42)          # k*ln2hi exact for |k| < 2^11
ln2lo = ln2 - ln2hi
print("Ln2Hi =", d(ln2hi), " Ln2Lo =", d(ln2lo), " InvLn2 =", d(1 / ln2))
assert mp.mpf(float(ln2hi)) == ln2hi
r = ln2 / 2 * (1 + mp.mpf(2) ** -40)
for deg in (12, 13):
    rem = sum(r ** n / mp.factorial(n) for n in range(deg + 1, deg + 30))
    print(f"exp Taylor deg {deg}: max relative truncation on |r|<=ln2/2 = {mp.nstr(rem / mp.exp(-r), 5)} (2^{mp.nstr(mp.log(rem / mp.exp(-r), 2), 4)})")
print("ExpC (1/n!, n=0..13) =", ", ".join(d(Fraction(1, factorial(n))) for n in range(14)))

print("// ---- log ----")
smax = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
z = smax ** 2
for N in (9, 10):
    rem = sum(z ** n / (2 * n + 1) for n in range(N + 1, N + 40))
    print(f"log atanh series up to z^{N}: relative truncation {mp.nstr(rem, 5)} (2^{mp.nstr(mp.log(rem, 2), 4)})")
print("LogC (2/(2n+1), n=1..10) =", ", ".join(d(Fraction(2, 2 * n + 1)) for n in range(1, 11)))
print("Sqrt2 =", d(mp.sqrt(2)))

print("// ---- sin/cos ----")
pio2 = mp.pi / 2
p1 = trunc_bits(pio2, 33)
p2 = trunc_bits(pio2 - p1, 33)
p3 = pio2 - p1 - p2
print("Pio2_1 =", d(p1), " Pio2_2 =", d(p2), " Pio2_3 =", d(p3))
print("  residual after p3 (rel to pi/2):", mp.nstr((p3 - mp.mpf(float(p3))) / pio2, 5))
print("TwoOverPi =", d(2 / mp.pi), " Pio2Hi =", d(pio2), " Pio2Lo =", d(pio2 - mp.mpf(float(pio2))))
rmax = mp.pi / 4 * (1 + mp.mpf(2) ** -30)
for ns in (8, 9):
    rem = abs(rmax ** (2 * ns + 3) / mp.factorial(2 * ns + 3))
    print(f"sin Taylor through r^{2*ns+1}: rel trunc {mp.nstr(rem / mp.sin(rmax), 5)} (2^{mp.nstr(mp.log(rem / mp.sin(rmax), 2), 4)})")
for nc in (8, 9):
    rem = abs(rmax ** (2 * nc + 2) / mp.factorial(2 * nc + 2))
    print(f"cos Taylor through r^{2*nc}: rel trunc {mp.nstr(rem / mp.cos(rmax), 5)} (2^{mp.nstr(mp.log(rem / mp.cos(rmax), 2), 4)})")
print("SinC ((-1)^n/(2n+1)!, n=1..8) =", ", ".join(d(Fraction((-1) ** n, factorial(2 * n + 1))) for n in range(1, 9)))
print("CosC ((-1)^n/(2n)!, n=1..9) =", ", ".join(d(Fraction((-1) ** n, factorial(2 * n))) for n in range(1, 10)))

print("// ---- erf ----")
def dfact(n):  # (2n+1)!!
    p = 1
    for k in range(1, 2 * n + 2, 2):
        p *= k
    return p
x = mp.mpf(2)
w = 2 * x * x
total = sum(w ** n / dfact(n) for n in range(0, 200))
for N in (30, 32, 34):
    rem = sum(w ** n / dfact(n) for n in range(N + 1, 200))
    print(f"erf series sum_(n<={N}) (2x^2)^n/(2n+1)!! at x=2: rel trunc {mp.nstr(rem / total, 5)} (2^{mp.nstr(mp.log(rem / total, 2), 4)})")
print("ErfC (1/(2n+1)!!, n=0..34) =", ", ".join(d(Fraction(1, dfact(n))) for n in range(35)))
print("TwoOverSqrtPi =", d(2 / mp.sqrt(mp.pi)), " InvSqrtPi =", d(1 / mp.sqrt(mp.pi)))

def erfc_cf_even(x, K, prec=None):
    """erfc(x) = 2x e^{-x^2}/sqrt(pi) / (2x^2+1 - 1*2/(2x^2+5 - 3*4/(2x^2+9 - ...))) evaluated backward, K levels."""
    x = mp.mpf(x)
    t = 2 * x * x
    f = t + 1 + 4 * K
    for k in range(K, 0, -1):
        f = t + 1 + 4 * (k - 1) - (2 * k - 1) * (2 * k) / f
    return 2 * x * mp.exp(-x * x) / mp.sqrt(mp.pi) / f
for lo, K in ((2, 36), (2.5, 26), (3, 20), (4, 14)):
    worst = max(abs(erfc_cf_even(xx, K) / mp.erfc(xx) - 1) for xx in (lo, lo + 0.25, lo + 1, 10))
    print(f"erfc even CF depth {K}: worst rel error on x>={lo} = {mp.nstr(worst, 5)} (2^{mp.nstr(mp.log(worst, 2), 4)})")
for a2max, N in ((0.25, 12), (1, 19), (4, 32)):
    w = 2 * mp.mpf(a2max)
    rem = sum(w ** n / dfact(n) for n in range(N + 1, N + 80))
    print(f"erf series n<={N} for a^2<{a2max}: absolute truncation of the sum 2^{mp.nstr(mp.log(rem, 2), 4)} (sum >= 1)")

def erfc_cf_odd(x, K):
    x = mp.mpf(x)
    f = x
    for k in range(K, 0, -1):
        f = x + (mp.mpf(k) / 2) / f
    return mp.exp(-x * x) / mp.sqrt(mp.pi) / f
for K in (60, 100, 150, 200):
    worst = max(abs(erfc_cf_odd(xx, K) / mp.erfc(xx) - 1) for xx in (2, 3, 5))
    print(f"[test reference] erfc Laplace CF depth {K}: worst rel error on x>=2 = {mp.nstr(worst, 5)}")

print("// ---- gelu ----")
print("GeluTanhTwoC = 2*sqrt(2/pi) =", d(2 * mp.sqrt(2 / mp.pi)), " InvSqrt2 =", d(1 / mp.sqrt(2)))
