// The error a request handler answers with: an HTTP status (4xx for what the
// client sent) and a message, sent as {"error": MESSAGE}. Anything else that
// escapes a handler becomes a 500.
#pragma once

#include <stdexcept>
#include <string>

namespace loom::serve {

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

// 400 Bad Request with `message`.
inline ApiError bad_request(const std::string& message) { return ApiError(400, message); }

}  // namespace loom::serve
