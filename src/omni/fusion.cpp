#include "loom/omni/fusion.hpp"

#include "loom/nn/init.hpp"
#include "loom/ops/ops.hpp"

namespace loom::omni {

FusionKind fusion_kind_from_string(const std::string& name) {
  if (name == "joint") return FusionKind::joint;
  if (name == "cross_attention") return FusionKind::cross_attention;
  LOOM_FAIL("fusion: unknown kind '", name, "' (joint, cross_attention)");
}

Fusion::Fusion(FusionKind k, const StackOptions& options, Generator* gen) : kind(k) {
  Tensor c = empty({options.dim});
  nn::init::normal_(c, 0.0, 0.02, gen);
  cls = register_parameter("cls", c);
  StackOptions so = options;
  so.causal = false;
  so.cross_attention = kind == FusionKind::cross_attention;
  stack = register_module("stack", std::make_shared<TransformerStack>(so, gen));
}

Encoded Fusion::forward(const std::vector<Encoded>& inputs) {
  LOOM_CHECK(inputs.size() >= 2, "Fusion: needs at least two encodings, got ", inputs.size());
  const int64_t b = inputs[0].tokens.size(0), d = cls.size(0);
  Encoded head{cls.reshape({1, 1, d}).expand({b, 1, d}), Tensor(), Tensor()};
  Encoded stream;
  Tensor out;
  if (kind == FusionKind::joint) {
    std::vector<Encoded> all{head};
    all.insert(all.end(), inputs.begin(), inputs.end());
    stream = concat(all);
    out = stack->forward(stream.tokens, stream.mask);
  } else {
    stream = concat({head, inputs[0]});
    const Encoded context = concat(std::vector<Encoded>(inputs.begin() + 1, inputs.end()));
    out = stack->forward(stream.tokens, stream.mask, context.tokens, context.mask);
  }
  return {out, stream.mask, out.select(1, 0)};
}

}  // namespace loom::omni
