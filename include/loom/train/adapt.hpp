// How a recipe adapts a model before training, from the `train` section:
//   init_from  "" or a run directory (its newest checkpoint) or a checkpoint
//              directory: start from those weights (fine-tuning). Every key
//              of the model must be there with its shape, except LoRA and
//              prompt-tuning parameters (new in a fine-tuned model: they
//              keep their initial values); ignored when resuming.
//   lora       {"rank": 0 = off, "alpha", "rslora", "dropout", "targets",
//              "exclude"}: adds adapter "default" (loom/nn/lora.hpp) and
//              freezes every other parameter;
//   freeze     name patterns (nn::name_matches) of parameters to freeze;
//   trainable  name patterns of parameters trained even so (e.g. a new head).
// Each pattern must match some parameter (a typo is an error naming it).
#pragma once

#include <string>

#include "loom/nn/module.hpp"
#include "loom/train/recipe.hpp"

namespace loom::train {

// The train-section defaults of the keys above (merged into common_schema).
Json adaptation_schema();

// Applies them to `model`; `resuming` skips init_from. Returns a one-line
// summary ("trainable N of M parameters (x%)", what was loaded).
std::string adapt_model(nn::Module& model, const Json& train_section, bool resuming, Generator* gen);

}  // namespace loom::train
