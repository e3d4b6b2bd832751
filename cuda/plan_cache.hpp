// A cache of the plans the vendor libraries make for a call's shape: the
// cuBLASLt algorithm, the cuDNN convolution algorithms, the cuDNN attention
// graphs. Making one costs from microseconds (a heuristic query) to tens of
// milliseconds (a cuDNN graph build); a training step asks for the same few
// shapes every time, so each is made once and looked up after.
//
// A key is the call's integers (device, dtype, sizes, strides, alignments,
// options) in a fixed order. A declined call is remembered too (a null plan),
// so a shape the library cannot take is not asked about again. The first
// caller of a key makes its plan under the lock: no plan is made twice. When
// the cache holds `capacity` keys it is emptied before the next is added
// (shapes that keep changing, as in generation, cannot grow it without bound).
// Host code only: the CUDA files use it, and the unit tests run it anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace loom::cuda {

using PlanKey = std::vector<int64_t>;

template <class Plan>
class PlanCache {
 public:
  explicit PlanCache(size_t capacity = 4096) : capacity_(capacity < 1 ? 1 : capacity) {}

  // The plan for `key`: make() (returning std::shared_ptr<Plan>, null when the
  // call is declined) on the first request, the remembered result after.
  template <class Make>
  std::shared_ptr<Plan> get(const PlanKey& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    std::shared_ptr<Plan> plan = make();  // a throw leaves the key absent
    if (plans_.size() >= capacity_) plans_.clear();
    plans_.emplace(key, plan);
    return plan;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return plans_.size();
  }

 private:
  size_t capacity_;
  mutable std::mutex mutex_;
  std::map<PlanKey, std::shared_ptr<Plan>> plans_;
};

}  // namespace loom::cuda
