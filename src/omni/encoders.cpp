#include "loom/omni/encoders.hpp"

#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

const char* modality_name(Modality m) {
  switch (m) {
    case Modality::text: return "text";
    case Modality::image: return "image";
    case Modality::audio: return "audio";
    case Modality::video: return "video";
    case Modality::signal: return "signal";
  }
  return "?";
}

Tensor key_padding_mask(const Tensor& mask) {
  if (!mask.defined()) return mask;
  return mask.unsqueeze(1).unsqueeze(1);
}

Tensor masked_mean(const Tensor& x, const Tensor& mask) {
  if (!mask.defined()) return mean(x, {1});
  LOOM_CHECK(mask.dim() == 2 && mask.size(0) == x.size(0) && mask.size(1) == x.size(1), "masked_mean: mask ",
             shape_str(mask.shape()), " does not match tokens ", shape_str(x.shape()));
  Tensor m = to_dtype(mask, x.dtype()).unsqueeze(2);  // [B, T, 1]
  Tensor count = clamp(sum(m, {1}), 1.0, std::nullopt);
  return div(sum(mul(x, m), {1}), count);
}

Encoded concat(const std::vector<Encoded>& parts) {
  LOOM_CHECK(!parts.empty(), "concat: no encodings");
  if (parts.size() == 1) return parts[0];
  std::vector<Tensor> tokens, masks;
  bool any_mask = false;
  for (const Encoded& e : parts) {
    tokens.push_back(e.tokens);
    any_mask = any_mask || e.mask.defined();
  }
  Tensor mask;
  if (any_mask) {
    for (const Encoded& e : parts)
      masks.push_back(e.mask.defined() ? e.mask
                                       : full({e.tokens.size(0), e.tokens.size(1)}, 1.0,
                                              TensorOptions(DType::boolean).with_device(e.tokens.device())));
    mask = cat(masks, 1);
  }
  Tensor all = cat(tokens, 1);
  return {all, mask, masked_mean(all, mask)};
}

namespace {
Tensor learned(int64_t rows, int64_t dim, Generator* gen) {
  Tensor t = empty({rows, dim});
  nn::init::normal_(t, 0.0, 0.02, gen);
  return t;
}
}  // namespace

TransformerStack::TransformerStack(const StackOptions& o, Generator* gen) : options(o) {
  LOOM_CHECK(o.layers >= 0 && o.dim > 0, "TransformerStack: dim ", o.dim, " and layers ", o.layers, " are invalid");
  blocks = register_module("blocks", std::make_shared<nn::ModuleList<nn::TransformerBlock>>());
  for (int64_t i = 0; i < o.layers; ++i) {
    nn::TransformerBlockOptions bo;
    bo.dim = o.dim;
    bo.heads = o.heads;
    bo.mlp_hidden = o.mlp_ratio * o.dim;
    bo.dropout = o.dropout;
    bo.causal = o.causal;
    bo.cross_attention = o.cross_attention;
    bo.context_dim = o.dim;
    blocks->push_back(std::make_shared<nn::TransformerBlock>(bo, gen));
  }
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(o.dim));
}

Tensor TransformerStack::forward(const Tensor& x, const Tensor& mask, const Tensor& context,
                                 const Tensor& context_mask) {
  const Tensor attn_mask = key_padding_mask(mask), cross_mask = key_padding_mask(context_mask);
  nn::ResidualStream stream{x, Tensor()};
  for (const auto& block : *blocks) stream = block->forward_stream(stream, attn_mask, context, cross_mask);
  return stream.normed_by(*norm);
}

Encoder::Encoder(const StackOptions& options, Generator* gen) {
  type_embedding = register_parameter("type_embedding", learned(1, options.dim, gen).reshape({options.dim}));
  stack = register_module("stack", std::make_shared<TransformerStack>(options, gen));
}

void Encoder::add_prompt(int64_t tokens, Generator* gen) {
  LOOM_CHECK(!prompt, "Encoder: a prompt was already added");
  prompt = register_module("prompt", std::make_shared<nn::PromptTuning>(tokens, stack->options.dim, gen));
}

Encoded Encoder::finish(const Tensor& tokens, const Tensor& mask) {
  Tensor x = add(tokens, type_embedding), m = mask;
  if (prompt) {
    x = prompt->forward(x);
    if (m.defined()) m = prompt->extend_mask(m);
  }
  Tensor y = stack->forward(x, m);
  return {y, m, masked_mean(y, m)};
}

// --- text ---------------------------------------------------------------------

TextEncoder::TextEncoder(int64_t vocab_size, int64_t max_len, int64_t pad, const StackOptions& o, Generator* gen)
    : Encoder(o, gen), pad_id(pad) {
  embed = register_module("embed", std::make_shared<nn::Embedding>(vocab_size, o.dim, 0.02, gen));
  positions = register_parameter("positions", learned(max_len, o.dim, gen));
}

Encoded TextEncoder::encode(const Tensor& ids) {
  LOOM_CHECK(ids.dim() == 2 && is_integral(ids.dtype()), "TextEncoder: ids must be integer [B, T], got ",
             shape_str(ids.shape()));
  LOOM_CHECK(ids.size(1) <= positions.size(0), "TextEncoder: ", ids.size(1), " tokens exceed max_len ",
             positions.size(0));
  Tensor mask = ne(ids, full({}, static_cast<double>(pad_id), TensorOptions(ids.dtype()).with_device(ids.device())));
  return finish(add(embed->forward(ids), positions.narrow(0, 0, ids.size(1))), mask);
}

// --- image --------------------------------------------------------------------

ImageEncoder::ImageEncoder(int64_t image_size, int64_t patch, const StackOptions& o, Generator* gen, bool conv_stem)
    : Encoder(o, gen) {
  LOOM_CHECK(patch > 0 && image_size % patch == 0, "ImageEncoder: image size ", image_size,
             " is not a multiple of the patch ", patch);
  grid_ = image_size / patch;
  if (conv_stem) {
    LOOM_CHECK(patch % 4 == 0 && o.dim % 2 == 0, "ImageEncoder: a conv stem needs a patch that divides by 4 (got ",
               patch, ") and an even width (got ", o.dim, ")");
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, o.dim / 2, 3, 2, 1, true, gen));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(o.dim / 2, o.dim, 3, 2, 1, true, gen));
  }
  stem = register_module("stem", std::make_shared<nn::PatchEmbed>(conv_stem ? o.dim : 3, o.dim,
                                                                   conv_stem ? patch / 4 : patch, gen));
  positions = register_parameter("positions", learned(grid_ * grid_, o.dim, gen));
}

Tensor ImageEncoder::patch_tokens(const Tensor& images) {
  const int64_t side = grid_ * stem->patch * (conv1 ? 4 : 1);
  LOOM_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == side && images.size(3) == side,
             "ImageEncoder: images must be [B, 3, ", side, ", ", side, "], got ",
             shape_str(images.shape()));
  if (!conv1) return stem->forward(images);
  return stem->forward(gelu(conv2->forward(gelu(conv1->forward(images)))));
}

Encoded ImageEncoder::encode(const Tensor& images) {
  return finish(add(patch_tokens(images), positions), Tensor());
}

// --- 1-D signals (audio) ------------------------------------------------------

SignalEncoder::SignalEncoder(Modality m, int64_t c, int64_t max_len, const StackOptions& o, Generator* gen)
    : Encoder(o, gen), channels(c), modality_(m) {
  conv1 = register_module("conv1", std::make_shared<nn::Conv1d>(c, o.dim, 3, 2, 1, true, gen));
  conv2 = register_module("conv2", std::make_shared<nn::Conv1d>(o.dim, o.dim, 3, 2, 1, true, gen));
  positions = register_parameter("positions", learned(tokens_for(max_len), o.dim, gen));
}

Encoded SignalEncoder::encode(const Tensor& signal, const Tensor& mask) {
  LOOM_CHECK(signal.dim() == 3 && signal.size(2) == channels, "SignalEncoder (", modality_name(modality_),
             "): input must be [B, L, ", channels, "], got ", shape_str(signal.shape()));
  const int64_t frames = signal.size(1), tokens = tokens_for(frames);
  LOOM_CHECK(tokens <= positions.size(0), "SignalEncoder (", modality_name(modality_), "): ", frames,
             " frames exceed max_len");
  Tensor x = gelu(conv1->forward(signal.transpose(1, 2)));
  x = gelu(conv2->forward(x)).transpose(1, 2);  // [B, tokens, D]
  Tensor token_mask;
  if (mask.defined()) {
    LOOM_CHECK(mask.dim() == 2 && mask.size(0) == signal.size(0) && mask.size(1) == frames,
               "SignalEncoder: mask must be [B, ", frames, "], got ", shape_str(mask.shape()));
    // token j of the second stride-2 convolution is centred on frame 4j
    token_mask = mask.slice(1, 0, frames, 4).contiguous();
  }
  return finish(add(x, positions.narrow(0, 0, tokens)), token_mask);
}

// --- video --------------------------------------------------------------------

VideoEncoder::VideoEncoder(std::shared_ptr<ImageEncoder> image, int64_t f, int64_t g, const StackOptions& o,
                           Generator* gen)
    : Encoder(o, gen), frames(f), pooled_grid(g), image_(std::move(image)) {
  LOOM_CHECK(image_ != nullptr, "VideoEncoder: needs the image encoder for its patch stem");
  LOOM_CHECK(g > 0 && image_->grid() % g == 0, "VideoEncoder: pooled grid ", g, " must divide the patch grid ",
             image_->grid());
  temporal = register_parameter("temporal", learned(f, o.dim, gen));
  spatial = register_parameter("spatial", learned(g * g, o.dim, gen));
}

Encoded VideoEncoder::encode(const Tensor& video) {
  LOOM_CHECK(video.dim() == 5 && video.size(1) == frames, "VideoEncoder: video must be [B, ", frames,
             ", 3, H, W], got ", shape_str(video.shape()));
  const int64_t b = video.size(0), n = image_->grid(), g = pooled_grid, k = n / g, d = stack->options.dim;
  Tensor p = image_->patch_tokens(video.reshape({b * frames, 3, video.size(3), video.size(4)}));  // [BF, n*n, D]
  // average k x k blocks of the patch grid: [BF, g, k, g, k, D] -> [BF, g, g, D]
  p = mean(p.reshape({b * frames, g, k, g, k, d}), {2, 4});
  p = p.reshape({b, frames, g * g, d});
  p = add(add(p, temporal.unsqueeze(1)), spatial);
  return finish(p.reshape({b, frames * g * g, d}), Tensor());
}

}  // namespace loom::omni
