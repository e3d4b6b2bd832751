// Training recipes: JSON with the sections model, data, train, optim, dist,
// eval. A recipe is resolved against a schema of defaults: every key the user
// writes must exist in the schema (an unknown key is an error naming its full
// path) and have the default's JSON type; missing keys take the default.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace loom::train {

using Json = nlohmann::json;

// Reads a recipe file; errors name the file and the JSON parse position.
Json read_recipe(const std::string& path);

// Applies "a.b.c=VALUE" to `recipe`. VALUE is parsed as JSON when it parses
// (numbers, true/false, arrays), otherwise taken as a string.
void apply_override(Json& recipe, const std::string& assignment);

// Fills defaults from `schema` and checks every key and type of `recipe`.
// `where` names the source in messages (e.g. the file name).
Json resolve(const Json& recipe, const Json& schema, const std::string& where);

// The schema shared by every task: train, optim, dist and eval sections.
Json common_schema();

}  // namespace loom::train
