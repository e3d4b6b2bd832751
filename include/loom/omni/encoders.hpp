// Per-modality encoders with one interface: an input becomes a token
// sequence at the shared width, a padding mask and a pooled embedding.
//
// Every encoder ends in the same TransformerStack (pre-norm blocks, a final
// LayerNorm, masked mean pooling) and adds its learned modality-type vector
// to its tokens, so that fusion and the decoders can tell the modalities
// apart after concatenating them.
//
//   TextEncoder    ids i64 [B, T] (pad id masked)          -> [B, T, D]
//   ImageEncoder   f32 [B, 3, H, W] in [0, 1]              -> [B, (H/p)(W/p), D]
//   SignalEncoder  f32 [B, L, C] + valid mask bool [B, L]  -> [B, ceil(L/4), D]
//                  (two stride-2 Conv1d + GELU, then the stack; the audio
//                  encoder is this over log-mel frames, C = 80)
//   VideoEncoder   f32 [B, F, 3, H, W]                      -> [B, F * g * g, D]
//                  (each frame through the image encoder's patch stem, the
//                  patch grid average-pooled to g x g, plus a temporal and a
//                  spatial embedding)
#pragma once

#include <memory>

#include "loom/nn/attention.hpp"
#include "loom/nn/container.hpp"
#include "loom/nn/conv.hpp"
#include "loom/nn/peft.hpp"

namespace loom::omni {

enum class Modality { text = 0, image = 1, audio = 2, video = 3, signal = 4 };
inline constexpr int kNumModalities = 5;
const char* modality_name(Modality m);

struct Encoded {
  Tensor tokens;  // f32 [B, T, D]
  Tensor mask;    // bool [B, T], true = a real token; undefined = all real
  Tensor pooled;  // f32 [B, D], the masked mean of the tokens
};

// The attention mask [B, 1, 1, T] for a key padding mask [B, T] (undefined stays undefined).
Tensor key_padding_mask(const Tensor& mask);
// Mean over dim 1 of x [B, T, D] counting only mask-true positions.
Tensor masked_mean(const Tensor& x, const Tensor& mask);
// The token sequences of several encodings side by side: tokens concatenated
// along dim 1, masks likewise (all-true for an undefined one); pooled is the
// masked mean of the result.
Encoded concat(const std::vector<Encoded>& parts);

struct StackOptions {
  int64_t dim = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t mlp_ratio = 2;
  double dropout = 0.0;
  bool causal = false;
  bool cross_attention = false;  // blocks also attend to a context at width dim
};

// Pre-norm transformer blocks and a final LayerNorm.
class TransformerStack : public nn::Module {
 public:
  explicit TransformerStack(const StackOptions& options, Generator* gen = nullptr);
  // mask: key padding mask [B, T]; context / context_mask for cross-attention.
  Tensor forward(const Tensor& x, const Tensor& mask, const Tensor& context = Tensor(),
                 const Tensor& context_mask = Tensor());
  StackOptions options;
  std::shared_ptr<nn::ModuleList<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> norm;

 private:
  std::string type_name() const override { return "TransformerStack"; }
};

class Encoder : public nn::Module {
 public:
  virtual Modality modality() const = 0;
  // Prompt tuning: `tokens` learned virtual tokens put before the encoder's
  // tokens, in front of its transformer stack (always attended).
  void add_prompt(int64_t tokens, Generator* gen = nullptr);
  Tensor type_embedding;  // [D]
  std::shared_ptr<TransformerStack> stack;
  std::shared_ptr<nn::PromptTuning> prompt;  // null unless add_prompt

 protected:
  Encoder(const StackOptions& options, Generator* gen);
  // Adds the type vector, runs the stack and pools.
  Encoded finish(const Tensor& tokens, const Tensor& mask);
};

class TextEncoder : public Encoder {
 public:
  TextEncoder(int64_t vocab_size, int64_t max_len, int64_t pad_id, const StackOptions& options,
              Generator* gen = nullptr);
  Modality modality() const override { return Modality::text; }
  Encoded encode(const Tensor& ids);
  // The token embeddings (tied with the masked-language-model head).
  const Tensor& token_weight() const { return embed->weight; }
  std::shared_ptr<nn::Embedding> embed;
  Tensor positions;  // [max_len, D]
  int64_t pad_id;

 private:
  std::string type_name() const override { return "TextEncoder"; }
};

// The stem is a patch convolution (kernel = stride = patch), or with
// conv_stem two 3x3 stride-2 convolutions with GELU (channels D/2, D) and
// then a patch convolution of patch/4: the same token grid, but each token
// sees its patch through learned local features (small objects keep more
// detail than one linear map of raw pixels gives them).
class ImageEncoder : public Encoder {
 public:
  ImageEncoder(int64_t image_size, int64_t patch, const StackOptions& options, Generator* gen = nullptr,
               bool conv_stem = false);
  Modality modality() const override { return Modality::image; }
  Encoded encode(const Tensor& images);
  // The patch tokens [B, N, D] of images before the stack (shared with video).
  Tensor patch_tokens(const Tensor& images);
  int64_t grid() const { return grid_; }
  std::shared_ptr<nn::PatchEmbed> stem;
  std::shared_ptr<nn::Conv2d> conv1, conv2;  // conv_stem only
  Tensor positions;  // [N, D]

 private:
  int64_t grid_;
  std::string type_name() const override { return "ImageEncoder"; }
};

class SignalEncoder : public Encoder {
 public:
  SignalEncoder(Modality modality, int64_t channels, int64_t max_len, const StackOptions& options,
                Generator* gen = nullptr);
  Modality modality() const override { return modality_; }
  // signal [B, L, C], mask bool [B, L] (undefined: all valid).
  Encoded encode(const Tensor& signal, const Tensor& mask = Tensor());
  // The token count for L input frames.
  static int64_t tokens_for(int64_t frames) { return (((frames + 1) / 2) + 1) / 2; }
  std::shared_ptr<nn::Conv1d> conv1, conv2;
  Tensor positions;  // [tokens_for(max_len), D]
  int64_t channels;

 private:
  Modality modality_;
  std::string type_name() const override { return "SignalEncoder"; }
};

class VideoEncoder : public Encoder {
 public:
  // `image` provides the patch stem; it is used, not owned as a child (its
  // parameters belong to the image encoder and are trained once).
  VideoEncoder(std::shared_ptr<ImageEncoder> image, int64_t frames, int64_t pooled_grid, const StackOptions& options,
               Generator* gen = nullptr);
  Modality modality() const override { return Modality::video; }
  Encoded encode(const Tensor& frames);  // [B, F, 3, H, W]
  Tensor temporal;  // [F, D]
  Tensor spatial;   // [g * g, D]
  int64_t frames, pooled_grid;

 private:
  std::shared_ptr<ImageEncoder> image_;
  std::string type_name() const override { return "VideoEncoder"; }
};

}  // namespace loom::omni
