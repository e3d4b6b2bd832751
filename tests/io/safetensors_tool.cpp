// loom_safetensors_tool: the C++ side of the safetensors interop test
// (tests/io/safetensors_interop.py runs it against the reference Python
// package).
//
//   loom_safetensors_tool write-sample PATH              writes the sample with loom
//   loom_safetensors_tool check-sample PATH [--without NAME]...
//                                                        loads PATH with loom and checks it
//                                                        holds exactly the sample
//
// The sample is defined by bit patterns, here and in the Python script, so
// that both sides compare bytes exactly (signed zeros, subnormals, infinities
// and a NaN payload included).
#include <cstdint>
#include <cstring>
#include <iostream>
#include <loom/io/safetensors.hpp>
#include <loom/loom.hpp>
#include <set>
#include <string>
#include <vector>

using namespace loom;
using namespace loom::io;

namespace {

template <class Bits>
Tensor from_bits(DType dtype, const Shape& shape, const std::vector<Bits>& bits) {
  static_assert(sizeof(Bits) <= 8);
  Tensor t = empty(shape, dtype);
  LOOM_CHECK(static_cast<size_t>(t.numel()) == bits.size() && itemsize(dtype) == sizeof(Bits),
             "sample: bad definition for ", shape_str(shape));
  if (!bits.empty()) std::memcpy(t.raw_data(), bits.data(), bits.size() * sizeof(Bits));
  return t;
}

Tensor big_tensor() {  // [64, 33] f32, value 0.25 * i - 100 (exact in f32)
  std::vector<float> v(64 * 33);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 100.0f;
  return from_vector(v, {64, 33});
}

// Must match SAMPLE in safetensors_interop.py.
NamedTensors sample() {
  return {
      {"f32", from_bits<uint32_t>(DType::f32, {2, 4},
                                  {0x00000000, 0x80000000, 0x3fc00000, 0xc0100000, 0x7f800000, 0x00000001, 0x7f7fffff,
                                   0x7fc00001})},
      {"f64", from_bits<uint64_t>(DType::f64, {4},
                                  {0x400921fb54442d18ull, 0x8000000000000000ull, 0x7fefffffffffffffull, 0x1ull})},
      {"f16", from_bits<uint16_t>(DType::f16, {2, 2}, {0x3c00, 0xc100, 0x7bff, 0x0001})},
      {"bf16", from_bits<uint16_t>(DType::bf16, {3}, {0x3f80, 0xc040, 0x7f80})},
      {"i32", from_vector<int32_t>({INT32_MIN, -1, INT32_MAX}, {3})},
      {"i64", from_vector<int64_t>({INT64_MIN, -1, 0, INT64_MAX}, {2, 1, 2})},
      {"u8", from_vector<uint8_t>({0, 1, 127, 128, 255}, {5})},
      {"bool", from_vector<bool>({true, false, false, true}, {2, 2})},
      {"scalar", scalar_tensor(42.5, DType::f64)},
      {"empty", zeros({0, 3})},
      {"big", big_tensor()},
  };
}

const Metadata kMetadata = {{"format", "pt"}, {"producer", "loom-interop"}};

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * itemsize(c.dtype()));
}

int write_sample(const std::string& path) {
  NamedTensors tensors = sample();
  // Write some from non-contiguous views of the same values.
  for (auto& [name, t] : tensors) {
    if (name == "big") t = t.t().contiguous().t();  // a transposed view of [33, 64]
    if (name == "f32") t = t.t().contiguous().t();
  }
  save_safetensors(path, tensors, kMetadata);
  std::cout << "wrote " << tensors.size() << " tensors to " << path << "\n";
  return 0;
}

int check_sample(const std::string& path, const std::set<std::string>& without) {
  const NamedTensors got = load_safetensors(path);
  int failures = 0;
  auto fail = [&](const std::string& what) {
    std::cerr << "check-sample: " << path << ": " << what << "\n";
    ++failures;
  };
  std::set<std::string> seen;
  for (const auto& [name, t] : got) {
    seen.insert(name);
    bool known = false;
    for (const auto& [want_name, want] : sample()) {
      if (want_name != name) continue;
      known = true;
      if (t.dtype() != want.dtype())
        fail(name + ": dtype " + dtype_name(t.dtype()) + ", expected " + dtype_name(want.dtype()));
      else if (t.shape() != want.shape())
        fail(name + ": shape " + shape_str(t.shape()) + ", expected " + shape_str(want.shape()));
      else if (bytes_of(t) != bytes_of(want))
        fail(name + ": values differ");
    }
    if (!known) fail("unexpected tensor " + name);
  }
  for (const auto& [name, t] : sample())
    if (!seen.count(name) && !without.count(name)) fail("missing tensor " + name);
  const Metadata metadata = safetensors_metadata(path);
  for (const auto& [k, v] : kMetadata)
    if (!metadata.count(k) || metadata.at(k) != v) fail("metadata \"" + k + "\" is not \"" + v + "\"");
  if (failures == 0) std::cout << "check-sample: " << path << ": " << got.size() << " tensors match the sample\n";
  return failures == 0 ? 0 : 1;
}

int usage() {
  std::cerr << "usage: loom_safetensors_tool write-sample PATH\n"
               "       loom_safetensors_tool check-sample PATH [--without NAME]...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string command = argv[1], path = argv[2];
  try {
    if (command == "write-sample" && argc == 3) return write_sample(path);
    if (command == "check-sample") {
      std::set<std::string> without;
      for (int i = 3; i < argc; ++i) {
        if (std::string(argv[i]) != "--without" || i + 1 >= argc) return usage();
        without.insert(argv[++i]);
      }
      return check_sample(path, without);
    }
    return usage();
  } catch (const Error& e) {
    std::cerr << "loom_safetensors_tool: " << e.what() << "\n";
    return 1;
  }
}
