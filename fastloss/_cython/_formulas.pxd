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
``g * dl/dx`` for an entry, with x the input, y the target, z the entry's
shared term (``shared_term``: exp(-|x|) for the losses on logits, log y or
exp y for the KL divergences; none for BCE; taken in a loop of its own),
pw the pos_weight and (a, b) the loss's two scalar options (sigmoid focal
loss: alpha, gamma).  A new element-wise loss is its formulas here, an entry
in the registry and its cases in these three functions; in ``elementwise.pyx``,
a kernel entry point that runs its entry and the line of ``_chunk`` that
instantiates its loops.
"""
from cython cimport floating

from fastloss._cython._vector_math cimport fexp, fexp_neg, flog, flog1p, flog1p_unit


cdef enum ElementwiseLoss:
    BCE                 # binary_cross_entropy: y against probabilities p
    BCE_WITH_LOGITS     # binary_cross_entropy_with_logits: y against logits x, pos_weight
    SIGMOID_FOCAL       # sigmoid_focal_loss: y against logits x, alpha, gamma
    KL_DIV              # kl_div: probabilities y against log-probabilities x
    KL_DIV_LOG_TARGET   # kl_div, log_target=True: log-probabilities y against x


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


# ---- sigmoid focal loss (torchvision's) -------------------------------------
# With z = exp(-|x|), p = sigmoid(x): q = 1 - p_t = y (1 - p) + (1 - y) p from
# sigmoid(|x|) and sigmoid(-|x|) (so q keeps its digits however small), ce the
# BCE with logits and a_t = alpha y + (1 - alpha)(1 - y) (1 for alpha < 0):
# l = a_t ce q**gamma.

cdef inline floating focal_modulation(floating q, floating gamma) noexcept nogil:
    """q**gamma for 0 <= q <= 1, gamma >= 0: exact products for gamma 0, 1 and 2
    (0**0 and NaN**0 are 1, as torch's pow), exp(gamma log q) else."""
    cdef floating zero = 0, one = 1, two = 2
    if gamma == two:
        return q * q
    if gamma == one:
        return q
    if gamma == zero:
        return one
    return fexp(gamma * flog(q))


cdef inline floating focal_alpha(floating y, floating alpha) noexcept nogil:
    """a_t = alpha y + (1 - alpha)(1 - y), 1 for alpha < 0."""
    cdef floating zero = 0, one = 1
    return alpha * y + (one - alpha) * (one - y) if alpha >= zero else one


cdef inline floating focal_complement(floating x, floating y, floating z) noexcept nogil:
    """q = y sigmoid(-x) + (1 - y) sigmoid(x)."""
    cdef floating zero = 0, one = 1
    cdef floating big = one / (one + z), small = z / (one + z)
    return y * (small if x >= zero else big) + (one - y) * (big if x >= zero else small)


cdef inline floating focal_loss(floating x, floating y, floating z, floating alpha,
                                floating gamma) noexcept nogil:
    """a_t ce q**gamma."""
    return (focal_alpha(y, alpha) * bce_logits_loss(x, y, z, 1, False)
            * focal_modulation(focal_complement(x, y, z), gamma))


cdef inline floating focal_grad(floating x, floating y, floating z, floating alpha,
                                floating gamma, floating g) noexcept nogil:
    """g a_t q**gamma ((p - y) + gamma ce r (1 - 2 y)), r = p (1 - p) / q in [0, 1] (0 where
    q is): the derivative with dq/dx = q r (1 - 2 y), free of q**(gamma - 1)."""
    cdef floating zero = 0, one = 1
    cdef floating q = focal_complement(x, y, z)
    cdef floating r = z / ((one + z) * (one + z) * q) if q != zero else zero
    cdef floating ce = bce_logits_loss(x, y, z, 1, False)
    return (g * focal_alpha(y, alpha) * focal_modulation(q, gamma)
            * (bce_logits_grad(x, y, z, 1, False, 1) + gamma * ce * r * (one - y - y)))


# ---- KL divergence (torch's kl_div, pointwise) -----------------------------
# x = log q; with probability targets z = log y, with log-probability targets z = exp(y).

cdef inline floating kl_loss(floating x, floating y, floating log_y) noexcept nogil:
    """xlogy(y, y) - y x (0 log 0 = 0; NaN for y < 0, as torch)."""
    cdef floating zero = 0
    return (zero if y == zero else y * log_y) - y * x


cdef inline floating kl_log_target_loss(floating x, floating y, floating exp_y) noexcept nogil:
    """exp(y) (y - x)."""
    return exp_y * (y - x)


# ---- the registry's dispatch (constant loss: folds to one formula) ---------

cdef inline floating shared_term(ElementwiseLoss loss, floating x, floating y) noexcept nogil:
    """z: exp(-|x|) for the losses on logits, log y or exp y for the KL divergences."""
    cdef floating zero = 0
    if loss == KL_DIV:
        return flog(y)
    if loss == KL_DIV_LOG_TARGET:
        return fexp(y)
    return fexp_neg(x if x < zero else -x)


cdef inline floating elementwise_loss(ElementwiseLoss loss, floating x, floating y, floating z,
                                      floating pw, bint weighted, floating a,
                                      floating b) noexcept nogil:
    if loss == BCE:
        return bce_loss(x, y)
    if loss == SIGMOID_FOCAL:
        return focal_loss(x, y, z, a, b)
    if loss == KL_DIV:
        return kl_loss(x, y, z)
    if loss == KL_DIV_LOG_TARGET:
        return kl_log_target_loss(x, y, z)
    return bce_logits_loss(x, y, z, pw, weighted)


cdef inline floating elementwise_grad(ElementwiseLoss loss, floating x, floating y, floating z,
                                      floating pw, bint weighted, floating a, floating b,
                                      floating g) noexcept nogil:
    if loss == BCE:
        return bce_grad(x, y, g)
    if loss == SIGMOID_FOCAL:
        return focal_grad(x, y, z, a, b, g)
    if loss == KL_DIV:
        return -g * y       # d/dx of -y x
    if loss == KL_DIV_LOG_TARGET:
        return -g * z       # -g exp(y)
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


# ---- the z-loss of a position (cross_entropy's z_loss) ---------------------
# z w lse**2 for a position of weight w (w_t for a class target, 1 for
# probability targets): it adds 2 z w g lse to A s.  Both are 0 when z == 0,
# so an infinite lse adds no NaN to a loss without it.

cdef inline double z_loss_term(double lse, double z, double w) noexcept nogil:
    """z w lse**2."""
    return z * w * lse * lse if z != 0 else 0.0


cdef inline double z_loss_grad_scale(double lse, double z, double w, double g) noexcept nogil:
    """2 z w g lse: the z-loss's part of A s, the weight of the softmax in g dl/dx."""
    return 2 * z * w * g * lse if z != 0 else 0.0


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


# ---- Dice loss (dice.pyx) ---------------------------------------------------
# Per sample and class, from the float64 sums over its positions I = sum p t,
# P = sum p, T = sum t: the loss, and g dl/dp_i = a - b t_i (dice_coefficients).

cdef enum DiceActivation:
    # The index of the activation in fastloss._dice.ACTIVATIONS.
    DICE_IDENTITY
    DICE_SOFTMAX
    DICE_SIGMOID


cdef inline floating dice_sigmoid(floating x) noexcept nogil:
    """sigmoid(x) = 1 / (1 + exp(-x)) as (1 or z) / (1 + z), z = exp(-|x|) (1 for x >= 0)."""
    cdef floating one = 1, zero = 0
    cdef floating z = fexp_neg(x if x < zero else -x)
    return (one if x >= zero else z) / (one + z)


cdef inline floating dice_sigmoid_grad(floating p, floating q) noexcept nogil:
    """q p (1 - p): q = g dl/dp through the sigmoid p = sigmoid(x), as torch's backward takes it."""
    cdef floating one = 1
    return q * (p * (one - p))


cdef inline floating dice_softmax_grad(floating p, floating q, floating r) noexcept nogil:
    """p_c (q_c - r): q_c = g dl/dp_c through the softmax p, r = sum_k p_k q_k."""
    return p * (q - r)


cdef inline floating dice_probability_grad(floating a, floating b, floating t) noexcept nogil:
    """g dl/dp_i = a - b t_i at a position i with target t_i."""
    return a - b * t


cdef inline double dice_value(double I, double P, double T, double smooth) noexcept nogil:
    """1 - (2 I + smooth) / (P + T + smooth)."""
    return 1 - (2 * I + smooth) / (P + T + smooth)


cdef inline void dice_coefficients(double I, double P, double T, double smooth, double g,
                                   double* a, double* b) noexcept nogil:
    """a = g (2 I + smooth) / (P + T + smooth)^2, b = 2 g / (P + T + smooth): g times the
    loss of dice_value has g dl/dp_i = a - b t_i."""
    cdef double d = P + T + smooth
    a[0] = g * (2 * I + smooth) / (d * d)
    b[0] = 2 * g / d


# ---- knowledge distillation (distillation.pyx) -------------------------------
# At one position, with s = student / T and t = teacher / T its logits over the
# temperature, shifted by ms and mt: es_c = exp(s_c - ms), et_c = exp(t_c - mt),
# Ss = sum_c es_c and St = sum_c et_c, so that Q_c = es_c / Ss = softmax(s)_c
# and P_c = et_c / St = softmax(t)_c.

from libc.math cimport log


cdef inline floating distillation_term(floating et, floating dt, floating ds, floating c,
                                       floating log_ratio) noexcept nogil:
    """Class c's loss T**2 P_c (log P_c - log Q_c), as c et_c ((dt_c - ds_c) + log_ratio)
    with dt_c = t_c - mt, ds_c = s_c - ms and (c, log_ratio) from distillation_scales.
    As torch's exp(lt) (lt - ls) it is NaN where the teacher logit is -inf (0 * -inf)."""
    return c * et * ((dt - ds) + log_ratio)


cdef inline void distillation_scales(double temperature, double St, double Ss, double* c,
                                     double* log_ratio) noexcept nogil:
    """c = T**2 / St and log_ratio = log(Ss) - log(St), of distillation_term."""
    c[0] = temperature * temperature / St
    log_ratio[0] = log(Ss) - log(St)


cdef inline void distillation_gradient_scales(double temperature, double G, double St, double Ss,
                                              double* a, double* b) noexcept nogil:
    """a = T G / Ss and b = T / St, of distillation_gradient, where G = sum_k g_k P_k is the
    position's upstream gradient weighted by P (g itself when g is the same for every
    class, as sum_k P_k = 1)."""
    a[0] = temperature / Ss * G  # a = b g where Ss = St and G = g
    b[0] = temperature / St


cdef inline floating distillation_gradient(floating a, floating es, floating b, floating g,
                                           floating et) noexcept nogil:
    """g dl/dx_c = T (Q_c G - g_c P_c) = a es_c - b g_c et_c at the student logit
    x_c = T s_c, upstream g_c, with (a, b) from distillation_gradient_scales."""
    return a * es - (b * g) * et
