"""Element-wise losses over (outer, K, inner): the loops around the formulas of _formulas.pxd.

Every element is a position.  The flat element range is cut into blocks of
BLOCK_ELEMS (fixed by the shape), a block into runs (one weight index k when
inner > 1, a row of K weights when inner == 1, the whole block when there are
no weights: short rows would leave most of a chunk to loop tails), a run into CHUNK-sized
pieces: a piece's weights are laid out in scratch, its losses go to scratch,
its gradient to grad_out (which may be the input: each element is read
before it is written), then the losses are lane-summed and copied out.
Large results go through scratch and out with streaming stores.

Each kernel runs one entry of the ElementwiseLoss registry; the loss is
chosen outside the loops (_chunk), so every loop holds one formula.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.string cimport memcpy

from fastloss._cython._arguments cimport advance, check_shape, n_items
from fastloss._cython._blocking cimport (
    check_scratch, free_scratch, n_chunks, sum_in_order, thread_scratch,
)
from fastloss._cython._constants cimport BLOCK_ELEMS
from fastloss._cython._formulas cimport (
    BCE, BCE_WITH_LOGITS, KL_DIV, KL_DIV_LOG_TARGET, SIGMOID_FOCAL, ElementwiseLoss,
    elementwise_grad, elementwise_loss, shared_term,
)
from fastloss._cython._machine cimport fl_stream_fence, stream_into, stream_result
from fastloss._cython._row_loops cimport lane_sum

cdef enum:
    CHUNK = 512


def binary_cross_entropy(const floating[:, :, ::1] p, const floating[:, :, ::1] y,
                         const floating[::1] weight, double grad_scale,
                         const floating[:, :, ::1] grad_output, floating[:, :, ::1] loss_out,
                         floating[:, :, ::1] grad_out):
    """l = -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100)); returns sum(l)."""
    return _run(p, y, weight, weight[:0], 0, 0, grad_scale, grad_output, loss_out, grad_out, BCE)


def binary_cross_entropy_with_logits(const floating[:, :, ::1] x, const floating[:, :, ::1] y,
                                     const floating[::1] weight,
                                     const floating[::1] pos_weight, double grad_scale,
                                     const floating[:, :, ::1] grad_output,
                                     floating[:, :, ::1] loss_out, floating[:, :, ::1] grad_out):
    """l = w ((1 - y) x - (1 + (pw - 1) y) log_sigmoid(x)); returns sum(l)."""
    return _run(x, y, weight, pos_weight, 0, 0, grad_scale, grad_output, loss_out, grad_out,
                BCE_WITH_LOGITS)


def sigmoid_focal_loss(const floating[:, :, ::1] x, const floating[:, :, ::1] y,
                       const floating[::1] weight, double alpha, double gamma, double grad_scale,
                       const floating[:, :, ::1] grad_output, floating[:, :, ::1] loss_out,
                       floating[:, :, ::1] grad_out):
    """l = w a_t ce (1 - p_t)**gamma (torchvision's; see _formulas.pxd); returns sum(l)."""
    return _run(x, y, weight, weight[:0], alpha, gamma, grad_scale, grad_output, loss_out,
                grad_out, SIGMOID_FOCAL)


def kl_div(const floating[:, :, ::1] x, const floating[:, :, ::1] y, const floating[::1] weight,
           double grad_scale, const floating[:, :, ::1] grad_output,
           floating[:, :, ::1] loss_out, floating[:, :, ::1] grad_out):
    """l = w (xlogy(y, y) - y x); returns sum(l)."""
    return _run(x, y, weight, weight[:0], 0, 0, grad_scale, grad_output, loss_out, grad_out,
                KL_DIV)


def kl_div_log_target(const floating[:, :, ::1] x, const floating[:, :, ::1] y,
                      const floating[::1] weight, double grad_scale,
                      const floating[:, :, ::1] grad_output, floating[:, :, ::1] loss_out,
                      floating[:, :, ::1] grad_out):
    """l = w exp(y) (y - x); returns sum(l)."""
    return _run(x, y, weight, weight[:0], 0, 0, grad_scale, grad_output, loss_out, grad_out,
                KL_DIV_LOG_TARGET)


cdef double _run(const floating[:, :, ::1] x, const floating[:, :, ::1] y,
                 const floating[::1] weight, const floating[::1] pos_weight,
                 double alpha, double gamma, double gscale, const floating[:, :, ::1] grad_output,
                 floating[:, :, ::1] loss_out, floating[:, :, ::1] grad_out,
                 ElementwiseLoss loss) except? -1:
    cdef Py_ssize_t K = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t n = x.shape[0] * K * inner
    check_shape("target", y.shape, x.shape, 3, False)
    check_shape("weight", weight.shape, &x.shape[1], 1, True)
    check_shape("pos_weight", pos_weight.shape, &x.shape[1], 1, True)
    check_shape("grad_output", grad_output.shape, x.shape, 3, True)
    check_shape("loss_out", loss_out.shape, x.shape, 3, True)
    check_shape("grad_out", grad_out.shape, x.shape, 3, True)
    if n == 0:
        return 0.0

    cdef const floating* xp = &x[0, 0, 0]
    cdef const floating* yp = &y[0, 0, 0]
    cdef const floating* w = &weight[0] if weight.shape[0] else NULL
    cdef const floating* pw = &pos_weight[0] if pos_weight.shape[0] else NULL
    cdef const floating* go = &grad_output[0, 0, 0] if n_items(grad_output.shape, 3) else NULL
    cdef floating* lo = &loss_out[0, 0, 0] if n_items(loss_out.shape, 3) else NULL
    cdef floating* gr = &grad_out[0, 0, 0] if n_items(grad_out.shape, 3) else NULL

    cdef Py_ssize_t b, f0, n_blocks = n_chunks(n, BLOCK_ELEMS)
    cdef Py_ssize_t j = 0    # zero keeps gcc -Wall quiet: Cython makes it firstprivate
    cdef double[::1] partials = np.empty(n_blocks)
    cdef double* part = &partials[0]
    cdef floating* buf = NULL     # NULL-initialised: Cython makes it firstprivate
    cdef char failed = 0
    cdef bint stream = stream_result(n * sizeof(floating))
    with nogil, parallel(use_threads_if=n_blocks > 1):
        buf = <floating*>thread_scratch(6 * CHUNK * sizeof(floating), &failed)
        if buf != NULL:
            for j in range(2 * CHUNK, 5 * CHUNK):
                buf[j] = 1      # grad_output, weight and pos_weight when absent
        for b in prange(n_blocks, schedule="static"):
            if buf != NULL:
                f0 = b * BLOCK_ELEMS
                part[b] = _block(loss, xp, yp, w, pw, alpha, gamma, gscale, go, lo, gr, K, inner,
                                 f0, min(n, f0 + BLOCK_ELEMS), stream, buf)
        free_scratch(buf)
    check_scratch(failed)
    return sum_in_order(part, n_blocks)


cdef double _block(ElementwiseLoss loss, const floating* x, const floating* y,
                   const floating* w, const floating* pw, double alpha, double gamma,
                   double gscale, const floating* go,
                   floating* lo, floating* gr, Py_ssize_t K, Py_ssize_t inner, Py_ssize_t f0,
                   Py_ssize_t f1, bint stream, floating* buf) noexcept nogil:
    """Sum of the losses of flat elements [f0, f1).

    buf holds CHUNK-long arrays: losses, the shared terms, ones, weights, pos_weights,
    and the gradient when it is streamed out.
    """
    cdef double total = 0
    cdef Py_ssize_t f = f0, end, k, n
    cdef floating* wk = buf + 3 * CHUNK
    cdef floating* pwk = buf + 4 * CHUNK
    cdef floating* gk
    while f < f1:
        if w == NULL and pw == NULL:    # no weights: one run, across rows
            k = 0
            end = f1
        elif inner == 1:  # a run is (the rest of) a row of K elements, one weight each
            k = f % K
            end = min(f1, f - k + K)
        else:             # a run is (the rest of) inner elements sharing weight k
            k = (f // inner) % K
            end = min(f1, (f // inner + 1) * inner)
        while f < end:
            n = min(CHUNK, end - f)
            _lay_out(w, k, inner == 1, n, wk)
            _lay_out(pw, k, inner == 1, n, pwk)
            gk = buf + 5 * CHUNK if stream and gr != NULL else advance(gr, f)
            _chunk(loss, x + f, y + f, wk, pwk, pw != NULL, <floating>alpha, <floating>gamma,
                   <floating>gscale,
                   go + f if go != NULL else <const floating*>(buf + 2 * CHUNK),
                   gk, n, buf, buf + CHUNK)
            total += lane_sum(buf, n)
            if lo != NULL:
                stream_into(lo + f, buf, n, stream)
            if stream and gr != NULL:
                stream_into(gr + f, gk, n, True)
            if inner == 1:
                k += n
            f += n
    if stream:
        fl_stream_fence()
    return total


cdef inline void _lay_out(const floating* v, Py_ssize_t k, bint per_element, Py_ssize_t n,
                          floating* out) noexcept nogil:
    """out[:n] = v[k:k+n] (per element) or v[k] (shared); an absent v leaves the ones."""
    cdef Py_ssize_t j
    if v == NULL:
        return
    if per_element:
        memcpy(out, v + k, n * sizeof(floating))
    else:
        for j in range(n):
            out[j] = v[k]


cdef void _chunk(ElementwiseLoss loss, const floating* x, const floating* y,
                 const floating* wk, const floating* pwk, bint weighted, floating alpha,
                 floating gamma, floating g, const floating* go, floating* gr, Py_ssize_t n,
                 floating* out, floating* z) noexcept nogil:
    """out[:n] = the losses of n elements, gr[:n] (unless NULL) = their gradient.

    z is scratch for the shared terms.  The registry entry and `weighted`
    (pos_weight given) are tested here, outside the loops: each _loops call
    below passes them as constants, so once inlined its loops hold one formula
    (inside, gcc would compute every form under masks).
    """
    # The shared terms in a loop of their own (values live across a libmvec call,
    # float64, would be spilled), one loop per loss, each with its formula alone.
    if loss == BCE_WITH_LOGITS:
        _shared_loop(BCE_WITH_LOGITS, x, y, z, n)
    elif loss == SIGMOID_FOCAL:
        _shared_loop(SIGMOID_FOCAL, x, y, z, n)
    elif loss == KL_DIV:
        _shared_loop(KL_DIV, x, y, z, n)
    elif loss == KL_DIV_LOG_TARGET:
        _shared_loop(KL_DIV_LOG_TARGET, x, y, z, n)
    if loss == BCE:
        _loops(BCE, False, x, y, z, wk, pwk, 0, 0, g, go, gr, n, out)
    elif loss == SIGMOID_FOCAL:
        # gamma's common values as constants: their powers fold to products.
        if gamma == 2:
            _loops(SIGMOID_FOCAL, False, x, y, z, wk, pwk, alpha, 2, g, go, gr, n, out)
        elif gamma == 1:
            _loops(SIGMOID_FOCAL, False, x, y, z, wk, pwk, alpha, 1, g, go, gr, n, out)
        elif gamma == 0:
            _loops(SIGMOID_FOCAL, False, x, y, z, wk, pwk, alpha, 0, g, go, gr, n, out)
        else:
            _loops(SIGMOID_FOCAL, False, x, y, z, wk, pwk, alpha, gamma, g, go, gr, n, out)
    elif loss == KL_DIV:
        _loops(KL_DIV, False, x, y, z, wk, pwk, 0, 0, g, go, gr, n, out)
    elif loss == KL_DIV_LOG_TARGET:
        _loops(KL_DIV_LOG_TARGET, False, x, y, z, wk, pwk, 0, 0, g, go, gr, n, out)
    elif weighted:
        _loops(BCE_WITH_LOGITS, True, x, y, z, wk, pwk, 0, 0, g, go, gr, n, out)
    else:
        _loops(BCE_WITH_LOGITS, False, x, y, z, wk, pwk, 0, 0, g, go, gr, n, out)


cdef inline void _shared_loop(ElementwiseLoss loss, const floating* x, const floating* y,
                              floating* z, Py_ssize_t n) noexcept nogil:
    """z[:n] = the shared terms of one registry entry (a constant once inlined)."""
    cdef Py_ssize_t j
    for j in range(n):
        z[j] = shared_term(loss, x[j], y[j])


cdef inline void _loops(ElementwiseLoss loss, bint weighted, const floating* x,
                        const floating* y, const floating* z, const floating* wk,
                        const floating* pwk, floating a, floating b, floating g,
                        const floating* go, floating* gr, Py_ssize_t n,
                        floating* out) noexcept nogil:
    """The loss loop and the gradient loop of one registry entry; arithmetic in x's dtype."""
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = elementwise_loss(loss, x[j], y[j], z[j], pwk[j], weighted, a, b) * wk[j]
    if gr == NULL:
        return
    for j in range(n):
        gr[j] = elementwise_grad(loss, x[j], y[j], z[j], pwk[j], weighted, a, b,
                                 g * go[j]) * wk[j]
