// Loading the served models and running batches (see engine.hpp).
#include "engine.hpp"

#include <algorithm>
#include <filesystem>

#include "api_error.hpp"
#include "eval_scenes.hpp"
#include "loom/io/checkpoint.hpp"
#include "loom/nn/lora.hpp"
#include "loom/ops/ops.hpp"
#include "retrieval.hpp"

namespace fs = std::filesystem;

namespace loom::serve {

namespace {

using nlohmann::json;

constexpr size_t kTextChunk = 256;  // texts per embedding call when embedding many

json rows_json(const float* rows, size_t n, size_t dim) {
  json out = json::array();
  for (size_t i = 0; i < n; ++i) out.push_back(std::vector<float>(rows + i * dim, rows + (i + 1) * dim));
  return out;
}

}  // namespace

Engine::Engine(const EngineOptions& o, const std::function<void(const std::string&)>& log) : pipeline_(o.run) {
  const std::string run_dir = io::run_of_checkpoint(pipeline_.checkpoint());
  dim_ = pipeline_.config().embed_dim;
  log("model " + run_dir + " (checkpoint " + pipeline_.checkpoint() + ", embeddings of " + std::to_string(dim_) +
      ")");

  for (const auto& [name, dir] : o.adapters) {
    LOOM_CHECK(std::find(adapters_.begin(), adapters_.end(), name) == adapters_.end(), "--adapter: the name '", name,
               "' is given twice");
    nn::load_adapter(pipeline_.model(), name, dir);
    adapters_.push_back(name);
    log("adapter " + name + " from " + dir);
  }
  if (!adapters_.empty()) {
    pipeline_.model().eval();  // the adapters' modules join in eval mode (no dropout)
    nn::set_active_adapter(pipeline_.model(), "");
  }

  if (!o.generator.empty()) {
    generator_ = std::make_unique<apps::GptRun>(o.generator);
    log("generator " + generator_->checkpoint());
  }

  const EvalScenes scenes = find_eval_scenes(run_dir);
  if (!o.index_file.empty()) {
    index_ = read_caption_file(o.index_file);
    log("caption index: " + std::to_string(index_.size()) + " captions from " + o.index_file);
  } else if (scenes.dataset) {
    index_ = scene_captions(*scenes.dataset);
    log("caption index: " + std::to_string(index_.size()) + " captions of the evaluation scenes in " + scenes.root);
  } else {
    log("caption index: none (" + scenes.missing + "); /v1/retrieve needs \"candidates\" or --index");
  }
  if (!index_.empty()) {
    std::vector<std::string> names = adapters_;
    names.insert(names.begin(), "");
    for (const auto& name : names) {
      activate(name);
      index_rows_[name] = embed_texts(index_);
    }
  }
  samples_ = make_demo_samples(scenes.dataset.get(), pipeline_.config().image_size);

  context_.image_side = pipeline_.config().image_size;
  context_.adapters = adapters_;
  context_.generator = generator_ != nullptr;
  context_.index = !index_.empty();
  health_ = {{"status", "ok"},
             {"model", fs::path(run_dir).filename().string()},
             {"run", run_dir},
             {"checkpoint", pipeline_.checkpoint()},
             {"embed_dim", dim_},
             {"image_size", context_.image_side},
             {"adapters", adapters_},
             {"generator", generator_ ? json(generator_->checkpoint()) : json(nullptr)},
             {"index_captions", index_.size()},
             {"samples", samples_.source}};
}

void Engine::activate(const std::string& adapter) {
  if (adapters_.empty() || adapter == active_) return;
  nn::set_active_adapter(pipeline_.model(), adapter);
  active_ = adapter;
}

std::vector<float> Engine::embed_texts(const std::vector<std::string>& texts) {
  std::vector<float> out;
  out.reserve(texts.size() * static_cast<size_t>(dim_));
  for (size_t i = 0; i < texts.size(); i += kTextChunk) {
    const std::vector<std::string> chunk(texts.begin() + static_cast<long>(i),
                                         texts.begin() + static_cast<long>(std::min(texts.size(), i + kTextChunk)));
    const auto rows = pipeline_.embed_texts(chunk).to_vector<float>();
    out.insert(out.end(), rows.begin(), rows.end());
  }
  return out;
}

std::vector<float> Engine::embed(const std::vector<const Input*>& inputs) {
  const size_t dim = static_cast<size_t>(dim_);
  std::vector<float> out(inputs.size() * dim);
  // One call per modality; rows go back to the inputs' positions.
  std::vector<size_t> texts_at, images_at, speech_at;
  std::vector<std::string> texts;
  std::vector<Tensor> images;
  std::vector<std::vector<float>> speech;
  for (size_t i = 0; i < inputs.size(); ++i) {
    switch (inputs[i]->kind) {
      case Input::Kind::text: texts_at.push_back(i), texts.push_back(inputs[i]->text); break;
      case Input::Kind::image: images_at.push_back(i), images.push_back(inputs[i]->image); break;
      case Input::Kind::audio: speech_at.push_back(i), speech.push_back(inputs[i]->speech); break;
    }
  }
  auto place = [&](const std::vector<size_t>& at, const std::vector<float>& rows) {
    for (size_t r = 0; r < at.size(); ++r)
      std::copy(rows.begin() + static_cast<long>(r * dim), rows.begin() + static_cast<long>((r + 1) * dim),
                out.begin() + static_cast<long>(at[r] * dim));
  };
  if (!texts.empty()) place(texts_at, embed_texts(texts));
  if (!images.empty()) place(images_at, pipeline_.embed_images(stack(images, 0)).to_vector<float>());
  if (!speech.empty()) place(speech_at, pipeline_.embed_speech(speech).to_vector<float>());
  return out;
}

std::vector<json> Engine::retrieve(const std::string& adapter, const std::vector<const Request*>& requests) {
  const size_t dim = static_cast<size_t>(dim_);
  std::vector<const Input*> queries;
  std::vector<std::string> candidates;  // of every request that brings its own, in order
  for (const Request* r : requests) {
    queries.push_back(&r->inputs.at(0));
    if (r->has_candidates) candidates.insert(candidates.end(), r->candidates.begin(), r->candidates.end());
    else if (index_.empty())
      throw bad_request(kNoIndex);
  }
  const std::vector<float> query_rows = embed(queries);
  const std::vector<float> candidate_rows = embed_texts(candidates);
  std::vector<json> out;
  size_t offset = 0;  // into candidates
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = *requests[i];
    const std::vector<std::string>& texts = r.has_candidates ? r.candidates : index_;
    std::vector<float> own;
    if (r.has_candidates) {
      own.assign(candidate_rows.begin() + static_cast<long>(offset * dim),
                 candidate_rows.begin() + static_cast<long>((offset + texts.size()) * dim));
      offset += texts.size();
    }
    const auto hits = nearest(query_rows.data() + i * dim, r.has_candidates ? own : index_rows_.at(adapter), dim,
                              static_cast<size_t>(r.k));
    json results = json::array();
    for (const Hit& h : hits)
      results.push_back({{"text", texts[static_cast<size_t>(h.index)]}, {"score", h.score}, {"index", h.index}});
    out.push_back({{"results", results}, {"searched", r.has_candidates ? "candidates" : "index"}});
  }
  return out;
}

std::vector<json> Engine::run(const BatchKey& key, const std::vector<const Request*>& requests) {
  if (key.endpoint != Endpoint::generate) activate(key.adapter);
  std::vector<json> out;
  switch (key.endpoint) {
    case Endpoint::embed: {
      std::vector<const Input*> inputs;
      for (const Request* r : requests)
        for (const Input& in : r->inputs) inputs.push_back(&in);
      const std::vector<float> rows = embed(inputs);
      const size_t dim = static_cast<size_t>(dim_);
      size_t row = 0;
      for (const Request* r : requests) {
        out.push_back({{"embeddings", rows_json(rows.data() + row * dim, r->inputs.size(), dim)}, {"dim", dim_}});
        row += r->inputs.size();
      }
      return out;
    }
    case Endpoint::retrieve: return retrieve(key.adapter, requests);
    case Endpoint::caption: {
      std::vector<Tensor> images;
      for (const Request* r : requests) images.push_back(r->inputs.at(0).image);
      for (auto& text : pipeline_.caption(stack(images, 0), key.language))
        out.push_back({{"caption", text}, {"language", key.language}});
      return out;
    }
    case Endpoint::transcribe: {
      std::vector<std::vector<float>> speech;
      for (const Request* r : requests) speech.push_back(r->inputs.at(0).speech);
      for (auto& text : pipeline_.transcribe(speech, key.language))
        out.push_back({{"text", text}, {"language", key.language}});
      return out;
    }
    case Endpoint::generate:
      if (!generator_) throw bad_request(kNoGenerator);
      for (const Request* r : requests) {
        models::SamplingOptions s;
        s.temperature = r->temperature;
        s.top_k = r->top_k;
        s.max_tokens = r->max_tokens;
        const auto c = generator_->continue_text(r->prompt, s, r->seed);
        out.push_back({{"text", c.text}, {"completion", c.completion}, {"tokens", c.new_tokens}});
      }
      return out;
  }
  return out;
}

}  // namespace loom::serve
