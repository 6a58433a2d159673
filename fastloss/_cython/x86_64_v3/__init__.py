"""The Cython kernels compiled for x86-64-v3 (AVX2, FMA) by setup.py; see fastloss._cython."""
