// The Winograd input/output transforms built with baseline x86-64 flags (the portable path: the
// vectors become SSE code), see winograd_impl.h.
#define WINOGRAD_NAMESPACE winograd_scalar
#include "ops/winograd_impl.h"
