// The page loom-serve answers at GET /: one self-contained HTML file (inline
// CSS and JavaScript, no external assets) where a person picks a picture
// (scaled to the model's image size in the browser) or a WAV recording and
// sees the caption, the transcript and the nearest captions, through the
// same JSON API as any client. GET /?demo=1 runs the server's built-in
// sample (GET /v1/sample) through it on load, the picture through the canvas
// as an upload goes, and marks <body data-demo="done"> (or "error") when the
// results are in the page, for headless-browser checks.
#pragma once

#include <string>

namespace loom::serve {

const std::string& web_page();

}  // namespace loom::serve
