// Convolutions and the ViT patch stem.
#pragma once

#include "loom/nn/layers.hpp"

namespace loom::nn {

class Conv1d : public Layer {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [N, C, L] -> [N, O, L']
  Tensor weight, bias;
  int64_t stride, padding;

 private:
  std::string type_name() const override { return "Conv1d"; }
};

class Conv2d : public Layer {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;  // [N, C, H, W] -> [N, O, H', W']
  Tensor weight, bias;
  int64_t stride, padding;

 private:
  std::string type_name() const override { return "Conv2d"; }
};

// Non-overlapping patches to tokens: [N, C, H, W] -> [N, (H/p)*(W/p), dim].
// The weights are a Conv2d's (proj: [dim, C, p, p] and [dim]); the forward is
// patch_embed (patchify and one GEMM), which returns the tokens contiguous.
class PatchEmbed : public Layer {
 public:
  PatchEmbed(int64_t in_channels, int64_t dim, int64_t patch, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> proj;
  int64_t patch;

 private:
  std::string type_name() const override { return "PatchEmbed"; }
};

}  // namespace loom::nn
