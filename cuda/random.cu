// The random entries of the CUDA table: Philox draws (kernels and floor in
// philox.cuh), element for element the CPU's stream.
#include "kernels.hpp"
#include "loops.cuh"
#include "philox.cuh"

namespace loom::cuda {

namespace {
void draw(const Tensor& out, uint64_t seed, uint64_t block, bool normal) {
  OnDevice on(out, normal ? "randn" : "rand");
  philox_kernels::run(out, seed, block, normal, on.stream, check_launch);
}
}  // namespace

void uniform(const Tensor& out, uint64_t seed, uint64_t block) { draw(out, seed, block, false); }
void normal(const Tensor& out, uint64_t seed, uint64_t block) { draw(out, seed, block, true); }

}  // namespace loom::cuda
