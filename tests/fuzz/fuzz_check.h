// FUZZ_CHECK: a fuzz target's assertion. It aborts with the file, line and
// condition (what libFuzzer reports as a crash), in every build mode:
// assert() would vanish under NDEBUG and CHECK would pull in glog.
#ifndef DDV_TESTS_FUZZ_FUZZ_CHECK_H_
#define DDV_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
      std::abort();                                                         \
    }                                                                       \
  } while (false)

#endif  // DDV_TESTS_FUZZ_FUZZ_CHECK_H_
