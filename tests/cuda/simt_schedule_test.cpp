// The SIMT emulator's schedules (cuda/simt_schedule.hpp): the serial ones
// must turn a race, a missing barrier or a dependence between blocks into a
// changed result, and must leave a correctly synchronised kernel's result as
// the concurrent schedule gives it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "simt.cuh"

namespace simt = loom::simt;

namespace {

// Each thread writes its slot of shared memory, then reads its neighbour's:
// the next thread of the block, or of the warp. Without the barrier between
// the two, the read races with the neighbour's write.
enum class Neighbour { block, warp };

LOOM_SIMT_GLOBAL void read_neighbour(float* out, Neighbour scope, bool barrier) {
  float* slot = simt::dynamic_shared<float>();
  const unsigned t = simt::thread_x(), n = simt::block_dim_x();
  slot[t] = static_cast<float>(t + 1);
  unsigned next = (t + 1) % n;
  if (scope == Neighbour::warp) {
    next = (t & ~31u) | ((t + 1) & 31u);
    if (barrier) simt::sync_warp();
  } else if (barrier) {
    simt::sync_block();
  }
  out[simt::block_x() * n + t] = slot[next];
}

std::vector<float> run_neighbour(simt::Schedule schedule, Neighbour scope, bool barrier) {
  const unsigned blocks = 2, threads = 128;
  std::vector<float> out(blocks * threads, -1.0f);
  simt::ScheduleGuard guard(schedule);
  simt::launch(simt::Dim3(blocks), simt::Dim3(threads), threads * sizeof(float), {}, read_neighbour, out.data(),
               scope, barrier);
  return out;
}

std::vector<float> expected_neighbour(Neighbour scope) {
  const unsigned blocks = 2, threads = 128;
  std::vector<float> out(blocks * threads);
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) {
      const unsigned next = scope == Neighbour::warp ? (t & ~31u) | ((t + 1) & 31u) : (t + 1) % threads;
      out[b * threads + t] = static_cast<float>(next + 1);
    }
  return out;
}

// Bitwise equality: NaN (the poisoned shared memory) must not compare equal
// to a value, and must equal itself.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

size_t count_nan(const std::vector<float>& v) {
  size_t n = 0;
  for (float x : v) n += std::isnan(x) ? 1 : 0;
  return n;
}

constexpr simt::Schedule kAll[] = {simt::Schedule::concurrent, simt::Schedule::serial_ascending,
                                   simt::Schedule::serial_descending};

}  // namespace

TEST_CASE("emulator schedules: a synchronised kernel gives the same result under every schedule",
          "[simt][schedule]") {
  for (Neighbour scope : {Neighbour::block, Neighbour::warp}) {
    for (simt::Schedule s : kAll) {
      CAPTURE(static_cast<int>(scope), static_cast<int>(s));
      CHECK(same_bits(run_neighbour(s, scope, true), expected_neighbour(scope)));
    }
  }
}

TEST_CASE("emulator schedules: a missing sync_block changes the result under both serial schedules",
          "[simt][schedule]") {
  const std::vector<float> want = expected_neighbour(Neighbour::block);
  const std::vector<float> ascending = run_neighbour(simt::Schedule::serial_ascending, Neighbour::block, false);
  const std::vector<float> descending = run_neighbour(simt::Schedule::serial_descending, Neighbour::block, false);
  // Ascending: every thread but the last reads its neighbour's slot before the
  // neighbour wrote it (the NaN poison). Descending: only the last thread,
  // whose neighbour is thread 0, runs before its neighbour.
  CHECK(count_nan(ascending) == 2 * 127);
  CHECK(count_nan(descending) == 2 * 1);
  CHECK_FALSE(same_bits(ascending, want));
  CHECK_FALSE(same_bits(descending, want));
  CHECK_FALSE(same_bits(ascending, descending));
}

TEST_CASE("emulator schedules: a missing sync_warp changes the result under both serial schedules",
          "[simt][schedule]") {
  const std::vector<float> want = expected_neighbour(Neighbour::warp);
  const std::vector<float> ascending = run_neighbour(simt::Schedule::serial_ascending, Neighbour::warp, false);
  const std::vector<float> descending = run_neighbour(simt::Schedule::serial_descending, Neighbour::warp, false);
  CHECK(count_nan(ascending) == 2 * 4 * 31);  // per warp, every lane but the last
  CHECK(count_nan(descending) == 2 * 4 * 1);  // per warp, the last lane
  CHECK_FALSE(same_bits(ascending, want));
  CHECK_FALSE(same_bits(descending, want));
}

namespace {

// A butterfly sum over each warp's lanes: every lane ends with the warp's sum.
LOOM_SIMT_GLOBAL void warp_sums(double* out) {
  const unsigned t = simt::thread_x();
  double v = static_cast<double>(t * t);
  for (int mask = 16; mask > 0; mask /= 2) v += simt::shfl_xor(v, mask);
  out[t] = v;
}

// Lane 0 stores a wmma tile (the emulator's store is made by lane 0 alone);
// every lane then reads the element of its index, after a sync_warp or not.
LOOM_SIMT_GLOBAL void read_stored_tile(float* out, bool barrier) {
  float* tile = simt::dynamic_shared<float>();
  simt::wmma::fragment<simt::wmma::accumulator, 16, 16, 16, float> acc;
  simt::wmma::fill_fragment(acc, 3.0f);
  simt::wmma::store_matrix_sync(tile, acc, 16, simt::wmma::mem_row_major);
  if (barrier) simt::sync_warp();
  out[simt::thread_x()] = tile[simt::thread_x() * 8];
}

// Block b adds one to what block b - 1 wrote: right only if the blocks run
// in order, which CUDA does not promise.
LOOM_SIMT_GLOBAL void chain_blocks(int* out) {
  const unsigned b = simt::block_x();
  if (simt::thread_x() == 0) out[b] = b == 0 ? 1 : out[b - 1] + 1;
}

}  // namespace

TEST_CASE("emulator schedules: shuffles exchange between lanes under every schedule", "[simt][schedule]") {
  double warp_total[2] = {0.0, 0.0};
  for (unsigned t = 0; t < 64; ++t) warp_total[t / 32] += static_cast<double>(t * t);
  for (simt::Schedule s : kAll) {
    CAPTURE(static_cast<int>(s));
    std::vector<double> out(64, -1.0);
    simt::ScheduleGuard guard(s);
    simt::launch(simt::Dim3(1), simt::Dim3(64), 0, {}, warp_sums, out.data());
    for (unsigned t = 0; t < 64; ++t) CHECK(out[t] == warp_total[t / 32]);
  }
}

namespace {

// Each lane votes; lane 5 of warp 1 votes no.
LOOM_SIMT_GLOBAL void vote(int* out) {
  const unsigned t = simt::thread_x();
  out[t] = simt::all_lanes(t != 32 + 5) ? 1 : 0;
}

}  // namespace

TEST_CASE("emulator: all_lanes is the warp's vote under every schedule", "[simt][schedule]") {
  for (simt::Schedule s : kAll) {
    CAPTURE(static_cast<int>(s));
    std::vector<int> out(96, -1);
    simt::ScheduleGuard guard(s);
    simt::launch(simt::Dim3(1), simt::Dim3(96), 0, {}, vote, out.data());
    for (unsigned t = 0; t < 96; ++t) CHECK(out[t] == (t / 32 == 1 ? 0 : 1));
  }
}

TEST_CASE("emulator: fast_exp2 flushes subnormal results to zero, as ex2.approx.ftz does", "[simt]") {
  CHECK(simt::fast_exp2(3.0f) == 8.0f);
  CHECK(simt::fast_exp2(-126.0f) == std::ldexp(1.0f, -126));  // the smallest normal float
  CHECK(simt::fast_exp2(-127.0f) == 0.0f);
  CHECK(simt::fast_exp2(-INFINITY) == 0.0f);
  CHECK(std::isnan(simt::fast_exp2(NAN)));
}

TEST_CASE("emulator schedules: reading a stored wmma tile needs sync_warp", "[simt][schedule]") {
  for (simt::Schedule s : kAll) {
    CAPTURE(static_cast<int>(s));
    std::vector<float> out(32, -1.0f);
    simt::ScheduleGuard guard(s);
    simt::launch(simt::Dim3(1), simt::Dim3(32), 256 * sizeof(float), {}, read_stored_tile, out.data(), true);
    for (float x : out) CHECK(x == 3.0f);
  }
  // Descending: lanes 31..1 read before lane 0, the one that stores, runs.
  std::vector<float> out(32, -1.0f);
  simt::ScheduleGuard guard(simt::Schedule::serial_descending);
  simt::launch(simt::Dim3(1), simt::Dim3(32), 256 * sizeof(float), {}, read_stored_tile, out.data(), false);
  CHECK(count_nan(out) == 31);
  CHECK(out[0] == 3.0f);
}

TEST_CASE("emulator schedules: serial_descending runs the grid's blocks in reverse", "[simt][schedule]") {
  const unsigned blocks = 6;
  std::vector<int> ascending(blocks, 0), descending(blocks, 0);
  {
    simt::ScheduleGuard guard(simt::Schedule::serial_ascending);
    simt::launch(simt::Dim3(blocks), simt::Dim3(32), 0, {}, chain_blocks, ascending.data());
  }
  {
    simt::ScheduleGuard guard(simt::Schedule::serial_descending);
    simt::launch(simt::Dim3(blocks), simt::Dim3(32), 0, {}, chain_blocks, descending.data());
  }
  CHECK(ascending == std::vector<int>{1, 2, 3, 4, 5, 6});
  // Each block but the first read its predecessor's slot before it was written.
  CHECK(descending == std::vector<int>{1, 1, 1, 1, 1, 1});
}

namespace {

// Lane 0 of each warp publishes a value; after a block barrier every thread
// reads the next warp's value; then each warp passes a warp barrier and its
// lane 0 overwrites its own slot. Without a block barrier between the reads
// and the overwrite, a warp that runs on ahead overwrites a slot another warp
// has yet to read.
LOOM_SIMT_GLOBAL void read_then_overwrite(float* out, bool barrier) {
  float* slot = simt::dynamic_shared<float>();
  const unsigned t = simt::thread_x(), warp = t / 32, warps = simt::block_dim_x() / 32;
  if (t % 32 == 0) slot[warp] = static_cast<float>(warp + 1);
  simt::sync_block();
  out[t] = slot[(warp + 1) % warps];
  if (barrier) simt::sync_block();
  simt::sync_warp();
  if (t % 32 == 0) slot[warp] = -1.0f;
}

std::vector<float> run_read_then_overwrite(simt::Schedule s, bool barrier) {
  std::vector<float> out(128, 0.0f);
  simt::ScheduleGuard guard(s);
  simt::launch(simt::Dim3(1), simt::Dim3(128), 4 * sizeof(float), {}, read_then_overwrite, out.data(), barrier);
  return out;
}

}  // namespace

TEST_CASE("emulator schedules: an overwrite without a block barrier shows under both serial schedules",
          "[simt][schedule]") {
  std::vector<float> want(128);
  for (unsigned t = 0; t < 128; ++t) want[t] = static_cast<float>((t / 32 + 1) % 4 + 1);
  for (simt::Schedule s : kAll) {
    CAPTURE(static_cast<int>(s));
    CHECK(run_read_then_overwrite(s, true) == want);
  }
  // Ascending: each warp runs on past its warp barrier and overwrites its
  // slot before the next warp runs, so warp 3 reads warp 0's overwritten
  // slot. Descending: warp 3 overwrites before warp 2 reads, warp 2 before
  // warp 1, warp 1 before warp 0.
  std::vector<float> ascending = want, descending = want;
  for (unsigned t = 96; t < 128; ++t) ascending[t] = -1.0f;
  for (unsigned t = 0; t < 96; ++t) descending[t] = -1.0f;
  CHECK(run_read_then_overwrite(simt::Schedule::serial_ascending, false) == ascending);
  CHECK(run_read_then_overwrite(simt::Schedule::serial_descending, false) == descending);
}

namespace {

// Thread 0 returns while the rest of the block waits at a barrier it will
// never reach.
LOOM_SIMT_GLOBAL void early_return(int* out) {
  if (simt::thread_x() == 0) return;
  simt::sync_block();
  out[simt::thread_x()] = 1;
}

}  // namespace

// Hidden from the default run: it ends the process. ctest runs it under a
// serial schedule and expects the emulator's deadlock message
// (tests/cuda/CMakeLists.txt).
TEST_CASE("emulator schedules: a thread that skips sync_block is a deadlock", "[.deadlock]") {
  std::vector<int> out(64, 0);
  simt::launch(simt::Dim3(1), simt::Dim3(64), 0, {}, early_return, out.data());
  FAIL("the launch returned; under a serial schedule it should have stopped with a deadlock");
}
