// Cross-modal fusion, switchable by the recipe:
//   joint            a single-stream transformer over [CLS, all tokens]
//                    of every input, concatenated;
//   cross_attention  the first input (text) with a CLS in front is the query
//                    stream; each block also cross-attends to the tokens of
//                    the other inputs (image, audio, ...).
// Either way the fused CLS output is `pooled` (the matching head reads it).
#pragma once

#include "loom/omni/encoders.hpp"

namespace loom::omni {

enum class FusionKind { joint, cross_attention };
FusionKind fusion_kind_from_string(const std::string& name);  // "joint" | "cross_attention"

class Fusion : public nn::Module {
 public:
  Fusion(FusionKind kind, const StackOptions& options, Generator* gen = nullptr);
  // inputs: at least two encodings at the shared width; for cross_attention
  // the first is the query stream.
  Encoded forward(const std::vector<Encoded>& inputs);
  FusionKind kind;
  Tensor cls;  // [D]
  std::shared_ptr<TransformerStack> stack;

 private:
  std::string type_name() const override { return "Fusion"; }
};

}  // namespace loom::omni
