"""The math of each loss at one point, written once.

In the manner of scikit-learn's ``sklearn/_loss/_loss.pyx.tp``: a loss is a
few small inline functions of one point (its value, its gradient), and the
kernels run their blocked, parallel loops around them: ``elementwise.pyx``
for the element-wise losses, ``cross_entropy.pyx`` for the class-axis ones.
Once inlined into a loop the functions vectorise as the loop would; flags
passed as constants (``weighted``, ``smoothing``) fold away there.

Element-wise losses
-------------------
``ElementwiseLoss`` is their registry, one entry per loss;
``elementwise_loss`` / ``elementwise_grad`` give one element's loss and
``g * dl/dx`` for an entry, with x the input, y the target, z = exp(-|x|)
(``logit_exp``, for a loss that ``takes_logits``) and pw the pos_weight.  A
new element-wise loss is its formulas here, an entry in the registry and its
cases in these three functions; in ``elementwise.pyx``, a kernel entry point
that runs its entry and the line of ``_chunk`` that instantiates its loops.
"""
from cython cimport floating

from fastloss._cython._vector_math cimport fexp_neg, flog, flog1p, flog1p_unit


cdef enum ElementwiseLoss:
    BCE              # binary_cross_entropy: y against probabilities p
    BCE_WITH_LOGITS  # binary_cross_entropy_with_logits: y against logits x, pos_weight


# ---- binary cross-entropy on probabilities ---------------------------------

cdef inline floating bce_loss(floating p, floating y) noexcept nogil:
    """-(y log p + (1 - y) log(1 - p)), torch's formula: log1p(-p) for log(1 - p),
    each log clamped at -100 keeping NaN."""
    # Typed constants: Cython writes a bare 1 as the double 1.0, which would
    # lift float math to double and stop the loop vectorising.
    cdef floating one = 1, floor = -100
    cdef floating lp = flog(p), l1p = flog1p(-p)
    lp = floor if lp < floor else lp
    l1p = floor if l1p < floor else l1p
    return (y - one) * l1p - y * lp


cdef inline floating bce_grad(floating p, floating y, floating g) noexcept nogil:
    """g dl/dp = g (p - y) / max((1 - p) p, 1e-12), torch's clamp."""
    cdef floating one = 1
    # torch's EPSILON is a float even for double input.
    cdef floating eps = <floating>(<float>1e-12)
    cdef floating d = (one - p) * p
    d = eps if d < eps else d
    return g * (p - y) / d


# ---- binary cross-entropy on logits ----------------------------------------
# Stable forms, both from z = exp(-|x|): log_sigmoid(x) = min(x, 0) - log1p(z),
# sigmoid(x) = (1 if x >= 0 else z) / (1 + z).  Without pos_weight (weighted
# false) pw is not read.

cdef inline floating logit_exp(floating x) noexcept nogil:
    """z = exp(-|x|)."""
    cdef floating zero = 0
    return fexp_neg(x if x < zero else -x)


cdef inline floating bce_logits_loss(floating x, floating y, floating z, floating pw,
                                     bint weighted) noexcept nogil:
    """(1 - y) x - (1 + (pw - 1) y) log_sigmoid(x)."""
    cdef floating one = 1, zero = 0
    cdef floating ls = (x if x < zero else zero) - flog1p_unit(z)
    if weighted:
        return (one - y) * x - ((pw - one) * y + one) * ls
    return (one - y) * x - ls


cdef inline floating bce_logits_grad(floating x, floating y, floating z, floating pw,
                                     bint weighted, floating g) noexcept nogil:
    """g dl/dx = g ((1 + (pw - 1) y) sigmoid(x) - pw y)."""
    cdef floating one = 1, zero = 0, t
    # One division with a selected numerator: a division per branch would not vectorise.
    cdef floating sig = (one if x >= zero else z) / (one + z)
    if weighted:
        t = pw * y
        return ((t + one - y) * sig - t) * g
    return (sig - y) * g


# ---- the registry's dispatch (constant loss: folds to one formula) ---------

cdef inline bint takes_logits(ElementwiseLoss loss) noexcept nogil:
    """Whether the loss reads z = exp(-|x|) (its own loop: see elementwise.pyx)."""
    return loss == BCE_WITH_LOGITS


cdef inline floating elementwise_loss(ElementwiseLoss loss, floating x, floating y, floating z,
                                      floating pw, bint weighted) noexcept nogil:
    if loss == BCE:
        return bce_loss(x, y)
    return bce_logits_loss(x, y, z, pw, weighted)


cdef inline floating elementwise_grad(ElementwiseLoss loss, floating x, floating y, floating z,
                                      floating pw, bint weighted, floating g) noexcept nogil:
    if loss == BCE:
        return bce_grad(x, y, g)
    return bce_logits_grad(x, y, z, pw, weighted, g)


# ---- cross-entropy of a position with a class target t ---------------------
# With e = exp(x - shift) and s = sum_c e_c (so lse = shift + log s), weight w
# (wt = w_t; W = sum_c w_c, C where there are no weights) and label smoothing
# eps, the gradient is g dl/dx_c = e_c A - D w_c - B [c == t], with
# A = class_grad_scale / s, D = class_grad_smoothing, B = class_grad_target.
# smoothing says eps != 0; a constant False folds the smoothing terms away.

cdef inline double class_loss(double shift, double xt, double logs, double wt, double eps,
                              double W, double C, double sw, bint smoothing) noexcept nogil:
    """wt (lse - x_t); smoothed, (1 - eps) times that plus eps / C sum_c w_c (lse - x_c).

    sw = sum_c w_c (x_c - shift), so that sum_c w_c (lse - x_c) = W log(s) - sw:
    both terms >= 0.
    """
    cdef double loss = wt * ((shift - xt) + logs)
    if not smoothing:
        return loss
    return (1 - eps) * loss + eps / C * (W * logs - sw)


cdef inline double class_grad_scale(double g, double wt, double eps, double W, double C,
                                    bint smoothing) noexcept nogil:
    """A s: the weight of the softmax in g dl/dx."""
    if not smoothing:
        return g * wt
    return g * ((1 - eps) * wt + eps * W / C)


cdef inline double class_grad_smoothing(double g, double eps, double C) noexcept nogil:
    """D: what every class c loses, times w_c, to smoothing."""
    return g * eps / C


cdef inline double class_grad_target(double g, double wt, double eps) noexcept nogil:
    """B: what the target class loses."""
    return g * (1 - eps) * wt


# ---- cross-entropy of a position with a probability target y ---------------
# With y' = (1 - eps) y + eps / C the smoothed target, Q = sum_c w_c y'_c and
# R = sum_c w_c y'_c (shift - x_c), the loss is sum_c w_c y'_c (lse - x_c) and
# g dl/dx_c = e_c A - D w_c y'_c, with A = prob_grad_scale / s and D = g.

cdef inline floating prob_target(floating y, floating wc, floating keep,
                                 floating spread) noexcept nogil:
    """w_c y'_c, y' = y keep + spread (keep = 1 - eps, spread = eps / C)."""
    return wc * (y * keep + spread)


cdef inline double prob_loss(double Q, double R, double logs) noexcept nogil:
    """sum_c w_c y'_c (lse - x_c) = R + Q log(s)."""
    return R + logs * Q


cdef inline double prob_grad_scale(double g, double Q) noexcept nogil:
    """A s: the weight of the softmax in g dl/dx."""
    return g * Q
