"""Blocking and the row / tile loops shared by the kernel families.

Blocking
--------
Work is cut into blocks whose bounds depend on the shape only, so every
per-block partial sum, and their sum in block order, is the same for any
thread count.

* ``inner == 1``: a block is ``rows_per_block`` consecutive rows of C
  contiguous values (`row_blocking`).
* ``inner > 1``: a block is one ``(outer index, tile)`` pair, a tile being up
  to ``T`` consecutive inner positions (`tile_blocking`); a kernel walks the C
  class rows of a tile, each a contiguous slice of length ``n <= T``.

Both aim at ``BLOCK`` elements per block, so a block's data and its scratch
stay in L2 between the passes over it.

Row reductions
--------------
Without fastmath LLVM keeps a sum's order and so never vectorises it.  Sums
along a contiguous row therefore run on ``LANES`` lane accumulators (element
``j`` goes to lane ``j % LANES``) folded in a fixed tree: vectorised, in an
order set by the row length alone.  Float32 exp sums are the exception
(`add_reassoc`): LLVM reorders them itself, in an order set by the row
length and the CPU.  The max needs no lanes: LLVM's ``maximum`` is
order-independent.  Reductions across the class rows of a tile are
elementwise and need no such care.

Streaming stores
----------------
A large result is written from scratch with `stream_into` (or `stream_affine`):
non-temporal stores skip reading each destination line into cache before
overwriting it, which halves the memory traffic of the write.  Small results
keep ordinary stores, so they stay in cache for the caller.  A locked
instruction waits until every streamed line in flight has reached memory, and
numba updates an array's reference count with one whenever it takes a view or
passes an array to a function that is not inlined.  So the loops that stream
take their rows and class rows as `borrowed` views and inline their helpers.

Aliasing
--------
A loop reading an input and writing an output that is the same memory falls
back to scalar code (LLVM's runtime overlap check fails).  Wherever an output
may alias an input, the last pass reads scratch only, or the result is built
in scratch and copied.
"""
import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._table_exp import HAS_TABLE_EXP, exp_vectors_first32
from ._vmath import NORMAL_EXP_MIN, add_reassoc, fmax_reducible, fmin_reducible, maximum, vexp_neg, vexp_normal

LANES = 64
BLOCK = 32768
# Elements per tile: a float32 tile (256 KiB) and its packed exps both stay in
# the 1 MiB L2 between the passes (98304 was 2-4 % slower on (16, 21, 256, 256)).
TILE_BLOCK = 65536
# Results of at least this many bytes are written with streaming stores.
STREAM_BYTES = 8 << 20
# A row's gradient is streamed from a scratch row of its exps only if the row
# fits in L1 (C = 1000 gained; C = 32000, from L2, lost).
STREAM_ROW_BYTES = 16 << 10
MIN_TILE = 16
# Blocks are run in up to SUPER contiguous groups, each with one set of scratch.
SUPER = 64


@intrinsic
def _stack_lanes(typingctx):
    """Pointer to ``LANES`` float64 on the stack.

    LLVM knows a stack buffer aliases nothing, so it keeps the lanes in
    vector registers instead of re-checking overlaps for every chunk.
    """
    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once(builder, ir.ArrayType(ir.DoubleType(), LANES))
        return builder.bitcast(buf, ir.DoubleType().as_pointer())

    return types.CPointer(types.float64)(), codegen


@intrinsic
def _stack_lanes32(typingctx):
    """Pointer to ``LANES`` float32 on the stack (see `_stack_lanes`)."""
    def codegen(context, builder, sig, args):
        buf = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), LANES))
        return builder.bitcast(buf, ir.FloatType().as_pointer())

    return types.CPointer(types.float32)(), codegen


@intrinsic
def _address_of(typingctx, arr, i):
    """Pointer to item ``i`` of a C-contiguous array's data."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.gep(data, [args[1]])

    if not isinstance(arr, types.Array) or arr.layout != "C":
        return None
    return types.CPointer(arr.dtype)(arr, i), codegen


@njit(cache=True, error_model="numpy", inline="always")
def borrowed(a, start, n):
    """Items ``start:start + n`` of a C-contiguous array's data, as a view that
    holds no reference: taking it in a loop costs no locked reference-count
    update, which would wait for every streamed line in flight."""
    return carray(_address_of(a, start), (n,))


@njit(cache=True, error_model="numpy", inline="always")
def fold_lanes(lanes):
    """Float64 sum of the ``LANES`` lanes, folded in a fixed tree order (inlined, so the
    lanes stay in registers)."""
    h = LANES // 2
    while h >= 8:
        for k in range(h):
            lanes[k] += lanes[k + h]
        h //= 2
    s = 0.0
    for k in range(8):
        s += lanes[k]
    return s


@njit(cache=True, error_model="numpy")
def row_blocking(n_rows, C):
    """``(rows_per_block, n_blocks)`` for ``n_rows`` contiguous rows of C values."""
    rows = max(1, BLOCK // max(C, 1))
    return rows, (n_rows + rows - 1) // rows


@njit(cache=True, error_model="numpy")
def tile_blocking(outer, C, inner):
    """``(T, tiles_per_outer, n_blocks)`` for an ``(outer, C, inner)`` array."""
    # A multiple of 16 elements: tiles of a row meet on 64-byte steps, so
    # threads writing neighbouring tiles of line-aligned rows share no line.
    T = min(inner, max(MIN_TILE, TILE_BLOCK // max(C, 1) // 16 * 16))
    tiles = (inner + T - 1) // T
    return T, tiles, outer * tiles


@njit(cache=True, error_model="numpy")
def block_range(b, size, n):
    """Bounds of block ``b`` of ``size`` items out of ``n``."""
    lo = b * size
    return lo, min(lo + size, n)


@njit(cache=True, error_model="numpy")
def as_rows(a, n_rows, C):
    """``(n_rows, C)`` view of an ``(n_rows, C, 1)`` array; ``(0, 0)`` if it is absent."""
    if a.size == 0:
        return a.reshape((0, 0))
    return a.reshape((n_rows, C))


@njit(cache=True, error_model="numpy")
def zero_tile(a, o, i0, n):
    """``a[o, :, i0:i0+n] = 0``."""
    if n == a.shape[2]:
        flat = a[o].reshape(a.shape[1] * n)
        for j in range(flat.shape[0]):
            flat[j] = 0
        return
    for c in range(a.shape[1]):
        ac = a[o, c, i0:i0 + n]
        for i in range(n):
            ac[i] = 0


@njit(cache=True, error_model="numpy")
def sum_partials(partials):
    """Sum of the per-block partials, in block order."""
    total = 0.0
    for b in range(partials.shape[0]):
        total += partials[b]
    return total


@njit(cache=True, error_model="numpy")
def row_max(x):
    """Max of a non-empty row (NaN if it holds a NaN)."""
    m = x[0]
    for j in range(x.shape[0]):
        m = maximum(m, x[j])
    return m


@njit(cache=True, error_model="numpy")
def row_sum(v):
    """Float64 sum of a row, in an order set by its length."""
    n = v.shape[0]
    s = 0.0
    if n < LANES:
        for j in range(n):
            s += v[j]
        return s
    # Chunks are slices indexed from 0: a computed index would get numba's
    # negative-index wraparound, which LLVM vectorises as gathers.
    lanes = carray(_stack_lanes(), (LANES,))
    first = v[:LANES]
    for k in range(LANES):
        lanes[k] = first[k]
    nb = n // LANES
    for b in range(1, nb):
        chunk = v[b * LANES:(b + 1) * LANES]
        for k in range(LANES):
            lanes[k] += chunk[k]
    tail = v[nb * LANES:]
    for k in range(tail.shape[0]):
        lanes[k] += tail[k]
    return fold_lanes(lanes)


@njit(cache=True, error_model="numpy")
def row_exp(x, m, e):
    """``e = exp(x - m)`` along a row with ``m = max(x)``."""
    for j in range(x.shape[0]):
        e[j] = vexp_neg(x[j] - m)


@njit(cache=True, error_model="numpy")
def row_weighted_sum(w, v, prod):
    """Float64 ``sum_j w_j * v_j`` (products formed in float64 in ``prod``)."""
    for j in range(v.shape[0]):
        prod[j] = np.float64(w[j]) * np.float64(v[j])
    return row_sum(prod[:v.shape[0]])


@njit(cache=True, error_model="numpy")
def scale_into(e, a, out):
    """``out = a * e``, a in e's dtype."""
    for j in range(e.shape[0]):
        out[j] = a * e[j]


@njit(cache=True, error_model="numpy")
def scale_in_place(v, a):
    """``v *= a``; one array in the loop, so no overlap check keeps it scalar."""
    for j in range(v.shape[0]):
        v[j] = a * v[j]


@njit(cache=True, error_model="numpy")
def copy_into(src, out):
    """``out[:] = src``; the loop that lets an aliased result leave scratch."""
    for j in range(src.shape[0]):
        out[j] = src[j]


def _line_codegen(context, builder, sig, args):
    """``dst[j:j+L] = (src[i:i+L] - m) * a - c`` (args ``dst, j, src, i, m, a, c``,
    then optionally ``t, v``: v goes to the lane of ``dst[t]``, t in the line) for
    one 64-byte line of ``dst`` (which starts at ``dst[j]`` on a line boundary),
    with a non-temporal store."""
    dty, _, sty = sig.args[:3]
    dp = cgutils.get_item_pointer(context, builder, dty, context.make_array(dty)(context, builder, args[0]),
                                  [args[1]], wraparound=False)
    sp = cgutils.get_item_pointer(context, builder, sty, context.make_array(sty)(context, builder, args[2]),
                                  [args[3]], wraparound=False)
    fty = context.get_value_type(dty.dtype)
    size = fty.get_abi_size(context.target_data)
    n = 64 // size
    vty = ir.VectorType(fty, n)

    def splat(v):
        one = builder.insert_element(ir.Constant(vty, ir.Undefined), v, ir.IntType(32)(0))
        return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))

    line = builder.load(builder.bitcast(sp, vty.as_pointer()), align=size)
    line = builder.fsub(builder.fmul(builder.fsub(line, splat(args[4])), splat(args[5])), splat(args[6]))
    if len(args) > 7:
        # A select by lane, not an insert at a variable index (a stack round trip).
        lanes = ir.VectorType(ir.IntType(32), n)
        at = builder.trunc(builder.sub(args[7], args[1]), ir.IntType(32))
        at = builder.shuffle_vector(builder.insert_element(ir.Constant(lanes, ir.Undefined), at, ir.IntType(32)(0)),
                                    ir.Constant(lanes, ir.Undefined), ir.Constant(lanes, [0] * n))
        hit = builder.icmp_signed("==", ir.Constant(lanes, list(range(n))), at)
        line = builder.select(hit, splat(args[8]), line)
    store = builder.store(line, builder.bitcast(dp, vty.as_pointer()), align=64)
    store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
    return context.get_dummy_value()


def _streamable(dst, src, *values):
    return dst == src and dst.dtype in (types.float32, types.float64) and all(v == dst.dtype for v in values)


@intrinsic
def _stream_line(typingctx, dst, j, src, i, m, a, c):
    """One line of `stream_affine`'s result (see `_line_codegen`)."""
    if not _streamable(dst, src, m, a, c):
        return None
    return types.void(dst, j, src, i, m, a, c), _line_codegen


@intrinsic
def _stream_line_at(typingctx, dst, j, src, i, m, a, c, t, v):
    """`_stream_line` with ``v`` at ``dst[t]``, t in the line."""
    if not _streamable(dst, src, m, a, c, v):
        return None
    return types.void(dst, j, src, i, m, a, c, t, v), _line_codegen


@intrinsic
def _store_fence(typingctx):
    """Order the streaming stores before any later store (they bypass the usual ordering)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                            "llvm.x86.sse.sfence")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


# Inlined, as their callers' other helpers (see "Streaming stores" above):
# streamed cross-entropy rows (8192, 1000) took 2.4 ms with calls per row, 1.4 without.
@njit(cache=True, error_model="numpy", inline="always")
def stream_into(src, out, stream):
    """``out[:] = src`` with non-temporal stores for out's whole lines if ``stream``.

    A block that streams ends with `stream_fence` (a fence per call would
    stall every row).
    """
    if not stream:
        copy_into(src, out)
        return
    dt = out.dtype.type
    stream_affine(src, dt(0), dt(1), dt(0), out, -1, dt(0))  # (x - 0) 1 - 0 is x, even -0 and NaN


@njit(cache=True, error_model="numpy", inline="always")
def stream_shifted(src, m, c, out):
    """``out[:] = (src - m) - c`` with non-temporal stores for out's whole lines
    (out may be src); the block ends with `stream_fence`."""
    stream_affine(src, m, out.dtype.type(1), c, out, -1, c)


@njit(cache=True, error_model="numpy", inline="always")
def stream_affine(src, m, a, c, out, t, v):
    """``out[:] = (src - m) a - c``, but ``out[t] = v`` if ``0 <= t``, with
    non-temporal stores for out's whole lines (out may be src); the block ends
    with `stream_fence`.  A streamed line gets v in a register: a plain store
    into the line, or a plain line amid streamed ones, waits for memory."""
    n = src.shape[0]
    per_line = 64 // out.itemsize
    head = min(n, (-out.ctypes.data) % 64 // out.itemsize)
    body = head + (n - head) // per_line * per_line
    for j in range(head):
        out[j] = v if j == t else (src[j] - m) * a - c
    # The line loops stay bare (a test per line cost 7 % in a memory-bound pass).
    if head <= t < body:
        line = t - (t - head) % per_line
        _stream_lines(src, m, a, c, out, head, line)
        _stream_line_at(out, line, src, line, m, a, c, t, v)
        _stream_lines(src, m, a, c, out, line + per_line, body)
    else:
        _stream_lines(src, m, a, c, out, head, body)
    for k in range(body, n):
        out[k] = v if k == t else (src[k] - m) * a - c


@njit(cache=True, error_model="numpy", inline="always")
def _stream_lines(src, m, a, c, out, lo, hi):
    for j in range(lo, hi, 64 // out.itemsize):
        _stream_line(out, j, src, j, m, a, c)


@njit(cache=True, error_model="numpy")
def stream_fence(stream):
    """Make a block's streaming stores visible before the threads join."""
    if stream:
        _store_fence()


@njit(cache=True, error_model="numpy")
def tile_max(x, o, i0, n, m):
    """``m[:n] = max_c x[o, c, i0:i0+n]`` (C >= 1)."""
    x0 = x[o, 0, i0:i0 + n]
    for i in range(n):
        m[i] = x0[i]
    for c in range(1, x.shape[1]):
        xc = x[o, c, i0:i0 + n]
        for i in range(n):
            m[i] = maximum(m[i], xc[i])


@njit(cache=True, error_model="numpy")
def tile_exp(x, o, i0, n, m, e, s):
    """``e[c, :n] = exp(x[o, c, tile] - m)`` and ``s[:n] = sum_c e`` in float64."""
    for i in range(n):
        s[i] = 0.0
    for c in range(x.shape[1]):
        xc = x[o, c, i0:i0 + n]
        ec = e[c, :n]
        # Two loops: fused with the float64 sum, the exp would run at the
        # float64 vector width (half the float32 lanes).
        for i in range(n):
            ec[i] = vexp_neg(xc[i] - m[i])
        for i in range(n):
            s[i] += ec[i]


# A tile's float32 exps are summed in float32 over at most SUB32 classes, a
# row's over at most GROUP32 columns, before they join a float64 sum.
SUB32 = 8
GROUP32 = 2048


@njit(cache=True, error_model="numpy")
def fmax(a, b):
    """``b`` if ``b > a`` else ``a``: a plain vector max, not NaN-propagating.

    Used for the max that only shifts the exponentials: a NaN it drops still
    makes its ``exp`` and hence the row's sum NaN.
    """
    return b if b > a else a


def row_max_fast(x):
    """Max of a non-empty row, NaN ignored (see `fmax`); order set by its length."""
    raise NotImplementedError


@overload(row_max_fast)
def _row_max_fast(x):
    if x.dtype == types.float32:
        return lambda x: _row_max_fast32(x)
    return lambda x: row_max(x)


@njit(cache=True, error_model="numpy")
def _row_max_fast32(x):
    n = x.shape[0]
    m = x[0]
    if n < LANES:
        for j in range(n):
            m = fmax(m, x[j])
        return m
    lanes = carray(_stack_lanes32(), (LANES,))
    first = x[:LANES]
    for k in range(LANES):
        lanes[k] = first[k]
    nb = n // LANES
    for b in range(1, nb):
        chunk = x[b * LANES:(b + 1) * LANES]
        for k in range(LANES):
            lanes[k] = fmax(lanes[k], chunk[k])
    tail = x[nb * LANES:]
    for k in range(tail.shape[0]):
        lanes[k] = fmax(lanes[k], tail[k])
    h = LANES // 2
    while h >= 1:
        for k in range(h):
            lanes[k] = fmax(lanes[k], lanes[k + h])
        h //= 2
    return lanes[0]


@njit(cache=True, error_model="numpy", inline="always")
def four_class_rows(x, o, c, i0, n):
    """Class rows ``c:c+4`` of tile ``i0:i0+n`` of ``x[o]``: the sweeps below take four at once."""
    return x[o, c, i0:i0 + n], x[o, c + 1, i0:i0 + n], x[o, c + 2, i0:i0 + n], x[o, c + 3, i0:i0 + n]


@njit(cache=True, error_model="numpy", inline="always")
def four_packed_rows(e, c, n):
    """Rows ``c:c+4`` of flat packed ``(C, n)`` scratch."""
    return e[c * n:(c + 1) * n], e[(c + 1) * n:(c + 2) * n], e[(c + 2) * n:(c + 3) * n], e[(c + 3) * n:(c + 4) * n]


@njit(cache=True, error_model="numpy")
def tile_max_fast(x, o, i0, n, m):
    """``m[:n] = max_c x[o, c, i0:i0+n]`` ignoring NaN (see `fmax`), C >= 1.

    Four class rows per sweep: four memory streams in flight and a quarter of
    the loads and stores of ``m``.
    """
    C = x.shape[1]
    x0 = x[o, 0, i0:i0 + n]
    for i in range(n):
        m[i] = x0[i]
    c = 1
    while c + 4 <= C:
        xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
        for i in range(n):
            m[i] = fmax(fmax(m[i], fmax(xa[i], xb[i])), fmax(xc[i], xd[i]))
        c += 4
    for c in range(c, C):
        xc = x[o, c, i0:i0 + n]
        for i in range(n):
            m[i] = fmax(m[i], xc[i])


@njit(cache=True, error_model="numpy")
def tile_exp_fast(x, o, i0, n, m, e, s, s32, keep):
    """As `tile_exp` with ``e`` flat ``(C * T)`` scratch, written only if ``keep``
    (a loss or log_softmax needs the sums alone); float32 sums over groups of
    ``SUB32`` classes are folded into the float64 ``s``.

    Four class rows per sweep, as in `tile_max_fast`.
    """
    C = x.shape[1]
    for i in range(n):
        s[i] = 0.0
    c0 = 0
    while c0 < C:
        c1 = min(c0 + SUB32, C)
        for i in range(n):
            s32[i] = 0
        c = c0
        while c + 4 <= c1:
            xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
            if keep:
                ea, eb, ec, ed = four_packed_rows(e, c, n)
                for i in range(n):
                    mi = m[i]
                    va = vexp_neg(xa[i] - mi)
                    vb = vexp_neg(xb[i] - mi)
                    vc = vexp_neg(xc[i] - mi)
                    vd = vexp_neg(xd[i] - mi)
                    ea[i] = va
                    eb[i] = vb
                    ec[i] = vc
                    ed[i] = vd
                    s32[i] += (va + vb) + (vc + vd)
            else:
                for i in range(n):
                    mi = m[i]
                    s32[i] += ((vexp_neg(xa[i] - mi) + vexp_neg(xb[i] - mi))
                               + (vexp_neg(xc[i] - mi) + vexp_neg(xd[i] - mi)))
            c += 4
        for c in range(c, c1):
            xc = x[o, c, i0:i0 + n]
            if keep:
                ec = e[c * n:(c + 1) * n]
                for i in range(n):
                    v = vexp_neg(xc[i] - m[i])
                    ec[i] = v
                    s32[i] += v
            else:
                for i in range(n):
                    s32[i] += vexp_neg(xc[i] - m[i])
        for i in range(n):
            s[i] += s32[i]
        c0 = c1


# A row's first value (a tile position's first class) serves as its exp shift
# when no value lies more than this above it: the exps then stay far from
# float32 overflow.
FIRST_SHIFT_ABOVE = np.float32(30)


def tile_exp_first(x, o, i0, n, e, s, s32, keep):
    """`tile_exp_fast` shifted by each position's first class, ``x[o, 0, tile]``,
    in one pass that also takes the range of the shifted values over the tile.
    Returns whether that shift served, on the terms of `row_exp_sum_first`
    (float32 only: float64 returns False at once); otherwise the caller redoes
    the tile by its max.
    """
    raise NotImplementedError


@overload(tile_exp_first)
def _tile_exp_first(x, o, i0, n, e, s, s32, keep):
    if x.dtype != types.float32:
        return lambda x, o, i0, n, e, s, s32, keep: False
    return lambda x, o, i0, n, e, s, s32, keep: _tile_exp_first32(x, o, i0, n, e, s, s32, keep)


@njit(cache=True, error_model="numpy")
def _tile_exp_first32(x, o, i0, n, e, s, s32, keep):
    C = x.shape[1]
    x0 = x[o, 0, i0:i0 + n]
    hi = lo = sd = np.float32(0)
    for i in range(n):
        s[i] = 0.0
    for c0 in range(0, C, SUB32):
        c1 = min(c0 + SUB32, C)
        for i in range(n):
            s32[i] = 0
        c = c0
        while c + 4 <= c1:
            xa, xb, xc, xd = four_class_rows(x, o, c, i0, n)
            ea, eb, ec, ed = four_packed_rows(e, c, n)
            for i in range(n):
                da = xa[i] - x0[i]
                db = xb[i] - x0[i]
                dc = xc[i] - x0[i]
                dd = xd[i] - x0[i]
                va = vexp_normal(da)
                vb = vexp_normal(db)
                vc = vexp_normal(dc)
                vd = vexp_normal(dd)
                if keep:
                    ea[i] = va
                    eb[i] = vb
                    ec[i] = vc
                    ed[i] = vd
                s32[i] += (va + vb) + (vc + vd)
                hi = fmax_reducible(hi, fmax_reducible(fmax_reducible(da, db), fmax_reducible(dc, dd)))
                lo = fmin_reducible(lo, fmin_reducible(fmin_reducible(da, db), fmin_reducible(dc, dd)))
                sd = add_reassoc(sd, (da + db) + (dc + dd))
            c += 4
        for c in range(c, c1):
            xc = x[o, c, i0:i0 + n]
            ec = e[c * n:(c + 1) * n]
            for i in range(n):
                d = xc[i] - x0[i]
                v = vexp_normal(d)
                if keep:
                    ec[i] = v
                s32[i] += v
                hi = fmax_reducible(hi, d)
                lo = fmin_reducible(lo, d)
                sd = add_reassoc(sd, d)
        for i in range(n):
            s[i] += s32[i]
    return sd == sd and hi <= FIRST_SHIFT_ABOVE and lo >= NORMAL_EXP_MIN


def row_max_normal(x):
    """``(max(x), normal)`` of a non-empty row: normal when every ``exp(x - max)`` is a
    normal float32, so `row_exp_sum` may take `vexp_normal`; False for float64.

    As in `row_max_fast`, a NaN may be dropped from the max.
    """
    raise NotImplementedError


@overload(row_max_normal)
def _row_max_normal(x):
    if x.dtype == types.float32:
        return lambda x: _row_range32(x)
    return lambda x: (row_max_fast(x), False)


@njit(cache=True, error_model="numpy")
def _row_range32(x):
    mx = x[0]
    mn = x[0]
    s = np.float32(0)
    for j in range(x.shape[0]):
        mx = fmax_reducible(mx, x[j])
        mn = fmin_reducible(mn, x[j])
        s = add_reassoc(s, x[j])
    return mx, _normal_exps(mx, mn, s)


@njit(cache=True, error_model="numpy")
def _normal_exps(mx, mn, s):
    # No NaN (the sum s of the row would be NaN), and the lowest x - max in
    # vexp_normal's range (false with an infinity too).
    return s == s and mn - mx >= NORMAL_EXP_MIN


def row_exp_sum(x, m, e, normal):
    """``e = exp(x - m)`` (as `row_exp`) and the float64 sum of e, with m and normal
    from `row_max_normal`.

    float32: float32 sums over groups of ``GROUP32`` (`_exp_group_sum32`)
    added in float64; float64: `row_sum`.
    """
    raise NotImplementedError


@overload(row_exp_sum)
def _row_exp_sum(x, m, e, normal):
    if x.dtype == types.float32:
        def impl32(x, m, e, normal):
            n = x.shape[0]
            s = 0.0
            for g0 in range(0, n, GROUP32):
                g1 = min(n, g0 + GROUP32)
                s += _exp_group_sum32(x[g0:g1], m, e[g0:g1], normal)
            return s
        return impl32

    def impl(x, m, e, normal):
        row_exp(x, m, e)
        return row_sum(e[:x.shape[0]])

    return impl


def row_exp_sum_first(x, e):
    """``(sum(e), m)`` with ``e = exp(x - m)`` for a shift m chosen here.

    float32 shifts by ``x[0]`` in one pass that also takes the row's range, when
    that range shows every exp normal (``NORMAL_EXP_MIN <= x - x[0] <=
    FIRST_SHIFT_ABOVE``, no NaN); otherwise, and for float64, by the row's max
    (`row_max_normal`, then `row_exp_sum`).  The loss and the gradient, formed
    from ``log(sum) + (m - x_t)`` and ``e / sum``, do not depend on the shift.
    """
    raise NotImplementedError


@njit(cache=True, error_model="numpy")
def _exp_sum_by_max(x, e):
    m, normal = row_max_normal(x)
    return row_exp_sum(x, m, e, normal), m


@overload(row_exp_sum_first, inline="always")
def _row_exp_sum_first(x, e):
    if x.dtype != types.float32:
        return lambda x, e: _exp_sum_by_max(x, e)

    def impl32(x, e):
        n = x.shape[0]
        c = x[0]
        s = 0.0
        mx = mn = c
        sx = np.float32(0)
        for g0 in range(0, n, GROUP32):
            g1 = min(n, g0 + GROUP32)
            gs, mx, mn, sx = _exp_range_first32(x, c, e, g0, g1, mx, mn, sx)
            s += gs
        if sx == sx and mx - c <= FIRST_SHIFT_ABOVE and mn - c >= NORMAL_EXP_MIN:
            return s, c
        return _exp_sum_by_max(x, e)

    return impl32


@njit(cache=True, error_model="numpy", inline="always")
def _exp_range_first32(x, c, e, g0, g1, mx, mn, sx):
    # `_exp_group_first32` on x[g0:g1], its whole vectors by the table exp
    # where the host has one (cross-entropy rows of (8192, 1000), in one
    # process: 1.40 -> 1.34 ms; the loss alone 1.09 -> 1.04 ms).
    g16 = g0 + (g1 - g0) // 16 * 16 if HAS_TABLE_EXP else g0
    s, mx, mn, sx = exp_vectors_first32(x, e, g0, g16, c, mx, mn, sx)
    if g16 < g1:
        rest, mx, mn, sx = _exp_group_first32(x[g16:g1], c, e[g16:g1], mx, mn, sx)
        s += rest
    return s, mx, mn, sx


@njit(cache=True, error_model="numpy", inline="always")
def _exp_group_first32(x, c, e, mx, mn, sx):
    # `_exp_group_sum32` with vexp_normal, whose results hold only if the
    # range taken alongside says so.
    s = np.float32(0)
    for j in range(x.shape[0]):
        v = vexp_normal(x[j] - c)
        e[j] = v
        s = add_reassoc(s, v)
        mx = fmax_reducible(mx, x[j])
        mn = fmin_reducible(mn, x[j])
        sx = add_reassoc(sx, x[j])
    return s, mx, mn, sx


@njit(cache=True, error_model="numpy")
def _exp_group_sum32(x, m, e, normal):
    # add_reassoc: LLVM sums in its own lanes, in registers (explicit stack
    # lanes stayed in memory here), in an order set by the length and the CPU.
    # LLVM unswitches the loop on `normal`: one exp per loop version.
    s = np.float32(0)
    for j in range(x.shape[0]):
        v = vexp_normal(x[j] - m) if normal else vexp_neg(x[j] - m)
        e[j] = v
        s = add_reassoc(s, v)
    return s


def row_exp_sum_next_max(x, m, e, following):
    """``(sum(exp(x - m)), max(following))``, the sum as in `row_exp_sum` (with the
    exact exp), the max as in `row_max_fast`.  e is scratch of x's length.

    The next row's max pass runs in this row's exp loop: its loads from
    memory overlap the exp work instead of stalling a loop of their own.
    float32 keeps no exps.  (Also tracking what `row_max_normal` needs, for
    the fast exp, made this loop slower: 1.5 -> 1.7 ms on (8192, 1000).)
    """
    raise NotImplementedError


@overload(row_exp_sum_next_max, inline="always")
def _row_exp_sum_next_max(x, m, e, following):
    if x.dtype == types.float32:
        def impl32(x, m, e, following):
            n = x.shape[0]
            s = 0.0
            mx = following[0]
            for g0 in range(0, n, GROUP32):
                g1 = min(n, g0 + GROUP32)
                part, mx = _exp_group_sum_max32(x[g0:g1], m, following[g0:g1], mx)
                s += part
            return s, mx
        return impl32

    def impl(x, m, e, following):
        mx = following[0]
        for j in range(x.shape[0]):
            e[j] = vexp_neg(x[j] - m)
            mx = fmax_reducible(mx, following[j])
        return row_sum(e[:x.shape[0]]), mx

    return impl


@njit(cache=True, error_model="numpy", inline="always")
def _exp_group_sum_max32(x, m, following, mx):
    s = np.float32(0)
    for j in range(x.shape[0]):
        s = add_reassoc(s, vexp_neg(x[j] - m))
        mx = fmax_reducible(mx, following[j])
    return s, mx
