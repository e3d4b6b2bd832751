#include "loom/models/image_classifier.hpp"

#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::models {

ImageClassifier::ImageClassifier(const ImageClassifierConfig& c, Generator* gen) : config(c) {
  drop_ = register_module("drop", std::make_shared<nn::Dropout>(c.dropout, gen));
  if (c.arch == "vit") {
    LOOM_CHECK(c.image_size % c.patch == 0, "ImageClassifier: image_size ", c.image_size,
               " is not a multiple of patch ", c.patch);
    const int64_t tokens = (c.image_size / c.patch) * (c.image_size / c.patch);
    patches_ = register_module("patches", std::make_shared<nn::PatchEmbed>(c.in_channels, c.d_model, c.patch, gen));
    Tensor pos = empty({1, tokens, c.d_model});
    nn::init::normal_(pos, 0.0, 0.02, gen);
    pos_ = register_parameter("pos", pos);
    blocks_ = register_module("blocks", std::make_shared<nn::ModuleList<nn::TransformerBlock>>());
    nn::TransformerBlockOptions o;
    o.dim = c.d_model;
    o.heads = c.n_heads;
    o.mlp_hidden = c.mlp_ratio * c.d_model;
    o.dropout = c.dropout;
    for (int64_t i = 0; i < c.n_layers; ++i) blocks_->push_back(std::make_shared<nn::TransformerBlock>(o, gen));
    norm_ = register_module("norm", std::make_shared<nn::LayerNorm>(c.d_model));
    head_ = register_module("head", std::make_shared<nn::Linear>(c.d_model, c.classes, true, gen));
  } else if (c.arch == "cnn") {
    const int64_t w = c.width;
    conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(c.in_channels, w, 3, 1, 1, true, gen));
    conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(w, 2 * w, 3, 2, 1, true, gen));
    conv3_ = register_module("conv3", std::make_shared<nn::Conv2d>(2 * w, 2 * w, 3, 2, 1, true, gen));
    const int64_t side = (c.image_size + 3) / 4;
    fc_ = register_module("fc", std::make_shared<nn::Linear>(2 * w * side * side, c.hidden, true, gen));
    head_ = register_module("head", std::make_shared<nn::Linear>(c.hidden, c.classes, true, gen));
  } else {
    LOOM_FAIL("ImageClassifier: unknown arch '", c.arch, "' (expected vit or cnn)");
  }
}

Tensor ImageClassifier::forward(const Tensor& images) {
  check_defined(images, "ImageClassifier", "images");
  LOOM_CHECK(images.dim() == 4 && images.size(1) == config.in_channels && images.size(2) == config.image_size &&
                 images.size(3) == config.image_size,
             "ImageClassifier: images must be [N, ", config.in_channels, ", ", config.image_size, ", ",
             config.image_size, "], got ", shape_str(images.shape()));
  return config.arch == "vit" ? forward_vit(images) : forward_cnn(images);
}

Tensor ImageClassifier::forward_vit(const Tensor& images) {
  Tensor x = drop_->forward(add(patches_->forward(images), pos_));
  nn::ResidualStream stream{x, Tensor()};
  for (const auto& block : *blocks_) stream = block->forward_stream(stream);
  return head_->forward(mean(stream.normed_by(*norm_), {1}));
}

Tensor ImageClassifier::forward_cnn(const Tensor& images) {
  Tensor x = relu(conv1_->forward(images));
  x = relu(conv2_->forward(x));
  x = relu(conv3_->forward(x));
  x = drop_->forward(relu(fc_->forward(x.flatten(1))));
  return head_->forward(x);
}

}  // namespace loom::models
