// A hint inside spin-wait loops: lets the sibling hyperthread run and saves power while waiting.
#pragma once
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TESSERA_CPU_RELAX() _mm_pause()
#else
#include <thread>
#define TESSERA_CPU_RELAX() std::this_thread::yield()
#endif
