// Philox uniforms many blocks at a time: the CPU's draws (rand, randn,
// dropout) in bulk, element for element loom::philox_uniform4's.
#pragma once

#include <cstdint>

namespace loom::cpu {

// out[4 * b + lane] = philox_uniform4(seed, first_block + b)[lane] for b in
// [0, blocks).
void philox_uniforms(uint64_t seed, uint64_t first_block, int64_t blocks, float* out);

}  // namespace loom::cpu
