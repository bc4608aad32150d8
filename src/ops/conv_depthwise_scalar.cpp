// The depthwise plane kernel built for the scalar instruction set (see conv_depthwise_impl.h);
// the build gives *_avx2.cpp / *_avx512.cpp files their ISA flags.
#define DEPTHWISE_NAMESPACE depthwise_scalar
#include "ops/conv_depthwise_impl.h"
