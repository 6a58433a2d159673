"""The Cython kernels compiled for x86-64-v4 (AVX-512) by setup.py; see fastloss._cython."""
