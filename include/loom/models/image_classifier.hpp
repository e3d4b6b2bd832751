// Image classifiers for small images: a ViT (patch stem, transformer blocks,
// mean-pooled tokens) or a small CNN (3x3 convolutions, strided downsampling).
#pragma once

#include "loom/nn/attention.hpp"
#include "loom/nn/container.hpp"
#include "loom/nn/conv.hpp"

namespace loom::models {

struct ImageClassifierConfig {
  std::string arch = "vit";  // "vit" or "cnn"
  int64_t in_channels = 1;
  int64_t image_size = 28;
  int64_t classes = 10;
  // vit
  int64_t patch = 4;
  int64_t d_model = 64;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t mlp_ratio = 2;
  // cnn: channels of the three conv stages, then a hidden fully connected layer
  int64_t width = 32;
  int64_t hidden = 128;
  double dropout = 0.0;
};

class ImageClassifier : public nn::Module {
 public:
  explicit ImageClassifier(const ImageClassifierConfig& config, Generator* gen = nullptr);
  Tensor forward(const Tensor& images);  // [N, C, H, W] -> logits [N, classes]
  ImageClassifierConfig config;

 private:
  Tensor forward_vit(const Tensor& images);
  Tensor forward_cnn(const Tensor& images);
  std::string type_name() const override { return "ImageClassifier"; }

  // vit
  std::shared_ptr<nn::PatchEmbed> patches_;
  Tensor pos_;
  std::shared_ptr<nn::ModuleList<nn::TransformerBlock>> blocks_;
  std::shared_ptr<nn::LayerNorm> norm_;
  // cnn
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::Linear> fc_;
  // both
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::Linear> head_;
};

}  // namespace loom::models
