#include "loom/data/tensor_cache.hpp"

#include "loom/ops/ops.hpp"

namespace loom::data {

TensorCache::TensorCache(int64_t budget_bytes) : budget_(budget_bytes) {
  LOOM_CHECK(budget_bytes >= 0, "TensorCache: the budget must not be negative, got ", budget_bytes, " bytes");
}

std::optional<Tensor> TensorCache::find(int64_t key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

bool TensorCache::insert(int64_t key, const Tensor& value) {
  const int64_t size = value.numel() * static_cast<int64_t>(itemsize(value.dtype()));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes_ + size > budget_ || entries_.count(key)) return false;
  }
  const Tensor copy = value.contiguous().clone();  // outside the lock: the other workers go on
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes_ + size > budget_ || !entries_.emplace(key, copy).second) return false;
  bytes_ += size;
  return true;
}

int64_t TensorCache::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

int64_t TensorCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(entries_.size());
}

}  // namespace loom::data
