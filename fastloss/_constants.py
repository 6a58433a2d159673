"""Tuning constants and numeric limits of the kernels: their one definition for both backends.

The Numba kernels import these names; ``setup.py`` writes them into the C
header ``fastloss/_cython/_constants.h`` (each as ``FL_<NAME>``) when it builds
the Cython kernels, so both backends always take the same values.  This module
imports nothing, so the build can read it without importing fastloss.

Why each value is what it is (and what else was tried) is in
``docs/performance.md``.
"""

# Work per block of positions, in elements: a block's data and scratch stay in
# L2 between the passes over it, and block bounds depend on the shape only.
BLOCK_ELEMS = 32768

# Positions x classes per tile of a spatial (inner > 1) map: 256 KiB of
# float32, which with its packed exps stays in a 1 MiB L2.
TILE_ELEMS = 65536
# The fewest positions in a tile.
TILE_MIN = 16

# Results of at least this many bytes are written with streaming
# (non-temporal) stores where the machine layer has them.
STREAM_BYTES = 8 << 20
# A row's gradient is streamed from a scratch row of its exps only when the
# row fits in L1 (this many bytes or fewer).
STREAM_ROW_BYTES = 16 << 10

# Float32 exps of a row are summed in float32 over groups of this many
# values, and the group sums in float64.
ROW_EXP_GROUP = 2048
# Float32 exps of a tile position are summed in float32 over groups of this
# many classes, and the group sums in float64.
TILE_EXP_GROUP = 8

# A row's first value (a tile position's first class) serves as its exp shift
# when no value lies more than this above it: exps then stay far from float32
# overflow, and the one-pass shift is as exact as the max.
FIRST_SHIFT_ABOVE = 30.0
# exp(x) of a float32 x is a normal number for x >= NORMAL_EXP_MIN: the exp
# that skips the subnormal scaling serves a row whose x - shift stays above it.
NORMAL_EXP_MIN = -86.5
# Below this a float32 exp rounds to 0: the general exp clamps its argument here.
EXP_FLOAT32_MIN = -110.0
