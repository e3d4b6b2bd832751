// The evaluation split of the dataset a run was trained on (config.json's
// data.root), when it is still on disk. loom-serve's default retrieval index
// (its captions) and the web page's demo samples come from it. A relative
// root is looked up from the working directory, then from the run directory.
#pragma once

#include <memory>
#include <string>

#include "loom/data/trimodal.hpp"

namespace loom::serve {

struct EvalScenes {
  std::unique_ptr<data::trimodal::TrimodalDataset> dataset;  // null when not found
  std::string root;     // the dataset directory used
  std::string missing;  // why there is none (for the log)
};

EvalScenes find_eval_scenes(const std::string& run_dir);

}  // namespace loom::serve
