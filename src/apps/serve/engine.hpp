// What loom-serve runs: the omni pipeline with its LoRA adapters, the
// optional GPT generator, the default caption index and the demo samples,
// all loaded at start; and the batch runner that answers a batch of
// requests with one pipeline call per modality.
//
// Only the batcher's worker thread calls run(); everything else is read-only
// after construction, so handlers may read context(), health() and samples()
// from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpt_run.hpp"
#include "batcher.hpp"
#include "loom/omni/pipeline.hpp"
#include "requests.hpp"
#include "samples.hpp"

namespace loom::serve {

struct EngineOptions {
  std::string run;                                            // omni run or checkpoint directory
  std::vector<std::pair<std::string, std::string>> adapters;  // name, adapter directory
  std::string generator;                                      // GPT run, optional
  std::string index_file;                                     // captions, one per line, optional
};

class Engine {
 public:
  // Throws loom::Error naming what cannot be loaded.
  Engine(const EngineOptions& options, const std::function<void(const std::string&)>& log);

  // One response body per request (see docs/serving.md for the shapes).
  std::vector<nlohmann::json> run(const BatchKey& key, const std::vector<const Request*>& requests);

  const RequestContext& context() const { return context_; }
  const nlohmann::json& health() const { return health_; }
  const DemoSamples& samples() const { return samples_; }

 private:
  void activate(const std::string& adapter);
  // Unit-norm embeddings of the inputs, row after row.
  std::vector<float> embed(const std::vector<const Input*>& inputs);
  std::vector<float> embed_texts(const std::vector<std::string>& texts);
  std::vector<nlohmann::json> retrieve(const std::string& adapter, const std::vector<const Request*>& requests);

  omni::OmniPipeline pipeline_;
  int64_t dim_ = 0;
  std::vector<std::string> adapters_;
  std::string active_;
  std::unique_ptr<apps::GptRun> generator_;
  std::vector<std::string> index_;                        // default captions for /v1/retrieve
  std::map<std::string, std::vector<float>> index_rows_;  // their embeddings, by adapter ("" = none)
  RequestContext context_;
  DemoSamples samples_;
  nlohmann::json health_;
};

}  // namespace loom::serve
