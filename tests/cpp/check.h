// A few assertion macros for the ctest executables: no framework needed.
// Each failure prints file:line and what went wrong; main returns
// check::result() so ctest sees a non-zero exit.
#pragma once

#include "volconv/params.h"

#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>

namespace check {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
  ++failures();
}

inline int result(const char* name) {
  if (failures() == 0) {
    std::printf("%s: all checks passed\n", name);
    return 0;
  }
  std::printf("%s: %d check(s) failed\n", name, failures());
  return 1;
}

// Runs f; passes when it throws exactly an E (or a subclass) whose what()
// equals `expected` (exact) or contains it (!exact).
template <class E, class F>
void throws(F&& f, const std::string& expected, bool exact, const char* expr, const char* file, int line) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    const bool ok = exact ? msg == expected : msg.find(expected) != std::string::npos;
    if (!ok)
      fail(file, line,
           std::string(expr) + " threw the right type with message\n    got:      " + msg + "\n    expected" +
               (exact ? ":" : " (part):") + " " + expected);
    return;
  } catch (const std::exception& e) {
    fail(file, line, std::string(expr) + " threw " + typeid(e).name() + " (not " + typeid(E).name() + "): " + e.what());
    return;
  } catch (...) {
    fail(file, line, std::string(expr) + " threw a non-std exception");
    return;
  }
  fail(file, line, std::string(expr) + " did not throw; expected: " + expected);
}

template <class F>
void no_throw(F&& f, const char* expr, const char* file, int line) {
  try {
    f();
  } catch (const std::exception& e) {
    fail(file, line, std::string(expr) + " threw: " + e.what());
  }
}

// ConvParams from its five fields (the tests build many).
inline volconv::ConvParams conv_params(volconv::Int3 stride, volconv::Int3 lo, volconv::Int3 hi,
                                       volconv::Int3 dil, std::int64_t groups) {
  volconv::ConvParams p;
  p.stride = stride;
  p.padding_lo = lo;
  p.padding_hi = hi;
  p.dilation = dil;
  p.groups = groups;
  return p;
}

}  // namespace check

#define CHECK(cond) \
  ((cond) ? void(0) : ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"))
#define CHECK_EQ(a, b)                                                                              \
  (((a) == (b)) ? void(0) : ::check::fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b ")"))
// The statement must throw E with exactly this message.
#define CHECK_THROWS_MSG(E, stmt, msg) \
  ::check::throws<E>([&] { stmt; }, msg, true, #stmt, __FILE__, __LINE__)
// The statement must throw E with a message containing this text.
#define CHECK_THROWS_HAS(E, stmt, part) \
  ::check::throws<E>([&] { stmt; }, part, false, #stmt, __FILE__, __LINE__)
#define CHECK_NO_THROW(stmt) ::check::no_throw([&] { stmt; }, #stmt, __FILE__, __LINE__)
