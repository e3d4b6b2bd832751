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

void dropout_mask(const Tensor& out, double p, double scale, uint64_t seed, uint64_t block) {
  OnDevice on(out, "dropout");
  philox_kernels::run_dropout_mask(out, p, scale, seed, block, on.stream, check_launch);
}

}  // namespace loom::cuda
