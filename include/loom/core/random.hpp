// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011).
// Element i of a draw depends only on (seed, offset + i), never on the order
// or the thread that computes it, so the CPU and CUDA backends produce the
// same stream and a checkpoint only needs (seed, offset).
#pragma once

#include <array>
#include <cstdint>

namespace loom {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x10057u) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }

  // Reserves n 128-bit Philox blocks and returns the first block's counter.
  uint64_t advance(uint64_t blocks) { uint64_t start = offset_; offset_ += blocks; return start; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator used when an op is not given one.
Generator& default_generator();
void manual_seed(uint64_t seed);

// The four uniform floats in [0, 1) of Philox block `block` for `seed`.
std::array<float, 4> philox_uniform4(uint64_t seed, uint64_t block);

}  // namespace loom
