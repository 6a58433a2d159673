"""Fused knowledge-distillation loss: loss, per-element losses and student gradient in one pass.

distillation_loss(student, teacher, temperature, grad_scale, grad_output, loss_out, grad_out)
takes (outer, C, inner) logits of one dtype; with P = softmax(teacher / T) and
Q = softmax(student / T) over the class axis, every element has the loss
l_c = T**2 P_c (log P_c - log Q_c).  It returns the float64 sum of the l_c,
writes them into loss_out when given, and into grad_out the gradient of
sum_c g_c l_c with respect to the student, g_c = grad_scale * grad_output[c]
(grad_scale alone when grad_output, of x's shape, is absent).

Per row (inner == 1) or tile (inner > 1), both arrays are read from memory
once, into scratch over the temperature; the exps (shifted as cross_entropy's
rows and tiles shift theirs), the losses and the gradient are formed there,
so grad_out may be either input.  Blocks of positions are fixed by the shape,
their losses summed in LANES lanes and the blocks in block order.  The
formulas are those of _formulas.pxd.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange

from fastloss._cython._arguments cimport advance, cadvance, check_shape, n_items
from fastloss._cython._blocking cimport (
    check_scratch, free_scratch, n_chunks, rows_per_block, sum_in_order, thread_scratch, tile_width,
)
from fastloss._cython._constants cimport BLOCK_ELEMS
from fastloss._cython._formulas cimport (
    distillation_gradient, distillation_gradient_scales, distillation_scales, distillation_term,
)
from fastloss._cython._machine cimport fl_stream_fence, stream_into, stream_result
from fastloss._cython._row_loops cimport exp_shift_first, lane_sum, row_dot
from fastloss._cython._tile_loops cimport tile_exp_sum, tile_max


def distillation_loss(const floating[:, :, ::1] student, const floating[:, :, ::1] teacher,
                      double temperature, double grad_scale, const floating[:, :, ::1] grad_output,
                      floating[:, :, ::1] loss_out, floating[:, :, ::1] grad_out):
    """The distillation loss of every element; returns the float64 sum of the losses."""
    check_shape("teacher", teacher.shape, student.shape, 3, False)
    check_shape("grad_output", grad_output.shape, student.shape, 3, True)
    check_shape("loss_out", loss_out.shape, student.shape, 3, True)
    check_shape("grad_out", grad_out.shape, student.shape, 3, True)
    cdef Py_ssize_t outer = student.shape[0], C = student.shape[1], inner = student.shape[2]
    cdef Py_ssize_t plane = C * inner
    if outer * plane == 0:
        return 0.0

    cdef const floating* sp = &student[0, 0, 0]
    cdef const floating* tp = &teacher[0, 0, 0]
    cdef const floating* go = &grad_output[0, 0, 0] if n_items(grad_output.shape, 3) else NULL
    cdef floating* lo = &loss_out[0, 0, 0] if n_items(loss_out.shape, 3) else NULL
    cdef floating* gr = &grad_out[0, 0, 0] if n_items(grad_out.shape, 3) else NULL

    cdef Py_ssize_t b, o, i0, r0, start
    # A tile packs four (C, T) blocks: the scaled logits of both arrays and their exps.
    cdef Py_ssize_t bs = rows_per_block(C) if inner == 1 else tile_width(C, inner, 4 * sizeof(floating))
    cdef Py_ssize_t n_tiles = n_chunks(inner, bs)
    cdef Py_ssize_t n_blocks = n_chunks(outer, bs) if inner == 1 else outer * n_tiles
    cdef char failed = 0
    # NULL-initialised: Cython makes them firstprivate.
    cdef floating* e = NULL
    cdef double* s = NULL
    cdef double[::1] partials = np.empty(n_blocks)
    cdef double* part = &partials[0]
    cdef bint threaded = n_blocks > 1 and outer * plane > BLOCK_ELEMS
    cdef bint stream = gr != NULL and stream_result(outer * plane * sizeof(floating))

    if inner == 1:
        with nogil, parallel(use_threads_if=threaded):
            e = <floating*>thread_scratch(4 * _padded(C) * sizeof(floating), &failed)
            for b in prange(n_blocks, schedule="static"):
                if e != NULL:
                    r0 = b * bs
                    part[b] = _row_block(sp, tp, temperature, grad_scale, go, lo, gr, C, r0,
                                         min(outer, r0 + bs), stream, e)
            if stream:
                fl_stream_fence()
            free_scratch(e)
    else:
        with nogil, parallel(use_threads_if=threaded):
            s = <double*>thread_scratch(4 * bs * sizeof(double) + (7 + 4 * C) * bs * sizeof(floating),
                                        &failed)
            for b in prange(n_blocks, schedule="static"):
                if s != NULL:
                    o = b // n_tiles
                    i0 = (b % n_tiles) * bs
                    start = o * plane + i0
                    part[b] = _tile_block(sp + start, tp + start, temperature, grad_scale,
                                          cadvance(go, start), advance(lo, start), advance(gr, start),
                                          inner, C, bs, min(bs, inner - i0), stream, s)
            if stream:
                fl_stream_fence()
            free_scratch(s)
    check_scratch(failed)
    return sum_in_order(part, n_blocks)


cdef inline void _over_temperature(const floating* student, const floating* teacher,
                                   floating temperature, floating* s, floating* t,
                                   Py_ssize_t n) noexcept nogil:
    """s = student / T, t = teacher / T (torch divides, too)."""
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = student[j] / temperature
        t[j] = teacher[j] / temperature


# ---- rows: inner == 1 -------------------------------------------------------

cdef inline Py_ssize_t _padded(Py_ssize_t C) noexcept nogil:
    """A scratch row's length: whole 64-byte lines, so the four rows of a block start
    aligned alike, and the same logits give the same exps in either."""
    return (C + 15) // 16 * 16


cdef double _row_block(const floating* student, const floating* teacher, double temperature,
                       double gscale, const floating* go, floating* lo, floating* gr,
                       Py_ssize_t C, Py_ssize_t r0, Py_ssize_t r1, bint stream,
                       floating* scratch) noexcept nogil:
    """Sum of the losses of rows [r0, r1); scratch holds four rows."""
    cdef Py_ssize_t row = _padded(C)
    cdef floating* s = scratch      # student / T, then the losses
    cdef floating* t = s + row      # teacher / T
    cdef floating* et = t + row     # exp(t - mt)
    cdef floating* es = et + row    # exp(s - ms), then the gradient
    cdef const floating* up
    cdef floating ms, mt, cf, rf, af, bf, one = 1
    cdef double total = 0, St, Ss, c, log_ratio, G, a, b
    cdef Py_ssize_t r, j
    for r in range(r0, r1):
        _over_temperature(student + r * C, teacher + r * C, <floating>temperature, s, t, C)
        St = exp_shift_first(t, et, C, &mt, NULL)
        Ss = exp_shift_first(s, es, C, &ms, NULL)
        distillation_scales(temperature, St, Ss, &c, &log_ratio)
        cf = <floating>c
        rf = <floating>log_ratio
        for j in range(C):
            s[j] = distillation_term(et[j], t[j] - mt, s[j] - ms, cf, rf)
        total += lane_sum(s, C)
        if lo != NULL:
            stream_into(lo + r * C, s, C, False)
        if gr == NULL:
            continue
        up = cadvance(go, r * C)
        G = gscale * row_dot(up, et, C) / St if up != NULL else gscale
        distillation_gradient_scales(temperature, G, St, Ss, &a, &b)
        af = <floating>a
        bf = <floating>(b * gscale)
        if up != NULL:
            for j in range(C):
                es[j] = distillation_gradient(af, es[j], bf, up[j], et[j])
        else:
            for j in range(C):
                es[j] = distillation_gradient(af, es[j], bf, one, et[j])
        stream_into(gr + r * C, es, C, stream)
    return total


# ---- tiles: inner > 1 -------------------------------------------------------

cdef double _tile_block(const floating* student, const floating* teacher, double temperature,
                        double gscale, const floating* go, floating* lo, floating* gr,
                        Py_ssize_t inner, Py_ssize_t C, Py_ssize_t Tmax, Py_ssize_t n,
                        bint stream, double* scratch) noexcept nogil:
    """Sum of the losses of n <= Tmax positions; pointers sit at the tile's first position.

    scratch: 4 double and 7 floating slots of Tmax values, then four packed
    (C, n) blocks.  The per-position loops run across class rows, so they vectorise.
    """
    cdef double* Ss = scratch
    cdef double* St = Ss + Tmax
    cdef double* losses = St + Tmax
    cdef double* G = losses + Tmax      # the upstream gradient weighted by P
    cdef floating* ms = <floating*>(G + Tmax)
    cdef floating* mt = ms + Tmax
    cdef floating* cf = mt + Tmax       # T**2 / St
    cdef floating* rf = cf + Tmax       # log(Ss) - log(St)
    cdef floating* af = rf + Tmax       # the gradient's factor of es ...
    cdef floating* bf = af + Tmax       # ... and of g et
    cdef floating* f = bf + Tmax        # float32 exp partial sums
    cdef floating* s = f + Tmax         # student / T, then the losses
    cdef floating* t = s + C * n        # teacher / T
    cdef floating* et = t + C * n       # exp(t - mt)
    cdef floating* es = et + C * n      # exp(s - ms), then the gradient
    cdef floating* sk
    cdef floating* tk
    cdef floating* ek
    cdef floating* gk
    cdef const floating* up
    cdef floating v, one = 1
    cdef double c, log_ratio, a, b
    cdef Py_ssize_t k, i
    for k in range(C):
        _over_temperature(student + k * inner, teacher + k * inner, <floating>temperature,
                          s + k * n, t + k * n, n)
    tile_max(s, n, C, n, ms)
    tile_exp_sum(s, n, C, n, ms, es, f, Ss)
    tile_max(t, n, C, n, mt)
    tile_exp_sum(t, n, C, n, mt, et, f, St)
    for i in range(n):
        distillation_scales(temperature, St[i], Ss[i], &c, &log_ratio)
        cf[i] = <floating>c
        rf[i] = <floating>log_ratio
        losses[i] = 0
    for k in range(C):
        sk = s + k * n
        tk = t + k * n
        ek = et + k * n
        for i in range(n):
            v = distillation_term(ek[i], tk[i] - mt[i], sk[i] - ms[i], cf[i], rf[i])
            sk[i] = v
            losses[i] += v
        if lo != NULL:
            stream_into(lo + k * inner, sk, n, False)
    if gr == NULL:
        return lane_sum(losses, n)
    if go != NULL:
        for i in range(n):
            G[i] = 0
        for k in range(C):
            up = go + k * inner
            ek = et + k * n
            for i in range(n):
                G[i] += <double>up[i] * ek[i]
        for i in range(n):
            G[i] = gscale * G[i] / St[i]
    else:
        for i in range(n):
            G[i] = gscale
    for i in range(n):
        distillation_gradient_scales(temperature, G[i], St[i], Ss[i], &a, &b)
        af[i] = <floating>a
        bf[i] = <floating>(b * gscale)
    for k in range(C):
        ek = et + k * n
        gk = es + k * n
        if go != NULL:
            up = go + k * inner
            for i in range(n):
                gk[i] = distillation_gradient(af[i], gk[i], bf[i], up[i], ek[i])
        else:
            for i in range(n):
                gk[i] = distillation_gradient(af[i], gk[i], bf[i], one, ek[i])
        stream_into(gr + k * inner, gk, n, stream)
    return lane_sum(losses, n)
