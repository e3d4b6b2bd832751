// loom-bench allreduce [--min BYTES] [--max BYTES] [--iters N], under mpirun:
// all_reduce (sum, f32) over the MPI process group, 1 KiB .. 256 MiB by
// default in x4 steps, one JSON line per size from rank 0 with the median
// time of the slowest rank, algbw (bytes / time) and busbw = algbw * 2(n-1)/n
// (the traffic per link of a ring all-reduce, comparable across rank counts,
// as nccl-tests reports it). Alone it measures the one-rank local group.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench.hpp"
#include "loom/dist/dist.hpp"
#include "loom/ops/creation.hpp"

namespace loom::bench {

void run_allreduce(const Options& opt) {
  const int64_t min_bytes = opt.integer("min", 1 << 10), max_bytes = opt.integer("max", int64_t{256} << 20);
  const int iters = static_cast<int>(opt.integer("iters", 0));
  auto world = dist::init_distributed();
  const int n = world->size();
  for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
    Tensor t = ones({bytes / 4});
    const int reps = iters > 0 ? iters : static_cast<int>(std::clamp<int64_t>((int64_t{64} << 20) / bytes, 3, 50));
    world->all_reduce(t);  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      world->barrier();
      const auto start = std::chrono::steady_clock::now();
      world->all_reduce(t);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    // The slowest rank's time of each repetition counts.
    Tensor times = from_vector(ms, {static_cast<int64_t>(ms.size())});
    world->all_reduce(times, dist::ReduceOp::max);
    auto v = times.to_vector<double>();
    std::sort(v.begin(), v.end());
    const double median = v[v.size() / 2];
    const double algbw = static_cast<double>(bytes) / (median * 1e-3) / 1e9;
    const double busbw = n > 1 ? algbw * 2.0 * (n - 1) / n : 0.0;
    if (world->rank() == 0)
      std::printf("{\"name\": \"allreduce\", \"shape\": [%lld], \"dtype\": \"f32\", \"ranks\": %d, \"bytes\": %lld, "
                  "\"median_ms\": %.4f, \"algbw_gbps\": %.3f, \"busbw_gbps\": %.3f}\n",
                  static_cast<long long>(bytes / 4), n, static_cast<long long>(bytes), median, algbw, busbw);
  }
}

}  // namespace loom::bench
