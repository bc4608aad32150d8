// The Winograd input/output transforms built for the avx512 instruction set, see winograd_impl.h;
// the build gives *_avx2.cpp / *_avx512.cpp files their ISA flags.
#define WINOGRAD_NAMESPACE winograd_avx512
#include "ops/winograd_impl.h"
