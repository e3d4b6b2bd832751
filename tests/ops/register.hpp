// Registers one Catch2 test case per op case at start-up, so that ctest lists
// (and can run) every op by name: "gradcheck.add", "golden.matmul", ...
#pragma once

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "op_table.hpp"

namespace loom::testing {

class CaseInvoker : public Catch::ITestInvoker {
 public:
  CaseInvoker(const OpCase* c, std::function<void(const OpCase&)> check) : case_(c), check_(std::move(check)) {}
  void invoke() const override { check_(*case_); }

 private:
  const OpCase* case_;
  std::function<void(const OpCase&)> check_;
};

// Registers `check` for every case that `wanted` accepts, named prefix + case name.
inline bool register_cases(const std::string& prefix, const std::string& tag,
                           std::function<bool(const OpCase&)> wanted, std::function<void(const OpCase&)> check) {
  static std::deque<std::string> names;  // Catch keeps references to these
  static std::deque<std::string> tags;
  static std::deque<std::unique_ptr<Catch::AutoReg>> registrations;
  tags.push_back(tag);
  for (const auto& c : op_cases()) {
    if (!wanted(c)) continue;
    names.push_back(prefix + c.name);
    registrations.push_back(std::make_unique<Catch::AutoReg>(
        new CaseInvoker(&c, check), Catch::SourceLineInfo(__FILE__, static_cast<std::size_t>(__LINE__)),
        Catch::StringRef(), Catch::NameAndTags(Catch::StringRef(names.back()), Catch::StringRef(tags.back()))));
  }
  return true;
}

}  // namespace loom::testing
