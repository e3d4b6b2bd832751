// Datasets: indexable collections of examples, and collate, which stacks a
// list of examples into one batch.
//
// An example is a short list of tensors (its fields, e.g. {image, label});
// a batch has the same fields, each stacked along a new dim 0. Datasets are
// read from the DataLoader's worker threads, so `get` must be thread-safe:
// the datasets here are immutable after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loom/core/tensor.hpp"

namespace loom::data {

using Example = std::vector<Tensor>;  // the fields of one example
using Batch = std::vector<Tensor>;    // the same fields, stacked along dim 0

class Dataset {
 public:
  virtual ~Dataset();
  virtual int64_t size() const = 0;
  // Example `index` in [0, size()). Called concurrently from worker threads.
  virtual Example get(int64_t index) const = 0;
};

// N tensors sharing dim 0: example i is {t[i] for each tensor t}. The tensors
// are held detached (a dataset never records autograd history); examples are
// views of them.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(std::vector<Tensor> tensors);
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;

 private:
  std::vector<Tensor> tensors_;
  int64_t size_ = 0;
};

// Stacks field f of every example into field f of the batch (a new dim 0),
// without recording autograd history. All examples need the same number of
// fields, and field f the same shape and dtype in every example.
Batch collate(const std::vector<Example>& examples);

// Fashion-MNIST (the Debian package dataset-fashion-mnist installs it in
// kFashionMnistDir). Example i is {image f32 [1, 28, 28], label i64 []}, the
// label in [0, 10). Pixels are scaled to [0, 1], and with `normalize` then
// standardised with the training set's mean and std, (x - 0.2860) / 0.3530.
// train: the 60000 training images, else the 10000 test images.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
inline constexpr float kFashionMnistMean = 0.2860f;
inline constexpr float kFashionMnistStd = 0.3530f;
std::shared_ptr<Dataset> fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true,
                                       bool normalize = false);

}  // namespace loom::data
