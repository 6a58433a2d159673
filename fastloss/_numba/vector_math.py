"""Vectorisable ``exp``, ``log`` and ``log1p`` for float32 and float64.

Numba lowers ``math.exp`` and ``math.log`` to libm calls, which stop LLVM from
vectorising a loop (there is no SVML here).  These versions use only
arithmetic, comparisons and bit casts, so loops calling them vectorise; the
Cephes polynomials keep them within about one ulp of libm.  Every function
computes in its argument's precision and propagates NaN.

Functions
---------
vexp(x)
    ``exp(x)``, including overflow to inf and underflow through subnormals.
vexp_neg(x)
    The same for ``x <= 0`` (or NaN) only, with fewer instructions (no upper
    clamp, a cheaper scaling): the softmax family only ever needs ``exp(x - max)``.
vlog(x)
    ``log(x)`` for any x (``-inf`` at 0, NaN below 0).
vlog1p(z)
    ``log1p(z)`` for ``z >= -1``.
vlog1p_unit(z)
    The same for ``0 <= z <= 1`` (or NaN) only, with less work in float32 (no
    rounding correction, no special cases): BCE with logits needs
    ``log1p(exp(-|x|))``.
maximum(a, b), muladd(a, b, c)
    LLVM's NaN-propagating ``maximum``, and a multiply-add fused where the
    target has FMA, for either dtype.
vexp_normal(x)
    ``vexp_neg`` for float32 ``x`` whose exp is a normal number, cheaper (no
    clamp, no scaling multiply), with the same result.
add_reassoc(a, b), fmax_reducible(a, b), fmin_reducible(a, b)
    An add, max and min that LLVM may reorder, so that a running sum, max or
    min of them vectorises; the flags sit on those instructions alone.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._constants import EXP_FLOAT32_MIN
from .cache import njit

# Per dtype: integer type, mantissa bits, exponent bias.
_LAYOUT = {types.float32: (ir.IntType(32), 23, 127), types.float64: (ir.IntType(64), 52, 1023)}


@intrinsic
def maximum(typingctx, a, b):
    """``max(a, b)``, NaN if either is NaN, ``+0 > -0`` (LLVM ``maximum``).

    Unlike a compare-and-select, it is commutative and associative, so LLVM
    vectorises a reduction of it without fastmath.
    """
    if a not in _LAYOUT or b != a:
        return None

    def codegen(context, builder, sig, args):
        fty = args[0].type
        name = "llvm.maximum.f32" if fty == ir.FloatType() else "llvm.maximum.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(fty, [fty, fty]), name)
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def muladd(typingctx, a, b, c):
    """``a * b + c``: rounded once where the target has a fused multiply-add
    instruction, else a multiply and an add (LLVM ``fmuladd``).

    Fused is what the exp and log polynomials are written for.  A CPU without
    FMA (baseline x86-64, the portable build) would otherwise call libm's
    software ``fma``, which is exact but many times slower and keeps the loop
    scalar; there the separate rounding costs at most an ulp or so, as in
    Cephes' own unfused code.  LLVM never contracts plain ``a * b + c``
    without fastmath, so the choice is made here, once.
    """
    if a not in _LAYOUT or b != a or c != a:
        return None

    def codegen(context, builder, sig, args):
        fty = args[0].type
        name = "llvm.fmuladd.f32" if fty == ir.FloatType() else "llvm.fmuladd.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(fty, [fty] * 3), name)
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def add_reassoc(typingctx, a, b):
    """``a + b`` flagged ``reassoc``, alone of all the arithmetic around it.

    A running sum of these is a reduction LLVM may reorder, so it vectorises
    with its lanes in registers, while the other operations of the loop (an
    exp's rounding steps) keep their order and NaN and inf stay as they are.
    """
    if a not in _LAYOUT or b != a:
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(*args, flags=("reassoc",))

    return a(a, b), codegen


def _reducible_pick(name, op):
    """``b if b <op> a else a`` with ``nnan nsz`` on that compare and select alone.

    With those flags LLVM vectorises a running max (or min) of it as a plain
    vector max (where `maximum` costs five more operations per vector).  For
    a NaN operand the result is left to the hardware; callers use it where a
    NaN reaches every result anyway, or is caught by a sum.
    """
    def pick(typingctx, a, b):
        if a not in _LAYOUT or b != a:
            return None

        def codegen(context, builder, sig, args):
            wins = builder.fcmp_ordered(op, args[1], args[0], flags=("nnan", "nsz"))
            return builder.select(wins, args[1], args[0], flags=("nnan", "nsz"))

        return a(a, b), codegen

    pick.__name__ = pick.__qualname__ = name
    return intrinsic(pick)


fmax_reducible = _reducible_pick("fmax_reducible", ">")
fmin_reducible = _reducible_pick("fmin_reducible", "<")


def _magic_bits(mant, bias):
    # Bit pattern of the rounding constant 1.5 * 2**mant.
    return ((bias + mant) << mant) | (1 << (mant - 1))


@intrinsic
def _ldexp_any(typingctx, p, k):
    """``p * 2**n`` with ``n`` read from ``k = n + 1.5 * 2**mantissa_bits``.

    The scale is applied as two factors so that ``n`` from the subnormal range
    up to overflow rounds correctly; integer ops on a NaN ``k`` are harmless
    because ``p`` is then NaN too.
    """
    if p not in _LAYOUT or k != p:
        return None
    ity, mant, bias = _LAYOUT[p]

    def codegen(context, builder, sig, args):
        fty = args[0].type
        n = builder.sub(builder.bitcast(args[1], ity), ity(_magic_bits(mant, bias)))
        n1 = builder.ashr(n, ity(1))
        n2 = builder.sub(n, n1)
        s1 = builder.bitcast(builder.shl(builder.add(n1, ity(bias)), ity(mant)), fty)
        s2 = builder.bitcast(builder.shl(builder.add(n2, ity(bias)), ity(mant)), fty)
        return builder.fmul(builder.fmul(args[0], s1), s2)

    return p(p, k), codegen


# With x clamped to [lo, 0], n lies in [-159, 0] (float32) or [-1097, 0]
# (float64): 2**(n + offset) is then normal, and the constant 2**-offset
# rounds a subnormal result once.
_NEG_OFFSET = {types.float32: 64, types.float64: 512}


@intrinsic
def _ldexp_neg(typingctx, p, k):
    """As `_ldexp_any` for ``n <= 0``, with one integer add and two multiplies."""
    if p not in _LAYOUT or k != p:
        return None
    ity, mant, bias = _LAYOUT[p]
    off = _NEG_OFFSET[p]

    def codegen(context, builder, sig, args):
        fty = args[0].type
        bits = builder.add(builder.bitcast(args[1], ity), ity(bias + off - _magic_bits(mant, bias)))
        scale = builder.bitcast(builder.shl(bits, ity(mant)), fty)
        unscale = builder.bitcast(ity((bias - off) << mant), fty)
        return builder.fmul(builder.fmul(args[0], scale), unscale)

    return p(p, k), codegen


@intrinsic
def _frexp(typingctx, x):
    """``(m, e)`` with ``x = m * 2**e``, ``m`` in [0.5, 1), for positive normal x."""
    if x not in _LAYOUT:
        return None
    ity, mant, bias = _LAYOUT[x]

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], ity)
        expo = builder.and_(builder.lshr(bits, ity(mant)), ity(2 * bias + 1))
        e = builder.sitofp(builder.sub(expo, ity(bias - 1)), args[0].type)
        m_bits = builder.or_(builder.and_(bits, ity((1 << mant) - 1)), ity((bias - 1) << mant))
        m = builder.bitcast(m_bits, args[0].type)
        return context.make_tuple(builder, sig.return_type, (m, e))

    return types.UniTuple(x, 2)(x), codegen


def _consts(dtype, *values):
    return tuple(dtype(v) for v in values)


# Cephes expf / exp, evaluated with muladd: n = round(x / ln2) by the
# magic-number trick (no float-to-int conversion, undefined for NaN), then
# r = x - n ln2 with ln2 in two parts.  Below lo the result rounds to 0,
# above hi it overflows.  float32: exp(r) = 1 + r + r^2 P(r) with P of degree
# 4, not Cephes' 5 (fitted to the relative error on |r| <= ln2 / 2: 4e-9, far
# below float32's rounding; over 23M x in [-87, 0] the result is within 1.03
# ulp of exp, Cephes' within 1.01).
_E32 = _consts(np.float32, EXP_FLOAT32_MIN, 89.0, 1.44269504088896341, 12582912.0, -0.693359375,
               2.12194440e-4,
               1.3879673788e-3, 8.3687296137e-3, 4.1667226702e-2, 1.6666521132e-1, 4.9999997020e-1, 1.0)
_E64 = _consts(np.float64, -760.0, 710.0, 1.4426950408889634, 6755399441055744.0, -6.93145751953125e-1,
               -1.42860682030941723212e-6,
               1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1,
               3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
               2.00000000000000000009, 1.0)


def _exp_impl(x, ldexp, clamp_hi):
    """Build the exp of one dtype around a scaling intrinsic."""
    if x == types.float32:
        lo, hi, log2e, magic, c1, c2, p0, p1, p2, p3, p4, one = _E32

        def exp32(x):
            # NaN-keeping comparison order: NaN falls through both clamps.
            x = lo if x < lo else x
            if clamp_hi:
                x = hi if x > hi else x
            k = muladd(x, log2e, magic)
            n = k - magic
            r = muladd(n, c2, muladd(n, c1, x))
            p = muladd(muladd(muladd(muladd(p0, r, p1), r, p2), r, p3), r, p4)
            return ldexp(muladd(p, r * r, r) + one, k)

        return exp32
    if x == types.float64:
        lo, hi, log2e, magic, c1, c2, p0, p1, p2, q0, q1, q2, q3, one = _E64

        def exp64(x):
            x = lo if x < lo else x
            if clamp_hi:
                x = hi if x > hi else x
            k = muladd(x, log2e, magic)
            n = k - magic
            r = muladd(n, c2, muladd(n, c1, x))
            rr = r * r
            px = r * muladd(muladd(p0, rr, p1), rr, p2)
            q = muladd(muladd(muladd(q0, rr, q1), rr, q2), rr, q3)
            return ldexp(one + (px + px) / (q - px), k)

        return exp64
    return None


def vexp(x):
    """``exp(x)`` in jitted code (the overload below)."""
    raise NotImplementedError


def vexp_neg(x):
    """``exp(x)`` for ``x <= 0`` in jitted code (the overload below)."""
    raise NotImplementedError


@overload(vexp)
def _vexp(x):
    return _exp_impl(x, _ldexp_any, True)


@intrinsic
def _pow2_neg(typingctx, k):
    """``2**(n + offset)`` with ``n <= 0`` read from k as in `_ldexp_any`."""
    if k not in _LAYOUT:
        return None
    ity, mant, bias = _LAYOUT[k]
    off = _NEG_OFFSET[k]

    def codegen(context, builder, sig, args):
        bits = builder.add(builder.bitcast(args[0], ity), ity(bias + off - _magic_bits(mant, bias)))
        return builder.bitcast(builder.shl(bits, ity(mant)), args[0].type)

    return k(k), codegen


@intrinsic
def _add_exponent(typingctx, y, k):
    """``y * 2**n`` for a normal result, ``n`` read from k as in `_ldexp_any`: n is
    added to y's exponent bits."""
    if y not in _LAYOUT or k != y:
        return None
    ity, mant, bias = _LAYOUT[y]

    def codegen(context, builder, sig, args):
        n = builder.sub(builder.bitcast(args[1], ity), ity(_magic_bits(mant, bias)))
        bits = builder.add(builder.bitcast(args[0], ity), builder.shl(n, ity(mant)))
        return builder.bitcast(bits, args[0].type)

    return y(y, k), codegen


# The float32 exp polynomial scaled by 2**-offset (exact: powers of two).
_E32N = tuple(np.float32(v * 2.0 ** -_NEG_OFFSET[types.float32]) for v in _E32[6:12])


@overload(vexp_neg)
def _vexp_neg(x):
    if x == types.float32:
        lo, log2e, magic, c1, c2 = _E32[0], _E32[2], _E32[3], _E32[4], _E32[5]
        q0, q1, q2, q3, q4, cc = _E32N

        def exp32neg(x):
            # exp(r) = 1 + r (1 + r P(r)), evaluated times 2**-offset with
            # the scaled coefficients, so that one multiply by 2**(n + offset)
            # gives the result, a subnormal one rounded once.
            x = lo if x < lo else x
            k = muladd(x, log2e, magic)
            n = k - magic
            r = muladd(n, c2, muladd(n, c1, x))
            p = muladd(muladd(muladd(muladd(q0, r, q1), r, q2), r, q3), r, q4)
            return muladd(r, muladd(r, p, cc), cc) * _pow2_neg(k)

        return exp32neg
    return _exp_impl(x, _ldexp_neg, False)


def vexp_normal(x):
    """`vexp_neg` for ``NORMAL_EXP_MIN <= x <= 0`` (float32; float64 is `vexp_neg`), where
    exp(x) is a normal number (n >= -125), and exp(x)
    up to x = 88 (within 0.9 ulp on 2M points of [-86.5, 88])."""
    raise NotImplementedError


@overload(vexp_normal)
def _vexp_normal(x):
    if x == types.float32:
        log2e, magic, c1, c2, p0, p1, p2, p3, p4, one = _E32[2:12]

        def exp32normal(x):
            # vexp_neg's steps unscaled, n added to the exponent bits: no clamp
            # and no multiply, and the same result for a normal exp.
            k = muladd(x, log2e, magic)
            n = k - magic
            r = muladd(n, c2, muladd(n, c1, x))
            p = muladd(muladd(muladd(muladd(p0, r, p1), r, p2), r, p3), r, p4)
            return _add_exponent(muladd(r, muladd(r, p, one), one), k)

        return exp32normal
    return lambda x: vexp_neg(x)


# Cephes logf / log (evaluated with muladd): x = m 2^e with m in
# [sqrt(1/2), sqrt(2)), log(m) by a polynomial in m - 1, e ln2 added in two parts.
_L32 = _consts(np.float32, 1.17549435e-38, 33554432.0, 25.0, 0.707106781186547524, 1.0, 0.0, 0.5,
               7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
               -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
               -2.12194440e-4, 0.693359375, np.inf)
_L64 = _consts(np.float64, 2.2250738585072014e-308, 18014398509481984.0, 54.0, 0.70710678118654752440, 1.0,
               0.0, 0.5,
               1.01875663804580931796e-4, 4.97494994976747001425e-1, 4.70579119878881725854,
               1.44989225341610930846e1, 1.79368678507819816313e1, 7.70838733755885391666,
               1.12873587189167450590e1, 4.52279145837532221105e1, 8.29875266912776603211e1,
               7.11544750618563894466e1, 2.31251620126765340583e1,
               -2.121944400546905827679e-4, 0.693359375, np.inf)


def vlog(x):
    """``log(x)`` in jitted code (the overload below)."""
    raise NotImplementedError


@njit(error_model="numpy")
def _log_special(x, y, zero, inf):
    # log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, log(NaN) = NaN.
    y = x if x != x else y
    y = -inf if x == zero else y
    y = inf - inf if x < zero else y
    return inf if x == inf else y


@overload(vlog)
def _vlog(x):
    if x == types.float32:
        (tiny, up, up_e, sqrth, one, zero, half, p0, p1, p2, p3, p4, p5, p6, p7, p8, c2, c1, inf) = _L32

        def log32(x):
            # Subnormals are scaled into the normal range first.
            small = x < tiny
            m, e = _frexp(x * up if small else x)
            e = e - up_e if small else e
            low = m < sqrth
            e = e - one if low else e
            m = (m + m - one) if low else (m - one)
            z = m * m
            p = muladd(muladd(muladd(muladd(muladd(muladd(muladd(muladd(p0, m, p1), m, p2), m, p3), m, p4), m, p5), m, p6), m, p7),
                    m, p8)
            y = muladd(c2, e, p * m * z)
            y = muladd(-half, z, y)
            return _log_special(x, muladd(c1, e, m + y), zero, inf)

        return log32
    if x == types.float64:
        (tiny, up, up_e, sqrth, one, zero, half, p0, p1, p2, p3, p4, p5, q0, q1, q2, q3, q4, c2, c1,
         inf) = _L64

        def log64(x):
            small = x < tiny
            m, e = _frexp(x * up if small else x)
            e = e - up_e if small else e
            low = m < sqrth
            e = e - one if low else e
            m = (m + m - one) if low else (m - one)
            z = m * m
            p = muladd(muladd(muladd(muladd(muladd(p0, m, p1), m, p2), m, p3), m, p4), m, p5)
            q = muladd(muladd(muladd(muladd(m + q0, m, q1), m, q2), m, q3), m, q4)
            y = muladd(c2, e, m * (z * p / q))
            y = muladd(-half, z, y)
            return _log_special(x, muladd(c1, e, m + y), zero, inf)

        return log64
    return None


def vlog1p(z):
    """``log1p(z)`` in jitted code (the overload below)."""
    raise NotImplementedError


@overload(vlog1p)
def _vlog1p(z):
    if z not in (types.float32, types.float64):
        return None
    zero, one = _consts(np.float32 if z == types.float32 else np.float64, 0.0, 1.0)

    def log1p(z):
        # log(u) with u = 1 + z rounded, corrected to first order by the
        # rounding error of u (exact when u == 1: log1p(z) = z).
        u = one + z
        corr = ((u - one) - z) / u
        return vlog(u) - (zero if u == zero else corr)

    return log1p


def vlog1p_unit(z):
    """``log1p(z)`` for ``0 <= z <= 1`` in jitted code (the overload below)."""
    raise NotImplementedError


_SQRT2_MINUS_1 = np.float32(0.41421356237309503)


@overload(vlog1p_unit)
def _vlog1p_unit(z):
    if z == types.float64:
        return lambda z: vlog1p(z)
    if z != types.float32:
        return None
    (_, _, _, _, one, zero, half, p0, p1, p2, p3, p4, p5, p6, p7, p8, c2, c1, _) = _L32
    big_from = _SQRT2_MINUS_1

    def log1p_unit32(z):
        # log1p(z) = k ln2 + log(1 + f): f = z itself (exact, so no rounding
        # correction) up to sqrt(2) - 1, above it f = (1 + z) / 2 - 1 and k = 1;
        # either way f is in logf's polynomial range.
        big = z > big_from
        f = muladd(z, half, -half) if big else z
        k = one if big else zero
        zz = f * f
        p = muladd(muladd(muladd(muladd(muladd(muladd(muladd(muladd(p0, f, p1), f, p2), f, p3), f, p4), f, p5), f, p6), f, p7),
                f, p8)
        y = muladd(c2, k, p * f * zz)
        y = muladd(-half, zz, y)
        return muladd(c1, k, f + y)

    return log1p_unit32
