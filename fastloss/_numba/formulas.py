"""The math of each loss, once: one small function per formula, and the registry of elementwise losses.

The loops (`elementwise`, `cross_entropy`) call these on one element or one
position; each states its formula.  The elementwise ones are inlined into the
driver's loops (``inline="always"``, as are the driver's overloads that call
them): LLVM leaves a call to one with a log, and the loop then stays scalar.
Arithmetic of an elementwise formula is in its argument's dtype: the
constants below are float32 values, which join a float32 operation as they
are and a float64 one exactly.

Elementwise losses
------------------
``ELEMENTWISE`` names every loss the elementwise driver (`elementwise`)
serves, each an `ElementwiseLoss` of three formulas of one element ``x`` with
target ``y``:

``shared(x, y)``
    A term both other formulas need, taken for every element in a pass of its
    own first (which vectorises); None when the loss needs none.
``loss(x, y, shared, pos_weight, has_pos_weight, parameters)``
    The element's loss before its weight.
``gradient(x, y, shared, pos_weight, has_pos_weight, parameters, g)``
    ``g * d loss / d x`` before the weight.

``pos_weight`` is the element's positive-class weight (``has_pos_weight``
False: none was given, and the value is 1); a loss without one ignores both.
``parameters`` is the pair of the loss's scalar options in x's dtype (sigmoid
focal loss: ``(alpha, gamma)``; zeros for a loss without options).  The driver
multiplies each result by the element's weight.
"""
import numpy as np

from .cache import njit
from .vector_math import vexp, vexp_neg, vlog, vlog1p, vlog1p_unit

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
# torch clamps the logs of binary_cross_entropy at -100 and its gradient's
# denominator at EPSILON = 1e-12, a float constant.
_LOG_FLOOR = np.float32(-100.0)
_GRAD_DENOMINATOR_MIN = np.float32(1e-12)


@njit(cache=True, error_model="numpy", inline="always")
def binary_cross_entropy(p, y, shared, pos_weight, has_pos_weight, parameters):
    """``(y - 1) max(log1p(-p), -100) - y max(log(p), -100)``, as torch computes it
    (``log1p(-p)`` rather than ``log(1 - p)``, which loses small p).  No shared
    term, no pos_weight."""
    # NaN-keeping clamps: a NaN log stays NaN.
    lp = vlog(p)
    lp = _LOG_FLOOR if lp < _LOG_FLOOR else lp
    lq = vlog1p(-p)
    lq = _LOG_FLOOR if lq < _LOG_FLOOR else lq
    return (y - _ONE) * lq - y * lp


@njit(cache=True, error_model="numpy", inline="always")
def binary_cross_entropy_gradient(p, y, shared, pos_weight, has_pos_weight, parameters, g):
    """``g (p - y) / max((1 - p) p, 1e-12)``."""
    den = (_ONE - p) * p
    den = _GRAD_DENOMINATOR_MIN if den < _GRAD_DENOMINATOR_MIN else den
    return g * (p - y) / den


@njit(cache=True, error_model="numpy", inline="always")
def exp_minus_abs(x, y):
    """``exp(-|x|)``: the shared term of the binary losses on logits."""
    return vexp_neg(-abs(x))


@njit(cache=True, error_model="numpy", inline="always")
def binary_cross_entropy_with_logits(x, y, e, pos_weight, has_pos_weight, parameters):
    """``(1 - y) x - (1 + (pw - 1) y) log_sigmoid(x)`` with
    ``log_sigmoid(x) = min(x, 0) - log1p(e)``, ``e = exp(-|x|)`` (``pw = 1``
    without pos_weight)."""
    lsig = (x if x < _ZERO else _ZERO) - vlog1p_unit(e)
    if has_pos_weight:
        lsig = ((pos_weight - _ONE) * y + _ONE) * lsig
    return (_ONE - y) * x - lsig


@njit(cache=True, error_model="numpy", inline="always")
def binary_cross_entropy_with_logits_gradient(x, y, e, pos_weight, has_pos_weight, parameters, g):
    """``g ((pw y + 1 - y) sigmoid(x) - pw y)`` with ``sigmoid(x) = (1 or e) / (1 + e)``
    (1 for x >= 0), ``e = exp(-|x|)``; ``g (sigmoid(x) - y)`` without pos_weight."""
    sig = (_ONE if x >= _ZERO else e) / (_ONE + e)
    if has_pos_weight:
        t = pos_weight * y
        d = (t + _ONE - y) * sig - t
    else:
        d = sig - y
    return d * g


@njit(cache=True, error_model="numpy", inline="always")
def focal_modulation(q, gamma):
    """``q ** gamma`` for ``0 <= q <= 1``, ``gamma >= 0``: exact for gamma 0 and 1 (0 ** 0
    and NaN ** 0 are 1, as torch's pow), ``exp(gamma log q)`` else (0 at q = 0).  gamma = 2
    has kernels of its own (`sigmoid_focal_loss_square`): a run-time gamma keeps its loop
    from vectorising as well as a constant one."""
    power = vexp(gamma * vlog(q))  # taken for every gamma: the selects below then vectorise
    return _ONE if gamma == _ZERO else (q if gamma == _ONE else power)


@njit(cache=True, error_model="numpy", inline="always")
def focal_terms(x, y, e, alpha):
    """The terms of the sigmoid focal loss of logit x, target y, ``e = exp(-|x|)``:
    ``(p, ce, q, r, a)`` with ``p = sigmoid(x)``, ``ce`` the BCE with logits,
    ``q = 1 - p_t = y (1 - p) + (1 - y) p`` (both terms from e, so q keeps its digits
    however small), ``r = p (1 - p) / q`` (in [0, 1]; 0 where q is), and the alpha factor
    ``a = alpha y + (1 - alpha) (1 - y)``, 1 for ``alpha < 0``."""
    big = _ONE / (_ONE + e)          # sigmoid(|x|)
    small = e * big                  # sigmoid(-|x|)
    p = big if x >= _ZERO else small
    p_not = small if x >= _ZERO else big
    ce = (_ONE - y) * x - ((x if x < _ZERO else _ZERO) - vlog1p_unit(e))
    q = y * p_not + (_ONE - y) * p
    r = big * small / q if q != _ZERO else _ZERO
    a = alpha * y + (_ONE - alpha) * (_ONE - y) if alpha >= _ZERO else _ONE
    return p, ce, q, r, a


@njit(cache=True, error_model="numpy", inline="always")
def focal_gradient(p, y, ce, r, a, modulation, gamma, g):
    """``g a q**gamma ((p - y) + gamma ce r (1 - 2 y))`` from `focal_terms` and
    ``modulation = q**gamma``: the derivative of ``a ce q**gamma`` with ``dce/dx = p - y``
    and ``dq/dx = p (1 - p) (1 - 2 y) = q r (1 - 2 y)``, written so that no
    ``q ** (gamma - 1)`` appears (finite where q underflows to 0)."""
    return g * a * modulation * ((p - y) + gamma * ce * r * (_ONE - y - y))


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_focal_loss(x, y, e, pos_weight, has_pos_weight, parameters):
    """torchvision's ``a * ce * (1 - p_t) ** gamma`` (see `focal_terms`), ``parameters =
    (alpha, gamma)``; no pos_weight."""
    alpha, gamma = parameters
    _, ce, q, _, a = focal_terms(x, y, e, alpha)
    return a * ce * focal_modulation(q, gamma)


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_focal_loss_gradient(x, y, e, pos_weight, has_pos_weight, parameters, g):
    """`focal_gradient` for ``parameters = (alpha, gamma)``."""
    alpha, gamma = parameters
    p, ce, q, r, a = focal_terms(x, y, e, alpha)
    return focal_gradient(p, y, ce, r, a, focal_modulation(q, gamma), gamma, g)


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_focal_loss_square(x, y, e, pos_weight, has_pos_weight, parameters):
    """`sigmoid_focal_loss` for gamma = 2 (the default): ``a * ce * q * q``; parameters[1]
    is not read."""
    _, ce, q, _, a = focal_terms(x, y, e, parameters[0])
    return a * ce * (q * q)


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_focal_loss_square_gradient(x, y, e, pos_weight, has_pos_weight, parameters, g):
    """`focal_gradient` for gamma = 2."""
    p, ce, q, r, a = focal_terms(x, y, e, parameters[0])
    return focal_gradient(p, y, ce, r, a, q * q, _TWO, g)


@njit(cache=True, error_model="numpy", inline="always")
def target_log(x, y):
    """``log(y)``: the shared term of the KL divergence to probability targets."""
    return vlog(y)


@njit(cache=True, error_model="numpy", inline="always")
def kl_div(x, y, log_y, pos_weight, has_pos_weight, parameters):
    """torch's pointwise KL divergence of log-probability x to probability y,
    ``xlogy(y, y) - y x`` (``0 log 0 = 0``; NaN for y < 0, as torch)."""
    return (_ZERO if y == _ZERO else y * log_y) - y * x


@njit(cache=True, error_model="numpy", inline="always")
def kl_div_gradient(x, y, log_y, pos_weight, has_pos_weight, parameters, g):
    """``-g y``."""
    return -g * y


@njit(cache=True, error_model="numpy", inline="always")
def target_exp(x, y):
    """``exp(y)``: the shared term of the KL divergence to log-probability targets."""
    return vexp(y)


@njit(cache=True, error_model="numpy", inline="always")
def kl_div_log_target(x, y, exp_y, pos_weight, has_pos_weight, parameters):
    """torch's pointwise KL divergence of log-probabilities x to log-probabilities y,
    ``exp(y) (y - x)``."""
    return exp_y * (y - x)


@njit(cache=True, error_model="numpy", inline="always")
def kl_div_log_target_gradient(x, y, exp_y, pos_weight, has_pos_weight, parameters, g):
    """``-g exp(y)``."""
    return -g * exp_y


class ElementwiseLoss:
    """An entry of ``ELEMENTWISE``: the formulas of one elementwise loss (see the module docstring)."""

    def __init__(self, name, loss, gradient, shared=None):
        self.name = name
        self.loss = loss
        self.gradient = gradient
        self.shared = shared


ELEMENTWISE = {spec.name: spec for spec in (
    ElementwiseLoss("binary_cross_entropy", binary_cross_entropy, binary_cross_entropy_gradient),
    ElementwiseLoss("binary_cross_entropy_with_logits", binary_cross_entropy_with_logits,
                    binary_cross_entropy_with_logits_gradient, shared=exp_minus_abs),
    ElementwiseLoss("sigmoid_focal_loss", sigmoid_focal_loss, sigmoid_focal_loss_gradient,
                    shared=exp_minus_abs),
    ElementwiseLoss("sigmoid_focal_loss_square", sigmoid_focal_loss_square, sigmoid_focal_loss_square_gradient,
                    shared=exp_minus_abs),
    ElementwiseLoss("kl_div", kl_div, kl_div_gradient, shared=target_log),
    ElementwiseLoss("kl_div_log_target", kl_div_log_target, kl_div_log_target_gradient,
                    shared=target_exp),
)}


@njit(cache=True, error_model="numpy")
def z_loss_position(lse, z, w, g):
    """The z-loss of one position, ``z w lse**2`` (PaLM's and T5X's auxiliary loss, with the
    position's weight w), and the factor of its softmax in ``g dl/dx``, ``2 z w g lse``;
    ``(0, 0)`` when z == 0, so that an infinite lse adds no NaN to a loss without it."""
    if z == 0.0:
        return 0.0, 0.0
    return z * w * lse * lse, 2.0 * z * w * g * lse


@njit(cache=True, error_model="numpy")
def class_target_position(ls, inv_s, dxt, sm, wt, W, eps, C, g, z, lse):
    """Class-target cross-entropy of one non-ignored position, target t, smoothing ``eps``,
    z-loss ``z``: ``l = (1 - eps) w_t (lse - x_t) + eps / C * sum_j w_j (lse - x_j)`` (just the
    first term when eps == 0), with ``lse - x_j = log(s) + (m - x_j)``, plus the z-loss
    ``z w_t lse**2`` (`z_loss_position`).

    ``ls = log(s)``, ``inv_s = 1 / s`` with ``s = sum_j exp(x_j - m)``, ``dxt = x_t - m``,
    ``sm = sum_j w_j (m - x_j)`` (unused if eps == 0), ``W = sum_j w_j``, ``wt = w_t``,
    ``g`` the position's gradient scale, ``lse = m + log(s)``.  Returns ``(l, a, b, bt)``: the
    gradient ``g dl/dx_j`` is ``a e_j - b w_j``, less ``bt`` at the target, ``e_j = exp(x_j - m)``.
    """
    zl, za = z_loss_position(lse, z, wt, g)
    nll = wt * (ls - dxt)
    if eps == 0.0:
        return nll + zl, (g * wt + za) * inv_s, 0.0, g * wt
    l = (1.0 - eps) * nll + eps / C * (W * ls + sm)
    a = (g * ((1.0 - eps) * wt + eps * W / C) + za) * inv_s
    return l + zl, a, g * eps / C, g * (1.0 - eps) * wt


@njit(cache=True, error_model="numpy")
def ignored_gradient(m, dt):
    """The cross-entropy gradient at an ignored target, from its row's (NaN-propagating) max ``m``.

    torch computes it as ``0 - softmax * 0``: 0, but NaN wherever the softmax is NaN,
    which is where the max is not finite (a NaN or +inf logit, or only -inf logits).
    """
    return dt(0.0) if abs(m) < np.inf else dt(np.nan)


@njit(cache=True, error_model="numpy")
def smoothed_target(y, eps, C):
    """Label smoothing of a probability target: ``y' = (1 - eps) y + eps / C`` in float64;
    exactly ``y`` when ``eps == 0``."""
    if eps == 0.0:
        return np.float64(y)
    return (1.0 - eps) * y + eps / C


@njit(cache=True, error_model="numpy")
def prob_target_class(y, w, eps, C, dx):
    """Class j's terms of the probability-target cross-entropy of one position,
    ``l = sum_j w_j y'_j (lse - x_j) = log(s) sum_j wy_j + sum_j wy_j (m - x_j)``
    with ``wy_j = w_j y'_j`` (`smoothed_target`), ``s = sum_j exp(x_j - m)``:
    ``(wy_j, wy_j dx)`` for ``dx = m - x_j``, in float64."""
    wy = prob_target_weight(y, w, eps, C)
    return wy, wy * dx


@njit(cache=True, error_model="numpy")
def prob_target_weight(y, w, eps, C):
    """``wy_j = w_j y'_j`` (see `prob_target_class`)."""
    return smoothed_target(y, eps, C) * w


@njit(cache=True, error_model="numpy")
def prob_target_loss(ls, swy, sd, z, lse):
    """``l = log(s) swy + sd`` from ``ls = log(s)`` and the sums of `prob_target_class`'s
    terms, ``swy = sum_j wy_j`` and ``sd = sum_j wy_j (m - x_j)``; plus the z-loss
    ``z lse**2`` (`z_loss_position`, weight 1), ``lse = m + log(s)``."""
    return ls * swy + sd + z_loss_position(lse, z, 1.0, 1.0)[0]


@njit(cache=True, error_model="numpy")
def prob_target_scale(s, swy, g, z, lse):
    """``a = (g swy + 2 z g lse) / s``, the factor of ``e_j`` in the position's gradient
    (`prob_target_gradient`; the second term is the z-loss's)."""
    return (g * swy + z_loss_position(lse, z, 1.0, g)[1]) / s


@njit(cache=True, error_model="numpy")
def prob_target_gradient(a, e, g, wy):
    """``g dl/dx_j = a e_j - g wy_j`` with ``a`` from `prob_target_scale`, ``e_j = exp(x_j - m)``."""
    return a * e - g * wy


# ---- Dice loss (`dice`) -----------------------------------------------------
# The activation codes of the dice kernels: the index of the activation in
# ``fastloss._dice.ACTIVATIONS`` (the Cython ``DiceActivation`` enum likewise).
DICE_IDENTITY = 0
DICE_SOFTMAX = 1
DICE_SIGMOID = 2


@njit(cache=True, error_model="numpy", inline="always")
def dice_sigmoid(x):
    """``sigmoid(x) = 1 / (1 + exp(-x))``, as ``(1 or e) / (1 + e)`` with ``e = exp(-|x|)``
    (1 for x >= 0): no overflow for any x, NaN for NaN."""
    e = vexp_neg(-abs(x))
    return (_ONE if x >= _ZERO else e) / (_ONE + e)


@njit(cache=True, error_model="numpy", inline="always")
def dice_sigmoid_gradient(p, q):
    """``q p (1 - p)``: ``q = g dl/dp`` through the sigmoid ``p = sigmoid(x)``, as torch's
    backward takes it."""
    return q * (p * (_ONE - p))


@njit(cache=True, error_model="numpy", inline="always")
def dice_softmax_gradient(p, q, r):
    """``p_c (q_c - r)``: ``q_c = g dl/dp_c`` through the softmax ``p``, with ``r = sum_k p_k q_k``."""
    return p * (q - r)


@njit(cache=True, error_model="numpy", inline="always")
def dice_probability_gradient(a, b, t):
    """``g dl/dp_i = a - b t_i`` of one (sample, class) at position i, target ``t_i``, with
    ``(a, b)`` from `dice_coefficients`."""
    return a - b * t


@njit(cache=True, error_model="numpy")
def dice_value(intersection, predicted, expected, smooth):
    """``1 - (2 I + smooth) / (P + T + smooth)``: the Dice loss of one (sample, class) from
    its float64 sums over the positions, ``I = sum p t``, ``P = sum p``, ``T = sum t``."""
    return 1.0 - (2.0 * intersection + smooth) / (predicted + expected + smooth)


@njit(cache=True, error_model="numpy")
def dice_coefficients(intersection, predicted, expected, smooth, g):
    """``(a, b)`` of `dice_probability_gradient` for ``g`` times the loss of `dice_value`:
    ``a = g (2 I + smooth) / (P + T + smooth)^2``, ``b = 2 g / (P + T + smooth)``."""
    d = predicted + expected + smooth
    return g * (2.0 * intersection + smooth) / (d * d), 2.0 * g / d


# ---- Knowledge distillation (`distillation`) ---------------------------------
# At one position, with s = student / T and t = teacher / T its logits over the
# temperature, shifted by ms and mt: es_j = exp(s_j - ms), et_j = exp(t_j - mt),
# Ss = sum_j es_j and St = sum_j et_j, so that Q_j = es_j / Ss = softmax(s)_j
# and P_j = et_j / St = softmax(t)_j.


@njit(cache=True, error_model="numpy", inline="always")
def distillation_term(et, dt, ds, c, log_ratio):
    """Class j's loss ``T**2 P_j (log P_j - log Q_j)``, as
    ``c et_j ((dt_j - ds_j) + log_ratio)`` with ``dt_j = t_j - mt``, ``ds_j = s_j - ms``
    and ``(c, log_ratio)`` from `distillation_scales`.  As torch's ``exp(lt) (lt - ls)``
    it is NaN where the teacher logit is -inf (``0 * -inf``)."""
    return c * et * ((dt - ds) + log_ratio)


@njit(cache=True, error_model="numpy")
def distillation_scales(temperature, St, Ss):
    """``(c, log_ratio) = (T**2 / St, log(Ss) - log(St))`` of `distillation_term`, in float64."""
    return temperature * temperature / St, np.log(Ss) - np.log(St)


@njit(cache=True, error_model="numpy")
def distillation_gradient_scales(temperature, G, St, Ss):
    """``(a, b) = (T G / Ss, T / St)`` of `distillation_gradient`, where
    ``G = sum_k g_k P_k`` is the position's upstream gradient weighted by P (g itself
    when g is the same for every class, as ``sum_k P_k = 1``)."""
    return temperature / Ss * G, temperature / St  # a = b g where Ss = St and G = g


@njit(cache=True, error_model="numpy", inline="always")
def distillation_gradient(a, es, b, g, et):
    """``g dl/dx_j = T (Q_j G - g_j P_j) = a es_j - b g_j et_j`` at the student logit
    ``x_j = T s_j``, upstream ``g_j``, with ``(a, b)`` from `distillation_gradient_scales`."""
    return a * es - (b * g) * et
