#include "cli.hpp"

#include <cstdio>
#include <exception>

#include "loom/core/error.hpp"

namespace loom::cli {

int run_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.message.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\n%s: error: %s\n", program, e.what());
    return 1;
  }
}

std::string take_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw UsageError{std::string("option ") + argv[i] + " needs a value"};
  return argv[++i];
}

}  // namespace loom::cli
