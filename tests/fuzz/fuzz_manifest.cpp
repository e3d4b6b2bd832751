// libFuzzer target: parse_manifest over arbitrary text.
// A loom::Error is the expected answer to a bad manifest; a crash, a sanitizer
// report or any other exception is a finding. An accepted manifest must
// survive a round trip through manifest_to_json.
#include <cstdint>
#include <cstdlib>
#include <loom/io/manifest.hpp>
#include <string>

#include "loom/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  loom::io::Manifest m;
  try {
    m = loom::io::parse_manifest(text, "fuzz-input");
  } catch (const loom::Error&) {
    return 0;
  }
  const loom::io::Manifest back = loom::io::parse_manifest(loom::io::manifest_to_json(m), "fuzz-rewritten");
  if (back.files.size() != m.files.size()) std::abort();
  for (size_t i = 0; i < m.files.size(); ++i) {
    const auto &a = m.files[i], &b = back.files[i];
    if (a.name != b.name || a.bytes != b.bytes || a.sha256 != b.sha256) std::abort();
  }
  return 0;
}
