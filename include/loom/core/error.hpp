// loom::Error and the checks that raise it.
// Every user-facing failure in loom is a loom::Error whose message names the
// operation and the offending values (shapes, dtypes, indices, files).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace loom {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}
}  // namespace detail

}  // namespace loom

// LOOM_CHECK(cond, "op: ", what, ...) throws loom::Error with the parts joined.
#define LOOM_CHECK(cond, ...)                                      \
  do {                                                             \
    if (!(cond)) throw ::loom::Error(::loom::detail::concat(__VA_ARGS__)); \
  } while (0)

#define LOOM_FAIL(...) throw ::loom::Error(::loom::detail::concat(__VA_ARGS__))
