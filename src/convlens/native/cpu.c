/* cpu.c: which of the compiled loops this CPU runs (vectors.h's dispatch), for the reports and the
 * calibration's key: 512 (the AVX-512 loops), 256 (AVX2 and FMA) or 0 (the baseline C loops). A
 * build for one instruction set (setup.py's CONVLENS_NATIVE_ARCH) says what that set has. */
#include "vectors.h"

int convlens_vector_bits(void) {
#ifdef HAVE_AVX512_LOOPS
    if (cpu_has_avx512()) return 512;
#endif
    return cpu_has_avx2() ? 256 : 0;
}
