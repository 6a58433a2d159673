"""What the Cython build runs on: OpenMP threads, the CPU's x86-64 level, the compiler.

omp_set_num_threads sets the calling thread's own copy of the OpenMP
nthreads ICV, so Python threads that pick different counts do not interfere.
A build without OpenMP (setup.py found no OpenMP flag its compiler takes)
runs every kernel on one thread: ``OPENMP`` is False there.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FL_OPENMP _OPENMP
    static int fl_max_threads(void) { return omp_get_max_threads(); }
    static void fl_set_threads(int n) { omp_set_num_threads(n); }
    #else
    #define FL_OPENMP 0
    static int fl_max_threads(void) { return 1; }
    static void fl_set_threads(int n) { (void)n; }
    #endif

    /* The compiler, as it names itself. */
    #if defined(__clang__)
    #define FL_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FL_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FL_STRINGIFY(x) #x
    #define FL_VERSION_TEXT(x) FL_STRINGIFY(x)
    #define FL_COMPILER "MSVC " FL_VERSION_TEXT(_MSC_FULL_VER)
    #else
    #define FL_COMPILER "unknown"
    #endif

    /* The x86-64 micro-architecture level of this CPU (1, 3 or 4), from CPUID
     * and from XCR0, which says whether the OS saves the AVX and AVX-512
     * registers; 1 elsewhere.  Read directly, so any compiler gives the same
     * answer (gcc's __builtin_cpu_supports knows the levels only from gcc 12).
     * x86-64-v3 is AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT and MOVBE on top of
     * v2 (SSE4.2, POPCNT...); v4 adds AVX-512 F, BW, CD, DQ and VL. */
    #if defined(__x86_64__) || defined(_M_X64)
    #if defined(_MSC_VER) && !defined(__clang__)
    #include <intrin.h>
    static void fl_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
        int v[4];
        __cpuidex(v, (int)leaf, (int)sub);
        r[0] = (unsigned)v[0]; r[1] = (unsigned)v[1]; r[2] = (unsigned)v[2]; r[3] = (unsigned)v[3];
    }
    static unsigned long long fl_xcr0(void) { return _xgetbv(0); }
    #else
    #include <cpuid.h>
    static void fl_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    }
    static unsigned long long fl_xcr0(void) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        return ((unsigned long long)hi << 32) | lo;
    }
    #endif
    #define FL_HAS(word, bit) (((word) >> (bit)) & 1u)
    static int fastloss_cpu_level(void) {
        unsigned basic[4], leaf1[4], leaf7[4], extended[4];
        int v3, v4;
        fl_cpuid(0, 0, basic);
        fl_cpuid(0x80000000u, 0, extended);
        if (basic[0] < 7 || extended[0] < 0x80000001u) return 1;
        fl_cpuid(1, 0, leaf1);
        fl_cpuid(7, 0, leaf7);
        fl_cpuid(0x80000001u, 0, extended);
        if (!FL_HAS(leaf1[2], 27)) return 1;  /* OSXSAVE: XCR0 readable */
        v3 = FL_HAS(leaf1[2], 12) && FL_HAS(leaf1[2], 20) && FL_HAS(leaf1[2], 22)  /* FMA SSE4.2 MOVBE */
             && FL_HAS(leaf1[2], 23) && FL_HAS(leaf1[2], 28) && FL_HAS(leaf1[2], 29)  /* POPCNT AVX F16C */
             && FL_HAS(leaf7[1], 3) && FL_HAS(leaf7[1], 5) && FL_HAS(leaf7[1], 8)     /* BMI1 AVX2 BMI2 */
             && FL_HAS(extended[2], 5)                                                /* LZCNT */
             && (fl_xcr0() & 0x6) == 0x6;                                  /* SSE and AVX state */
        v4 = v3 && FL_HAS(leaf7[1], 16) && FL_HAS(leaf7[1], 17) && FL_HAS(leaf7[1], 28) /* F DQ CD */
             && FL_HAS(leaf7[1], 30) && FL_HAS(leaf7[1], 31)                             /* BW VL */
             && (fl_xcr0() & 0xe0) == 0xe0;                      /* opmask, ZMM upper halves, ZMM16-31 */
        return v4 ? 4 : v3 ? 3 : 1;
    }
    #else
    static int fastloss_cpu_level(void) { return 1; }
    #endif
    """
    int FL_OPENMP
    const char* FL_COMPILER
    int fl_max_threads() nogil
    void fl_set_threads(int n) nogil
    int fastloss_cpu_level() nogil

#: Whether the kernels were built with OpenMP (else they run on one thread).
OPENMP = FL_OPENMP != 0
#: The OpenMP version the build's compiler implements, as its ``_OPENMP`` date (``yyyymm``), or 0.
OPENMP_VERSION = FL_OPENMP
#: The compiler that built the extensions, as it names itself.
COMPILER = FL_COMPILER.decode()


def set_num_threads(int n):
    """Use ``n`` OpenMP threads in the kernels this thread calls next (one thread without OpenMP)."""
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    fl_set_threads(n)


def get_num_threads():
    """Number of OpenMP threads the kernels called from this thread will use."""
    return fl_max_threads()


def cpu_levels():
    """The kernel builds this CPU can run beyond the baseline, best first.

    ``x86_64_v4`` is x86-64-v4 (AVX-512), ``x86_64_v3`` is x86-64-v3 (AVX2, FMA).
    """
    level = fastloss_cpu_level()
    return [f"x86_64_v{v}" for v in (4, 3) if level >= v]
