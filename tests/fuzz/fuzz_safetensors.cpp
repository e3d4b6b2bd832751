// libFuzzer target: parse_safetensors over arbitrary bytes.
// A loom::Error is the expected answer to a bad file. A crash, a sanitizer
// report, a huge allocation (-malloc_limit_mb) or any other exception is a
// finding. An accepted file must also survive a round trip: writing what was
// parsed and parsing it again gives the same tensors and metadata.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <loom/io/safetensors.hpp>
#include <string>

namespace {

bool same(const loom::io::SafetensorsContents& a, const loom::io::SafetensorsContents& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& [na, ta] = a.tensors[i];
    const auto& [nb, tb] = b.tensors[i];
    if (na != nb || ta.dtype() != tb.dtype() || ta.shape() != tb.shape()) return false;
    const size_t n = static_cast<size_t>(ta.numel()) * loom::itemsize(ta.dtype());
    if (n > 0 && std::memcmp(ta.raw_data(), tb.raw_data(), n) != 0) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::io::SafetensorsContents parsed;
  try {
    parsed = loom::io::parse_safetensors(data, size, "fuzz-input");
  } catch (const loom::Error&) {
    return 0;
  }
  std::string again;
  loom::io::write_safetensors([&](const void* p, size_t n) { again.append(static_cast<const char*>(p), n); },
                              parsed.tensors, parsed.metadata);
  const auto reparsed =
      loom::io::parse_safetensors(reinterpret_cast<const uint8_t*>(again.data()), again.size(), "fuzz-rewritten");
  if (!same(parsed, reparsed)) std::abort();
  return 0;
}
