// A thread-safe memo of computed tensors by key, within a byte budget.
//
// For examples that are expensive to compute and read every epoch (the
// log-mel of a scene's speech): the loader's workers look a key up and, on a
// miss, compute the value and offer it. Entries are kept first come, first
// served until the budget is spent, and never evicted: under uniformly
// shuffled epochs every key is equally likely next, so evicting one entry for
// another would cost a computation without saving one.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "loom/core/tensor.hpp"

namespace loom::data {

class TensorCache {
 public:
  explicit TensorCache(int64_t budget_bytes);

  // The cached tensor of `key` (shared storage: treat it as read-only).
  std::optional<Tensor> find(int64_t key) const;
  // Keeps a contiguous copy of `value` under `key` when it fits in what is
  // left of the budget; false when it does not fit or the key is present.
  bool insert(int64_t key, const Tensor& value);

  int64_t budget_bytes() const { return budget_; }
  int64_t bytes() const;
  int64_t size() const;

 private:
  int64_t budget_;
  mutable std::mutex mutex_;
  int64_t bytes_ = 0;
  std::unordered_map<int64_t, Tensor> entries_;
};

}  // namespace loom::data
