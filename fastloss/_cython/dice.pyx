"""Soft Dice loss of segmentation (MONAI's DiceLoss): per-(sample, class) losses and the gradient.

dice_class / dice_prob take x as (outer, C, inner) with its `samples` samples
along outer (sample n is outer rows [n * outer / samples, (n + 1) * outer /
samples)), class-index targets (outer, inner) or per-class targets (outer, C,
inner), p = activation(x) (a DiceActivation of _formulas.pxd).  Pass 1 takes
the float64 sums I = sum p t, P = sum p, T = sum t of every block of positions
(rows when inner == 1, tiles when inner > 1, each within one sample, bounds
fixed by the shape); a sample's blocks are added in block order, so nothing
depends on the thread count.  The loss of (n, c) is w_c dice_value(I, P, T);
pass 2 (only with grad_out) recomputes p and writes g dl/dx from the
coefficients a, b of dice_coefficients.  A block reads all its x before
writing its gradient, so grad_out may be x.  The formulas are those of
_formulas.pxd, written once for rows and tiles.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdint cimport int32_t, int64_t

from fastloss._cython._arguments cimport check_shape, n_items
from fastloss._cython._blocking cimport (
    check_scratch, free_scratch, n_chunks, rows_per_block, thread_scratch, tile_width,
)
from fastloss._cython._constants cimport BLOCK_ELEMS, TILE_EXP_GROUP
from fastloss._cython._formulas cimport (
    DICE_SIGMOID, DICE_SOFTMAX, dice_coefficients, dice_probability_grad, dice_sigmoid,
    dice_sigmoid_grad, dice_softmax_grad, dice_value,
)
from fastloss._cython._machine cimport fl_stream_fence, stream_into, stream_result
from fastloss._cython._row_loops cimport exp_shift_first, lane_sum, row_dot
from fastloss._cython._tile_loops cimport fl_tile_exp_first_f32, tile_exp_sum, tile_max

# The sums of a block or sample, each a row of C: I = sum p t, P = sum p, T = sum t.
cdef enum:
    N_SUMS = 3


def dice_class(const floating[:, :, ::1] x, const int64_t[:, ::1] target,
               const floating[::1] weight, int activation, double smooth, Py_ssize_t samples,
               double grad_scale, const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
               floating[:, :, ::1] grad_out):
    """Dice loss of class-index targets; returns the float64 sum of the (sample, class) losses."""
    cdef Py_ssize_t pos_shape[2]
    pos_shape[0] = x.shape[0]
    pos_shape[1] = x.shape[2]
    check_shape("target", target.shape, pos_shape, 2, False)
    return _run(x, &target[0, 0] if n_items(target.shape, 2) else NULL, x, weight, activation,
                smooth, samples, grad_scale, grad_output, loss_out, grad_out, False)


def dice_prob(const floating[:, :, ::1] x, const floating[:, :, ::1] target,
              const floating[::1] weight, int activation, double smooth, Py_ssize_t samples,
              double grad_scale, const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
              floating[:, :, ::1] grad_out):
    """Dice loss of per-class targets (x's shape); returns the float64 sum of the losses."""
    check_shape("target", target.shape, x.shape, 3, False)
    return _run(x, NULL, target, weight, activation, smooth, samples, grad_scale, grad_output,
                loss_out, grad_out, True)


cdef double _run(const floating[:, :, ::1] x, const int64_t* tg, const floating[:, :, ::1] y,
                 const floating[::1] weight, int activation, double smooth, Py_ssize_t samples,
                 double gscale, const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
                 floating[:, :, ::1] grad_out, bint prob) except? -1:
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t loss_shape[2]
    loss_shape[0] = samples
    loss_shape[1] = C
    check_shape("weight", weight.shape, &x.shape[1], 1, True)
    check_shape("grad_output", grad_output.shape, loss_shape, 2, True)
    check_shape("loss_out", loss_out.shape, loss_shape, 2, True)
    check_shape("grad_out", grad_out.shape, x.shape, 3, True)
    if samples * C == 0:
        return 0.0
    if outer % samples:
        raise ValueError(f"{samples} samples do not split {outer} outer rows")

    cdef const floating* xp = &x[0, 0, 0] if outer * inner else NULL
    cdef const floating* yp = &y[0, 0, 0] if prob and outer * inner else NULL
    cdef const floating* w = &weight[0] if weight.shape[0] else NULL
    cdef const floating* go = &grad_output[0, 0] if n_items(grad_output.shape, 2) else NULL
    cdef floating* lo = &loss_out[0, 0] if n_items(loss_out.shape, 2) else NULL
    cdef floating* gr = &grad_out[0, 0, 0] if n_items(grad_out.shape, 3) else NULL
    cdef Py_ssize_t per_sample = outer // samples
    # Rows: blocks of bs rows cut each sample; tiles: bs positions of one outer row.
    cdef Py_ssize_t bs = rows_per_block(C) if inner == 1 else tile_width(C, inner, sizeof(floating))
    # No positions (bs is then 0 for tiles), no blocks: every sum is 0.
    cdef Py_ssize_t blocks_per_sample = (0 if outer * inner == 0 else n_chunks(per_sample, bs) if inner == 1
                                         else per_sample * n_chunks(inner, bs))
    cdef Py_ssize_t n_blocks = samples * blocks_per_sample
    cdef double[:, :, ::1] partials = np.zeros((max(n_blocks, 1), N_SUMS, C))
    cdef double[:, :, ::1] sums = np.zeros((samples, N_SUMS, C))
    # The gradient coefficients a and b of every (sample, class) (or of none, without a gradient).
    cdef Py_ssize_t n_coefficients = samples if gr != NULL else 0
    cdef floating[:, :, ::1] coefficients = np.empty((2, n_coefficients, C),
                                                     np.float32 if floating is float else np.float64)
    cdef Py_ssize_t b, n, c
    cdef double total = 0, loss, g, wc, a_nc, b_nc

    if n_blocks:
        _blocks(xp, tg, yp, activation, &partials[0, 0, 0], NULL, NULL, NULL, outer, C, inner,
                per_sample, bs, n_blocks, prob, False)
    # A sample's blocks are consecutive: added in block order.
    for b in range(n_blocks):
        for c in range(N_SUMS * C):
            (&sums[0, 0, 0])[(b // blocks_per_sample) * N_SUMS * C + c] += (&partials[0, 0, 0])[b * N_SUMS * C + c]
    for n in range(samples):
        for c in range(C):
            wc = w[c] if w != NULL else 1.0
            loss = wc * dice_value(sums[n, 0, c], sums[n, 1, c], sums[n, 2, c], smooth)
            total += loss
            if lo != NULL:
                lo[n * C + c] = <floating>loss
            if gr != NULL:
                g = wc * (gscale * go[n * C + c] if go != NULL else gscale)
                dice_coefficients(sums[n, 0, c], sums[n, 1, c], sums[n, 2, c], smooth, g, &a_nc, &b_nc)
                coefficients[0, n, c] = <floating>a_nc
                coefficients[1, n, c] = <floating>b_nc
    if gr != NULL and n_blocks:
        _blocks(xp, tg, yp, activation, NULL, &coefficients[0, 0, 0], &coefficients[1, 0, 0], gr,
                outer, C, inner, per_sample, bs, n_blocks, prob,
                stream_result(outer * C * inner * sizeof(floating)))
    return total


cdef int _blocks(const floating* xp, const int64_t* tg, const floating* yp, int activation,
                 double* part, const floating* ca, const floating* cb, floating* gr,
                 Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner, Py_ssize_t per_sample,
                 Py_ssize_t bs, Py_ssize_t n_blocks, bint prob, bint stream) except -1:
    """Pass 1 (part: the blocks' sums) or pass 2 (gr, from the coefficient rows ca, cb of
    every sample) over every block, in parallel."""
    cdef Py_ssize_t b, o, i0, r0, n, plane = C * inner
    cdef Py_ssize_t n_tiles = n_chunks(inner, bs)
    cdef Py_ssize_t row_blocks = n_chunks(per_sample, bs)
    cdef char failed = 0
    cdef bint threaded = n_blocks > 1 and outer * plane > BLOCK_ELEMS
    # NULL-initialised: Cython makes it firstprivate.
    cdef double* s = NULL
    if inner == 1:
        with nogil, parallel(use_threads_if=threaded):
            s = <double*>thread_scratch(2 * C * sizeof(floating), &failed)
            for b in prange(n_blocks, schedule="static"):
                if s != NULL:
                    n = b // row_blocks
                    r0 = n * per_sample + (b % row_blocks) * bs
                    _row_block(xp, tg, yp, activation, part, ca, cb, gr, C, n, r0,
                               min(r0 + bs, (n + 1) * per_sample), b, prob, <floating*>s)
            free_scratch(s)
    else:
        with nogil, parallel(use_threads_if=threaded):
            s = <double*>thread_scratch(bs * (sizeof(double) + sizeof(int32_t)
                                              + (C + 4) * sizeof(floating)), &failed)
            for b in prange(n_blocks, schedule="static"):
                if s != NULL:
                    o = b // n_tiles
                    i0 = (b % n_tiles) * bs
                    _tile_block(xp + o * plane + i0, tg + o * inner + i0 if not prob else NULL,
                                yp + o * plane + i0 if prob else NULL, activation, part, ca, cb,
                                gr + o * plane + i0 if gr != NULL else NULL, inner, C,
                                o // per_sample, b, bs, min(bs, inner - i0), prob, stream, s)
            if stream:
                fl_stream_fence()
            free_scratch(s)
    check_scratch(failed)
    return 0


# ---- rows: inner == 1 -------------------------------------------------------

cdef void _row_probabilities(const floating* x, int activation, floating* p,
                             Py_ssize_t C) noexcept nogil:
    """p = activation(x) over a row of C classes."""
    cdef Py_ssize_t j
    cdef floating m, inverse
    if activation == DICE_SOFTMAX:
        inverse = <floating>(1.0 / exp_shift_first(x, p, C, &m, NULL))
        for j in range(C):
            p[j] = p[j] * inverse
    elif activation == DICE_SIGMOID:
        for j in range(C):
            p[j] = dice_sigmoid(x[j])
    else:
        for j in range(C):
            p[j] = x[j]


cdef const floating* _row_targets(const int64_t* tg, const floating* y, Py_ssize_t r, bint prob,
                                  floating* onehot, Py_ssize_t C) noexcept nogil:
    """Row r's targets over its classes: y's row, or the one-hot row of class tg[r] in onehot."""
    cdef Py_ssize_t j
    if prob:
        return y + r * C
    for j in range(C):
        onehot[j] = 0
    onehot[tg[r]] = 1
    return onehot


cdef void _row_block(const floating* x, const int64_t* tg, const floating* y, int activation,
                     double* part, const floating* ca, const floating* cb, floating* gr,
                     Py_ssize_t C, Py_ssize_t sample, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t b,
                     bint prob, floating* scratch) noexcept nogil:
    """Rows [r0, r1) of one sample: their sums into block b of part (pass 1), or their
    gradient into gr (pass 2).  scratch: two rows of C."""
    cdef floating* p = scratch
    cdef const floating* t
    cdef const floating* a = ca + sample * C if ca != NULL else NULL
    cdef const floating* bb = cb + sample * C if cb != NULL else NULL
    cdef double* sums = part + b * N_SUMS * C if part != NULL else NULL
    cdef double r
    cdef floating rf
    cdef floating* g
    cdef Py_ssize_t row, j
    for row in range(r0, r1):
        _row_probabilities(x + row * C, activation, p, C)
        t = _row_targets(tg, y, row, prob, scratch + C, C)
        if sums != NULL:
            for j in range(C):
                sums[j] += <double>p[j] * t[j]
                sums[C + j] += p[j]
                sums[2 * C + j] += t[j]
            continue
        g = gr + row * C
        if activation == DICE_SOFTMAX:
            r = 0
            for j in range(C):
                r += p[j] * dice_probability_grad(a[j], bb[j], t[j])
            rf = <floating>r
            for j in range(C):
                g[j] = dice_softmax_grad(p[j], dice_probability_grad(a[j], bb[j], t[j]), rf)
        elif activation == DICE_SIGMOID:
            for j in range(C):
                g[j] = dice_sigmoid_grad(p[j], dice_probability_grad(a[j], bb[j], t[j]))
        else:
            for j in range(C):
                g[j] = dice_probability_grad(a[j], bb[j], t[j])


# ---- tiles: inner > 1 -------------------------------------------------------

cdef void _tile_probabilities(const floating* x, Py_ssize_t inner, Py_ssize_t C, Py_ssize_t T,
                              int activation, floating* p, floating* m, floating* f,
                              double* s) noexcept nogil:
    """p[c * T + k] = activation(x)[c * inner + k], packed; m, f, s scratch of T."""
    cdef Py_ssize_t c, k
    cdef floating* pc
    cdef const floating* xc
    cdef bint first_served = False
    if activation == DICE_SOFTMAX:
        # Shifted by the first class where that serves (one pass), else by the max.
        if floating is float:
            first_served = fl_tile_exp_first_f32(x, inner, C, T, TILE_EXP_GROUP, p, f, s)
        if not first_served:
            tile_max(x, inner, C, T, m)
            tile_exp_sum(x, inner, C, T, m, p, f, s)
        for k in range(T):
            m[k] = <floating>(1.0 / s[k])
        for c in range(C):
            pc = p + c * T
            for k in range(T):
                pc[k] = pc[k] * m[k]
        return
    for c in range(C):
        pc = p + c * T
        xc = x + c * inner
        if activation == DICE_SIGMOID:
            for k in range(T):
                pc[k] = dice_sigmoid(xc[k])
        else:
            for k in range(T):
                pc[k] = xc[k]


cdef const floating* _tile_targets(const int32_t* tc, const floating* y, Py_ssize_t c,
                                   Py_ssize_t inner, Py_ssize_t T, bint prob,
                                   floating* onehot) noexcept nogil:
    """Class c's targets over the tile: y's class row, or 1 where the class index is c."""
    cdef Py_ssize_t k
    cdef int32_t c32 = <int32_t>c
    cdef floating one = 1, zero = 0
    if prob:
        return y + c * inner
    for k in range(T):
        onehot[k] = one if tc[k] == c32 else zero
    return onehot


cdef void _tile_block(const floating* x, const int64_t* tg, const floating* y, int activation,
                      double* part, const floating* ca, const floating* cb, floating* gr,
                      Py_ssize_t inner, Py_ssize_t C, Py_ssize_t sample, Py_ssize_t b,
                      Py_ssize_t Tmax, Py_ssize_t T, bint prob, bint stream,
                      double* scratch) noexcept nogil:
    """T <= Tmax positions of one sample (pointers at the tile's first): their sums into
    block b of part (pass 1), or their gradient into gr (pass 2).

    scratch: the float64 exp sums, then floating rows of Tmax (shift, float32 exp
    sums, a target row, the softmax's r), the packed (C, T) activations, and the
    class indices as int32 (an int64 compare would halve the vector width).
    """
    cdef double* s = scratch
    cdef floating* m = <floating*>(s + Tmax)
    cdef floating* f = m + Tmax
    cdef floating* onehot = f + Tmax
    cdef floating* r = onehot + Tmax
    cdef floating* p = r + Tmax
    cdef int32_t* tc = <int32_t*>(p + C * Tmax)
    cdef const floating* a = ca + sample * C if ca != NULL else NULL
    cdef const floating* bb = cb + sample * C if cb != NULL else NULL
    cdef double* sums = part + b * N_SUMS * C if part != NULL else NULL
    cdef const floating* t
    cdef floating* pc
    cdef floating ac, bc
    cdef Py_ssize_t c, k

    _tile_probabilities(x, inner, C, T, activation, p, m, f, s)
    if not prob:
        for k in range(T):
            tc[k] = <int32_t>tg[k]
    if sums != NULL:
        for c in range(C):
            pc = p + c * T
            t = _tile_targets(tc, y, c, inner, T, prob, onehot)
            sums[c] = row_dot(pc, t, T)
            sums[C + c] = lane_sum(pc, T)
            sums[2 * C + c] = lane_sum(t, T)
        return
    if activation == DICE_SOFTMAX:
        for k in range(T):
            r[k] = 0
        for c in range(C):
            pc = p + c * T
            t = _tile_targets(tc, y, c, inner, T, prob, onehot)
            ac = a[c]
            bc = bb[c]
            for k in range(T):
                r[k] += pc[k] * dice_probability_grad(ac, bc, t[k])
    for c in range(C):
        pc = p + c * T
        t = _tile_targets(tc, y, c, inner, T, prob, onehot)
        ac = a[c]
        bc = bb[c]
        if activation == DICE_SOFTMAX:
            for k in range(T):
                pc[k] = dice_softmax_grad(pc[k], dice_probability_grad(ac, bc, t[k]), r[k])
        elif activation == DICE_SIGMOID:
            for k in range(T):
                pc[k] = dice_sigmoid_grad(pc[k], dice_probability_grad(ac, bc, t[k]))
        else:
            for k in range(T):
                pc[k] = dice_probability_grad(ac, bc, t[k])
        stream_into(gr + c * inner, pc, T, stream)
