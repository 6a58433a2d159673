"""Blocks of work whose bounds depend on the array shape only.

Every per-block partial sum, and their sum in block order, is therefore the
same for any thread count.

* ``inner == 1``: a block is ``rows_per_block`` consecutive rows of C
  contiguous values (`row_blocking`).
* ``inner > 1``: a block is one ``(outer index, tile)`` pair, a tile being up
  to ``T`` consecutive inner positions (`tile_blocking`); a kernel walks the C
  class rows of a tile, each a contiguous slice of length ``n <= T``.

Both aim at ``BLOCK_ELEMS`` elements per block (``TILE_ELEMS`` per tile), so a
block's data and its scratch stay in L2 between the passes over it.
"""

from .._constants import BLOCK_ELEMS, TILE_ELEMS, TILE_MIN
from .cache import njit

# Blocks are run in up to BLOCK_GROUPS contiguous groups, each with one set of scratch.
BLOCK_GROUPS = 64


@njit(cache=True, error_model="numpy")
def row_blocking(n_rows, C):
    """``(rows_per_block, n_blocks)`` for ``n_rows`` contiguous rows of C values."""
    rows = max(1, BLOCK_ELEMS // max(C, 1))
    return rows, (n_rows + rows - 1) // rows


@njit(cache=True, error_model="numpy")
def tile_blocking(outer, C, inner):
    """``(T, tiles_per_outer, n_blocks)`` for an ``(outer, C, inner)`` array."""
    # A multiple of 16 elements: tiles of a row meet on 64-byte steps, so
    # threads writing neighbouring tiles of line-aligned rows share no line.
    T = min(inner, max(TILE_MIN, TILE_ELEMS // max(C, 1) // 16 * 16))
    tiles = (inner + T - 1) // T
    return T, tiles, outer * tiles


@njit(cache=True, error_model="numpy")
def block_range(b, size, n):
    """Bounds of block ``b`` of ``size`` items out of ``n``."""
    lo = b * size
    return lo, min(lo + size, n)


@njit(cache=True, error_model="numpy")
def sum_partials(partials):
    """Sum of the per-block partials, in block order."""
    total = 0.0
    for b in range(partials.shape[0]):
        total += partials[b]
    return total
