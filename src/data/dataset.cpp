// TensorDataset, collate and the Fashion-MNIST dataset (see dataset.hpp).
#include "loom/data/dataset.hpp"

#include <cstring>
#include <filesystem>

#include "loom/autograd/grad_mode.hpp"
#include "loom/data/idx.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/shape.hpp"

namespace loom::data {

Dataset::~Dataset() = default;

// --- TensorDataset ---------------------------------------------------------

TensorDataset::TensorDataset(std::vector<Tensor> tensors) {
  LOOM_CHECK(!tensors.empty(), "TensorDataset: expected at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    LOOM_CHECK(t.defined(), "TensorDataset: tensor ", i, " is undefined");
    LOOM_CHECK(t.dim() >= 1, "TensorDataset: tensor ", i, " is a scalar (shape ", shape_str(t.shape()),
               "); every tensor needs a dim 0 indexing the examples");
    LOOM_CHECK(t.size(0) == tensors[0].size(0), "TensorDataset: tensor ", i, " has shape ", shape_str(t.shape()),
               " but tensor 0 has ", shape_str(tensors[0].shape()), ": their dim 0 (", t.size(0), " vs ",
               tensors[0].size(0), ") must be the number of examples in both");
    tensors_.push_back(t.detach());
  }
  size_ = tensors_[0].size(0);
}

Example TensorDataset::get(int64_t index) const {
  LOOM_CHECK(index >= 0 && index < size_, "TensorDataset::get: index ", index, " is out of range for ", size_,
             " examples");
  Example example;
  example.reserve(tensors_.size());
  for (const Tensor& t : tensors_) example.push_back(t.select(0, index));
  return example;
}

// --- collate ---------------------------------------------------------------

Batch collate(const std::vector<Example>& examples) {
  LOOM_CHECK(!examples.empty(), "collate: expected at least one example");
  const size_t fields = examples[0].size();
  for (size_t i = 0; i < examples.size(); ++i)
    LOOM_CHECK(examples[i].size() == fields, "collate: example ", i, " has ", examples[i].size(),
               " fields but example 0 has ", fields);
  NoGradGuard no_grad;
  Batch batch;
  batch.reserve(fields);
  std::vector<Tensor> column(examples.size());
  for (size_t f = 0; f < fields; ++f) {
    const Tensor& first = examples[0][f];
    LOOM_CHECK(first.defined(), "collate: field ", f, " of example 0 is undefined");
    for (size_t i = 0; i < examples.size(); ++i) {
      const Tensor& t = examples[i][f];
      LOOM_CHECK(t.defined(), "collate: field ", f, " of example ", i, " is undefined");
      LOOM_CHECK(t.shape() == first.shape(), "collate: field ", f, " has shape ", shape_str(t.shape()),
                 " in example ", i, " but ", shape_str(first.shape()), " in example 0");
      LOOM_CHECK(t.dtype() == first.dtype(), "collate: field ", f, " has dtype ", dtype_name(t.dtype()),
                 " in example ", i, " but ", dtype_name(first.dtype()), " in example 0");
      column[i] = t;
    }
    batch.push_back(stack(column, 0));
  }
  return batch;
}

// --- Fashion-MNIST ---------------------------------------------------------

namespace {

constexpr int64_t kSide = 28;
constexpr int64_t kPixels = kSide * kSide;
constexpr int64_t kClasses = 10;

Tensor read_required(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  LOOM_CHECK(std::filesystem::exists(path), "fashion_mnist: '", path,
             "' not found; install the Debian package dataset-fashion-mnist (scripts/install-deps.sh does) "
             "or pass the directory holding ",
             name);
  return read_idx(path);
}

class FashionMnist : public Dataset {
 public:
  FashionMnist(const std::string& dir, bool train, bool normalize) : normalize_(normalize) {
    const std::string split = train ? "train" : "t10k";
    images_ = read_required(dir, split + "-images-idx3-ubyte.gz").contiguous();
    labels_ = read_required(dir, split + "-labels-idx1-ubyte.gz").contiguous();
    const int64_t expected = train ? 60000 : 10000;
    LOOM_CHECK(images_.dtype() == DType::u8 && images_.shape() == Shape({expected, kSide, kSide}),
               "fashion_mnist: ", dir, "/", split, "-images-idx3-ubyte.gz holds ", dtype_name(images_.dtype()), " ",
               shape_str(images_.shape()), ", expected u8 ", shape_str({expected, kSide, kSide}));
    LOOM_CHECK(labels_.dtype() == DType::u8 && labels_.shape() == Shape({expected}), "fashion_mnist: ", dir, "/",
               split, "-labels-idx1-ubyte.gz holds ", dtype_name(labels_.dtype()), " ", shape_str(labels_.shape()),
               ", expected u8 ", shape_str({expected}));
    const uint8_t* labels = labels_.data<uint8_t>();
    for (int64_t i = 0; i < expected; ++i)
      LOOM_CHECK(labels[i] < kClasses, "fashion_mnist: label ", int{labels[i]}, " of example ", i, " in ", dir, "/",
                 split, "-labels-idx1-ubyte.gz is not a class in [0, ", kClasses, ")");
  }

  int64_t size() const override { return labels_.size(0); }

  Example get(int64_t index) const override {
    LOOM_CHECK(index >= 0 && index < size(), "fashion_mnist: index ", index, " is out of range for ", size(),
               " examples");
    Tensor image = empty({1, kSide, kSide}, DType::f32);
    const uint8_t* src = images_.data<uint8_t>() + index * kPixels;
    float* dst = image.data<float>();
    const float scale = normalize_ ? 1.0f / (255.0f * kFashionMnistStd) : 1.0f / 255.0f;
    const float shift = normalize_ ? kFashionMnistMean / kFashionMnistStd : 0.0f;
    for (int64_t p = 0; p < kPixels; ++p) dst[p] = static_cast<float>(src[p]) * scale - shift;
    const Tensor label = scalar_tensor(static_cast<double>(labels_.data<uint8_t>()[index]), DType::i64);
    return {image, label};
  }

 private:
  Tensor images_;  // u8 [N, 28, 28]
  Tensor labels_;  // u8 [N]
  bool normalize_;
};

}  // namespace

std::shared_ptr<Dataset> fashion_mnist(const std::string& dir, bool train, bool normalize) {
  return std::make_shared<FashionMnist>(dir, train, normalize);
}

}  // namespace loom::data
