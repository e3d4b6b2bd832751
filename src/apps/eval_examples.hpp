// Pictures of what an omni model sees and says: from the "examples" of an
// eval.json and the run's evaluation data, writes DIR/scenes.png (the
// scenes), DIR/speech.png (their English log-mel spectrograms), DIR/video.png
// (the clips, frame by frame) and DIR/examples.md (references, generated
// captions, transcripts and nearest captions beside each picture's column).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace loom::apps {

void write_eval_examples(const nlohmann::json& config, const nlohmann::json& eval, const std::string& dir);

}  // namespace loom::apps
