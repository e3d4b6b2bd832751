// The kernel variants' switch (src/kernels/variants.hpp): LOOM_KERNEL_VARIANTS
// names the variants a process runs; a name this build lacks is an error.
#include <catch2/catch.hpp>

#include <cctype>
#include <string>

#include "kernels/variants.hpp"

using namespace loom::kernels;

TEST_CASE("LOOM_KERNEL_VARIANTS lists variants by name, and an unknown one is named", "[variants]") {
  REQUIRE_FALSE(kernel_variants().empty());
  const std::string first = kernel_variants().front().name;
  CHECK(parse_kernel_variants("").empty());
  CHECK(parse_kernel_variants(first) == std::set<std::string>{first});
  CHECK(parse_kernel_variants("," + first + ",," + first) == std::set<std::string>{first});
  CHECK_THROWS_WITH(parse_kernel_variants(first + ",fast_everything"),
                    Catch::Contains("LOOM_KERNEL_VARIANTS: unknown kernel variant 'fast_everything'") &&
                        Catch::Contains(first));
  CHECK_THROWS_WITH(variant_on("fast_everything"), Catch::Contains("not a registered kernel variant"));
}

TEST_CASE("kernel variants have file-safe names and say what they change", "[variants]") {
  for (const KernelVariant& v : kernel_variants()) {
    const std::string name = v.name;
    INFO(name);
    CHECK(!name.empty());
    for (unsigned char c : name) CHECK((std::islower(c) || std::isdigit(c) || c == '_'));
    CHECK(std::string(v.summary).size() > 20);
  }
}
