"""Fused cross-entropy: loss, per-position losses and logits gradient in one pass.

Per row (inner == 1) or tile (inner > 1): pass 1 takes the max and reads
every logit the loss needs (x[target], the smoothing sums); pass 2 computes
e = exp(x - max) and its sum, into grad_out for a row (it may be x: each
element is read before it is written) or into a packed scratch block for a
tile; pass 3 turns e into the gradient.  Only pass 1 reads the logits from
memory, the later passes find them in cache.  Blocks of positions are fixed
by the shape; a row block's losses are summed in position order, a tile's in
LANES interleaved partial sums, the blocks in block order.  An ignored
position has loss 0 and torch's gradient 0 - softmax(x) * 0: zeros, or NaN
where softmax is NaN.  The loss of a position and the coefficients of its
gradient are the formulas of _formulas.pxd, written once for rows and tiles.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport log
from libc.stdint cimport int32_t, int64_t

from fastloss._cython._arguments cimport advance, cadvance, check_shape, n_items
from fastloss._cython._blocking cimport (
    check_scratch, free_scratch, n_chunks, rows_per_block, sum_in_order, thread_scratch, tile_width,
)
from fastloss._cython._constants cimport BLOCK_ELEMS, STREAM_ROW_BYTES, TILE_EXP_GROUP
from fastloss._cython._formulas cimport (
    class_grad_scale, class_grad_smoothing, class_grad_target, class_loss, prob_grad_scale,
    prob_loss, prob_target, z_loss_grad_scale, z_loss_term,
)
from fastloss._cython._machine cimport (
    fl_row_grad, fl_row_grad_begin, fl_row_grad_finish, fl_stream_fence, stream_into,
    stream_result,
)
from fastloss._cython._row_loops cimport (
    LANES, exp_shift, exp_shift_first, lane_sum, merge_lanes, row_max, shifted_dot,
)
from fastloss._cython._tile_loops cimport (
    fl_class_grad_float, fl_tile_exp_first_f32, tile_exp_sum, tile_gather, tile_max,
)
from fastloss._cython._vector_math cimport flog


def cross_entropy_class(const floating[:, :, ::1] x, const int64_t[:, ::1] target,
                        const floating[::1] weight, int64_t ignore_index,
                        double label_smoothing, double z_loss, double grad_scale,
                        const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
                        floating[:, :, ::1] grad_out):
    """Cross-entropy against class indices; returns the float64 sum of the losses."""
    cdef Py_ssize_t pos_shape[2]
    pos_shape[0] = x.shape[0]
    pos_shape[1] = x.shape[2]
    check_shape("target", target.shape, pos_shape, 2, False)
    return _run(x, &target[0, 0], x, weight, ignore_index, label_smoothing, z_loss, grad_scale,
                grad_output, loss_out, grad_out, False)


def cross_entropy_prob(const floating[:, :, ::1] x, const floating[:, :, ::1] target,
                       const floating[::1] weight, double label_smoothing, double z_loss,
                       double grad_scale,
                       const floating[:, ::1] grad_output, floating[:, ::1] loss_out,
                       floating[:, :, ::1] grad_out):
    """Cross-entropy against class probabilities; returns the float64 sum of the losses."""
    check_shape("target", target.shape, x.shape, 3, False)
    return _run(x, NULL, target, weight, 0, label_smoothing, z_loss, grad_scale,
                grad_output, loss_out, grad_out, True)


cdef double _run(const floating[:, :, ::1] x, const int64_t* tg,
                 const floating[:, :, ::1] y, const floating[::1] weight, int64_t ignore,
                 double eps, double z, double gscale, const floating[:, ::1] grad_output,
                 floating[:, ::1] loss_out, floating[:, :, ::1] grad_out,
                 bint prob) except? -1:
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t pos_shape[2]
    pos_shape[0] = outer
    pos_shape[1] = inner
    check_shape("weight", weight.shape, &x.shape[1], 1, True)
    check_shape("grad_output", grad_output.shape, pos_shape, 2, True)
    check_shape("loss_out", loss_out.shape, pos_shape, 2, True)
    check_shape("grad_out", grad_out.shape, x.shape, 3, True)
    if outer * inner == 0:
        return 0.0

    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* yp = &y[0, 0, 0]
    cdef const floating* w = &weight[0] if weight.shape[0] else NULL
    cdef const floating* go = &grad_output[0, 0] if n_items(grad_output.shape, 2) else NULL
    cdef floating* lo = &loss_out[0, 0] if n_items(loss_out.shape, 2) else NULL
    cdef floating* gr = &grad_out[0, 0, 0] if n_items(grad_out.shape, 3) else NULL
    cdef double W = C
    cdef Py_ssize_t j
    if w != NULL:
        W = 0
        for j in range(C):
            W += w[j]

    cdef Py_ssize_t b, o, i0, r0, plane = C * inner
    # A tile packs the exps, and for prob targets w_c y'_c too.
    cdef Py_ssize_t bs = (rows_per_block(C) if inner == 1
                          else tile_width(C, inner, (2 if prob else 1) * sizeof(floating)))
    cdef Py_ssize_t n_tiles = n_chunks(inner, bs)
    cdef Py_ssize_t n_blocks = n_chunks(outer, bs) if inner == 1 else outer * n_tiles
    cdef char failed = 0
    # NULL-initialised: Cython makes them firstprivate.
    cdef double* s = NULL
    cdef floating* e = NULL
    cdef double total
    cdef bint stream = stream_result(outer * plane * sizeof(floating))
    cdef bint stream_rows = stream and C * sizeof(floating) <= STREAM_ROW_BYTES

    if inner == 1 and n_blocks == 1:
        # One block of rows: on this thread, without a parallel region or an array of partials,
        # whose fixed costs would be most of a small call's time.
        e = <floating*>thread_scratch((2 if stream_rows else 1) * C * sizeof(floating), &failed)
        check_scratch(failed)
        total = 0  # as sum_in_order adds the partials: a -0.0 block sums to 0.0
        with nogil:
            total += _row_block(xp, tg, yp, w, ignore, eps, z, W, gscale, go, lo, gr, C, 0, outer, prob,
                               stream_rows, e)
            if stream_rows:
                fl_stream_fence()
            free_scratch(e)
        return total

    cdef double[::1] partials = np.empty(n_blocks)
    cdef double* part = &partials[0]
    cdef bint threaded = n_blocks > 1 and outer * plane > BLOCK_ELEMS

    if inner == 1:
        with nogil, parallel(use_threads_if=threaded):
            # Streamed rows keep two rows of exps: one leaving while the next is taken.
            e = <floating*>thread_scratch((2 if stream_rows else 1) * C * sizeof(floating), &failed)
            for b in prange(n_blocks, schedule="static"):
                if e != NULL:
                    r0 = b * bs
                    part[b] = _row_block(xp, tg, yp, w, ignore, eps, z, W, gscale, go, lo,
                                         gr, C, r0, min(outer, r0 + bs), prob, stream_rows, e)
            if stream_rows:
                fl_stream_fence()
            free_scratch(e)
    else:
        with nogil, parallel(use_threads_if=threaded):
            s = <double*>thread_scratch(
                7 * bs * sizeof(double)
                + (6 + (2 if prob else 1) * C) * bs * sizeof(floating), &failed)
            for b in prange(n_blocks, schedule="static"):
                if s != NULL:
                    o = b // n_tiles
                    i0 = (b % n_tiles) * bs
                    part[b] = _tile_block(
                        xp + o * plane + i0, tg + o * inner + i0 if not prob else NULL,
                        yp + o * plane + i0, w, ignore, eps, z, W, gscale,
                        cadvance(go, o * inner + i0), advance(lo, o * inner + i0),
                        advance(gr, o * plane + i0), inner, C, bs, min(bs, inner - i0), prob,
                        stream, s)
            if stream:
                fl_stream_fence()
            free_scratch(s)
    check_scratch(failed)
    return sum_in_order(part, n_blocks)


# ---- rows: inner == 1 -------------------------------------------------------

cdef double _row_block(const floating* x, const int64_t* tg, const floating* y,
                       const floating* w, int64_t ignore, double eps, double z, double W,
                       double gscale, const floating* go, floating* lo, floating* gr,
                       Py_ssize_t C, Py_ssize_t r0, Py_ssize_t r1, bint prob,
                       bint stream, floating* e) noexcept nogil:
    """Sum of the losses of rows [r0, r1); e is a row of scratch (two with stream)."""
    cdef double total = 0, loss, g
    cdef Py_ssize_t r
    cdef int64_t t
    if floating is float:
        if stream and not prob and eps == 0 and gr != NULL and <const floating*>gr != x:
            return _streamed_class_rows(x, tg, w, ignore, z, gscale, go, lo, gr, C, r0, r1, e)
    for r in range(r0, r1):
        g = gscale * go[r] if go != NULL else gscale
        if prob:
            loss = _prob_row(x + r * C, y + r * C, w, eps, z, g, advance(gr, r * C), e, C)
        else:
            t = tg[r]
            if t == ignore:
                loss = 0
                if gr != NULL:
                    _ignored_row(x + r * C, gr + r * C, C)
            else:
                loss = _class_row(x + r * C, t, w, eps, z, W, g, advance(gr, r * C), e, C)
        if lo != NULL:
            lo[r] = <floating>loss
        total += loss
    return total


cdef void _ignored_row(const floating* x, floating* gr, Py_ssize_t C) noexcept nogil:
    """torch's gradient of an ignored row: 0 - softmax(x) * 0, so NaN where softmax is."""
    cdef int normal
    cdef floating m = row_max(x, C, &normal)
    cdef floating z = <floating>(0.0 / exp_shift(x, m, gr, C, normal))
    cdef Py_ssize_t j
    for j in range(C):
        gr[j] = gr[j] * z


cdef double _class_row(const floating* x, Py_ssize_t t, const floating* w, double eps,
                       double z, double W, double g, floating* gr, floating* e,
                       Py_ssize_t C) noexcept nogil:
    """Loss of a non-ignored row; with gr, its gradient goes there (gr may be x).

    The exps are shifted by the row's max, or by its first value where that
    serves as well (exp_shift_first): then one pass over x instead of two.
    They go straight into gr, and are scaled there, unless gr is x: then into
    the scratch row e, so x is still whole if the first value does not serve,
    and the gradient is scaled out of e.
    """
    cdef int normal
    cdef floating m
    cdef double xt = x[t]
    cdef double wt = w[t] if w != NULL else 1.0
    cdef double sw = 0, s, logs, loss
    cdef floating A, D
    cdef Py_ssize_t j
    if gr != NULL and <const floating*>gr != x:
        e = gr
    if eps == 0:
        s = exp_shift_first(x, e, C, &m, NULL)
    else:
        # The smoothing sum needs the shift before the exps.
        m = row_max(x, C, &normal)
        if eps != 0:
            sw = shifted_dot(x, m, w, C)
        s = exp_shift(x, m, e, C, normal)
    logs = log(s)
    loss = class_loss(m, xt, logs, wt, eps, W, C, sw, eps != 0) + z_loss_term(m + logs, z, wt)
    if gr == NULL:
        return loss
    A = <floating>((class_grad_scale(g, wt, eps, W, C, eps != 0)
                    + z_loss_grad_scale(m + logs, z, wt, g)) / s)
    if eps == 0:
        for j in range(C):
            gr[j] = e[j] * A
    else:
        D = <floating>class_grad_smoothing(g, eps, C)
        if w == NULL:
            for j in range(C):
                gr[j] = e[j] * A - D
        else:
            for j in range(C):
                gr[j] = e[j] * A - D * w[j]
    gr[t] = gr[t] - <floating>class_grad_target(g, wt, eps)
    return loss


cdef double _streamed_class_rows(const float* x, const int64_t* tg, const float* w,
                                 int64_t ignore, double z, double gscale, const float* go,
                                 float* lo, float* gr, Py_ssize_t C, Py_ssize_t r0, Py_ssize_t r1,
                                 float* scratch) noexcept nogil:
    """_row_block for class targets without smoothing whose float32 gradient is
    streamed (not into x).  A row's exps stay in one of the two scratch rows,
    and its gradient leaves from there, its lines never read, while the next
    row's exps are taken into the other (exp_shift_first with a pending row)."""
    cdef fl_row_grad pending
    cdef fl_row_grad* last = NULL
    cdef float* e
    cdef float m, A
    cdef double total = 0, loss, s, g, wt, logs
    cdef Py_ssize_t r
    cdef int64_t t
    for r in range(r0, r1):
        t = tg[r]
        loss = 0
        if t == ignore:
            if last != NULL:
                fl_row_grad_finish(last)
                last = NULL
            _ignored_row(x + r * C, gr + r * C, C)
        else:
            e = scratch + (r % 2) * C
            s = exp_shift_first(x + r * C, e, C, &m, last)
            if last != NULL:
                fl_row_grad_finish(last)
            g = gscale * go[r] if go != NULL else gscale
            wt = w[t] if w != NULL else 1.0
            logs = log(s)
            loss = (class_loss(m, x[r * C + t], logs, wt, 0, 0, C, 0, False)
                    + z_loss_term(m + logs, z, wt))
            A = <float>((class_grad_scale(g, wt, 0, 0, C, False)
                         + z_loss_grad_scale(m + logs, z, wt, g)) / s)
            pending = fl_row_grad_begin(gr + r * C, e, A, t,
                                        e[t] * A - <float>class_grad_target(g, wt, 0), C,
                                        x + (r + 1) * C if r + 1 < r1 else NULL)
            last = &pending
        if lo != NULL:
            lo[r] = <float>loss
        total += loss
    if last != NULL:
        fl_row_grad_finish(last)
    return total


cdef double _prob_row(const floating* x, const floating* y, const floating* w, double eps,
                      double z, double g, floating* gr, floating* e, Py_ssize_t C) noexcept nogil:
    """Loss of a row of probability targets; with gr, its gradient goes there."""
    cdef int normal
    cdef floating m = row_max(x, C, &normal)
    cdef floating a = <floating>(1 - eps), b = <floating>(eps / C)
    cdef double q_acc[LANES]
    cdef double r_acc[LANES]
    cdef double q, rr, wy, s, logs
    cdef floating A, G
    cdef Py_ssize_t j, jb, k, nv = C - C % LANES
    # Q = sum w y', R = sum w y' (m - x), read before pass 2 overwrites x.
    for k in range(LANES):
        q_acc[k] = 0
        r_acc[k] = 0
    if w == NULL:
        for jb in range(nv // LANES):
            j = jb * LANES
            for k in range(LANES):
                wy = prob_target(y[j + k], 1, a, b)
                q_acc[k] += wy
                r_acc[k] += wy * (<double>m - x[j + k])
    else:
        for jb in range(nv // LANES):
            j = jb * LANES
            for k in range(LANES):
                wy = prob_target(y[j + k], w[j + k], a, b)
                q_acc[k] += wy
                r_acc[k] += wy * (<double>m - x[j + k])
    q = 0
    rr = 0
    for j in range(nv, C):
        wy = prob_target(y[j], 1 if w == NULL else w[j], a, b)
        q += wy
        rr += wy * (<double>m - x[j])
    q += merge_lanes(q_acc)
    rr += merge_lanes(r_acc)
    if gr != NULL:
        e = gr
    s = exp_shift(x, m, e, C, normal)
    logs = log(s)
    if gr != NULL:
        A = <floating>((prob_grad_scale(g, q) + z_loss_grad_scale(m + logs, z, 1, g)) / s)
        G = <floating>g
        if w == NULL:
            for j in range(C):
                gr[j] = gr[j] * A - G * prob_target(y[j], 1, a, b)
        else:
            for j in range(C):
                gr[j] = gr[j] * A - G * prob_target(y[j], w[j], a, b)
    return prob_loss(q, rr, logs) + z_loss_term(m + logs, z, 1)


# ---- tiles: inner > 1 -------------------------------------------------------

cdef double _tile_block(const floating* x, const int64_t* tg, const floating* y,
                        const floating* w, int64_t ignore, double eps, double z, double W,
                        double gscale, const floating* go, floating* lo, floating* gr,
                        Py_ssize_t inner, Py_ssize_t C, Py_ssize_t Tmax, Py_ssize_t T,
                        bint prob, bint stream, double* scratch) noexcept nogil:
    """Sum of the losses of T <= Tmax positions; pointers sit at the tile's first position.

    scratch: 7 double and 6 floating slots of Tmax values, then packed (C, T)
    blocks: the exps (with a gradient), and w_c y'_c for prob targets.
    The per-position loops are branch-free (selects, gathers) so they vectorise.
    """
    cdef double* s = scratch          # sum of the exps
    cdef double* logs = s + Tmax      # log(s)
    cdef double* G = logs + Tmax      # upstream gradient
    cdef double* loss = G + Tmax
    cdef double* wt = loss + Tmax     # class targets: the target's weight
    # Two slots serve the two target kinds under their own names.
    cdef double* sw = wt + Tmax       # class targets: sum_c w_c (x_c - m)
    cdef double* Q = sw               # prob targets: sum_c w_c y'_c
    cdef double* xt = sw + Tmax       # class targets: x at the target
    cdef double* R = xt               # prob targets: sum_c w_c y'_c (m - x_c)
    cdef floating* m = <floating*>(xt + Tmax)
    cdef floating* A = m + Tmax     # gradient = e * A ...
    cdef floating* D = A + Tmax     # ... - D * w_c (class) / - D * w_c y'_c (prob)
    cdef floating* B = D + Tmax     # ... - B at the target class
    cdef floating* f = B + Tmax     # float32 exp partial sums
    cdef int32_t* tc = <int32_t*>(f + Tmax)  # the target class, -1 where ignored
    cdef floating* pe = f + 2 * Tmax
    cdef floating* pwy = pe + C * Tmax
    cdef floating a = <floating>(1 - eps), b = <floating>(eps / C)
    cdef double wc, gw, lse
    cdef floating wcf, wy
    cdef Py_ssize_t c, k
    cdef int64_t t
    cdef bint keep
    cdef const floating* xc
    cdef const floating* yc
    cdef floating* qc

    # The logits of the first class as the shift, as rows take theirs
    # (_class_row), saves a pass over the tile; the max serves otherwise.
    cdef const floating* shift = m
    cdef bint first_served = False
    if floating is float and not prob and eps == 0:
        first_served = fl_tile_exp_first_f32(x, inner, C, T, TILE_EXP_GROUP,
                                             pe if gr != NULL else NULL, f, s)
    if first_served:
        shift = x
    else:
        tile_max(x, inner, C, T, m)
    if prob:
        for k in range(T):
            Q[k] = 0
            R[k] = 0
        for c in range(C):
            xc = x + c * inner
            yc = y + c * inner
            qc = pwy + c * T
            wcf = <floating>(w[c] if w != NULL else 1.0)
            for k in range(T):
                wy = prob_target(yc[k], wcf, a, b)
                qc[k] = wy
                Q[k] += wy
                R[k] += wy * (<double>m[k] - xc[k])
    elif eps != 0:
        for k in range(T):
            sw[k] = 0
        for c in range(C):
            xc = x + c * inner
            wc = w[c] if w != NULL else 1.0
            for k in range(T):
                sw[k] += wc * (<double>xc[k] - m[k])
    if not prob:
        for k in range(T):
            t = tg[k]
            tc[k] = <int32_t>t if t != ignore else -1
        # An ignored position reads class 0; its results are selected away below.
        tile_gather(x, tc, inner, 1, T, xt)
        if w != NULL:
            tile_gather(w, tc, 1, 0, T, wt)
        else:
            for k in range(T):
                wt[k] = 1
    if not first_served:
        tile_exp_sum(x, inner, C, T, m, pe if gr != NULL else NULL, f, s)
    for k in range(T):
        # In x's dtype: s lies in [1, C] (or is NaN), where a float32 log is as
        # good as the float32 result needs and cheaper than the float64 one.
        logs[k] = flog(<floating>s[k])
    if go != NULL:
        for k in range(T):
            G[k] = gscale * go[k]
    else:
        for k in range(T):
            G[k] = gscale

    if prob:
        for k in range(T):
            lse = m[k] + logs[k]
            A[k] = <floating>((prob_grad_scale(G[k], Q[k]) + z_loss_grad_scale(lse, z, 1, G[k]))
                              / s[k])
            D[k] = <floating>G[k]
            loss[k] = prob_loss(Q[k], R[k], logs[k]) + z_loss_term(lse, z, 1)
    elif eps == 0:
        # An ignored position: loss 0 and torch's gradient 0 - softmax * 0, so
        # NaN where the softmax is (see _ignored_row).  Results are stored, then
        # zeroed where ignored: gcc if-converts that, not a select between
        # floating-point expressions.
        for k in range(T):
            keep = tg[k] != ignore
            lse = shift[k] + logs[k]
            gw = (class_grad_scale(G[k], wt[k], 0, W, C, False)
                  + z_loss_grad_scale(lse, z, wt[k], G[k]))
            A[k] = <floating>((gw if keep else 0.0) / s[k])
            B[k] = <floating>class_grad_target(G[k], wt[k], 0)
            loss[k] = (class_loss(shift[k], xt[k], logs[k], wt[k], 0, W, C, 0, False)
                       + z_loss_term(lse, z, wt[k]))
            if not keep:
                B[k] = 0
                loss[k] = 0
    else:
        for k in range(T):
            keep = tg[k] != ignore
            lse = m[k] + logs[k]
            gw = (class_grad_scale(G[k], wt[k], eps, W, C, True)
                  + z_loss_grad_scale(lse, z, wt[k], G[k]))
            A[k] = <floating>((gw if keep else 0.0) / s[k])
            D[k] = <floating>class_grad_smoothing(G[k], eps, C)
            B[k] = <floating>class_grad_target(G[k], wt[k], eps)
            loss[k] = (class_loss(m[k], xt[k], logs[k], wt[k], eps, W, C, sw[k], True)
                       + z_loss_term(lse, z, wt[k]))
            if not keep:
                D[k] = 0
                B[k] = 0
                loss[k] = 0
    if lo != NULL:
        for k in range(T):
            lo[k] = <floating>loss[k]
    if gr != NULL:
        if floating is float and not prob:
            for c in range(C):
                fl_class_grad_float(gr + c * inner, pe + c * T, A, D if eps != 0 else NULL,
                                    w[c] if w != NULL else 1, B, tc, <int32_t>c, T, stream)
        else:
            _tile_gradient(pe, pwy, w, tg, ignore, A, B, D, eps, prob, C, T, inner, gr, stream)
    return lane_sum(loss, T)


cdef void _tile_gradient(floating* pe, const floating* pwy, const floating* w,
                         const int64_t* tg, int64_t ignore, const floating* A,
                         const floating* B, const floating* D, double eps, bint prob,
                         Py_ssize_t C, Py_ssize_t T, Py_ssize_t inner, floating* gr,
                         bint stream) noexcept nogil:
    """The tile's gradient e A - D w_c (- B at the target), built in the packed
    exps pe and then copied (streamed, for a large result) to gr."""
    cdef Py_ssize_t c, k
    cdef int64_t t
    cdef floating wcf
    cdef floating* pc
    cdef const floating* qc
    for c in range(C):
        pc = pe + c * T
        if prob:
            qc = pwy + c * T
            for k in range(T):
                pc[k] = pc[k] * A[k] - D[k] * qc[k]
        elif eps == 0:
            for k in range(T):
                pc[k] = pc[k] * A[k]
        else:
            wcf = <floating>(w[c] if w != NULL else 1.0)
            for k in range(T):
                pc[k] = pc[k] * A[k] - D[k] * wcf
    if not prob:
        for k in range(T):
            t = tg[k]
            if t != ignore:
                pe[t * T + k] = pe[t * T + k] - B[k]
    for c in range(C):
        stream_into(gr + c * inner, pe + c * T, T, stream)
