#pragma once
// check(cond): a fuzz oracle. Names the broken property (and its line) before aborting, so a
// crash report says which oracle failed.
#include <cstdio>
#include <cstdlib>

#define check(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "oracle failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)
