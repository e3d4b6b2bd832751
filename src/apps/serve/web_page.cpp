// The web page's HTML, CSS and JavaScript (see web_page.hpp).
#include "web_page.hpp"

namespace loom::serve {

const std::string& web_page() {
  static const std::string page = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loom-serve</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
  #model { color: #666; font-size: 0.85rem; margin-top: 0; word-break: break-all; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: 0.6rem 1rem; }
  label { display: inline-block; margin: 0.3rem 1.2rem 0.3rem 0; }
  .panes { display: flex; gap: 2rem; flex-wrap: wrap; }
  .pane { flex: 1 1 20rem; }
  canvas { width: 192px; height: 192px; image-rendering: pixelated; background: #000; border-radius: 4px; }
  dt { font-weight: 600; margin-top: 0.8rem; }
  dd { margin: 0.2rem 0 0 0; }
  ol { margin: 0.2rem 0; padding-left: 1.4rem; }
  .score { color: #888; font-size: 0.85rem; margin-left: 0.4rem; }
  #status { color: #a00; min-height: 1.2rem; }
</style>
</head>
<body>
<h1>loom-serve</h1>
<p id="model">loading…</p>
<fieldset>
  <label>Picture <input type="file" id="image-file" accept="image/*"></label>
  <label>Recording (WAV) <input type="file" id="audio-file" accept=".wav,audio/wav,audio/x-wav"></label>
  <br>
  <label>Language <select id="language"><option value="en">English</option><option value="zh">中文</option></select></label>
  <label>Adapter <select id="adapter"><option value="">(none)</option></select></label>
</fieldset>
<p id="status"></p>
<div class="panes">
  <div class="pane">
    <canvas id="preview" width="64" height="64"></canvas>
    <dl>
      <dt>Caption</dt><dd id="caption">–</dd>
      <dt>Nearest captions</dt><dd><ol id="image-neighbours"></ol></dd>
    </dl>
  </div>
  <div class="pane">
    <audio id="player" controls></audio>
    <dl>
      <dt>Transcript</dt><dd id="transcript">–</dd>
      <dt>Nearest captions</dt><dd><ol id="audio-neighbours"></ol></dd>
    </dl>
  </div>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let health = { image_size: 64, index_captions: 0, adapters: [] };

async function api(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body) });
  const answer = await res.json();
  if (!res.ok) throw new Error(path + ": " + (answer.error || "HTTP " + res.status));
  return answer;
}

function common() { return $("adapter").value ? { adapter: $("adapter").value } : {}; }

function showNeighbours(list, results) {
  list.replaceChildren();
  for (const r of results) {
    const li = document.createElement("li");
    li.textContent = r.text;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = r.score.toFixed(3);
    li.appendChild(score);
    list.appendChild(li);
  }
}

async function nearest(list, query) {
  if (!health.index_captions) { list.textContent = "(the server has no caption index)"; return; }
  showNeighbours(list, (await api("/v1/retrieve", { ...query, k: 5, ...common() })).results);
}

async function describeImage(png64) {
  $("caption").textContent = "…";
  const answer = await api("/v1/caption", { image_png_base64: png64, language: $("language").value, ...common() });
  $("caption").textContent = answer.caption;
  await nearest($("image-neighbours"), { image_png_base64: png64 });
}

async function describeAudio(wav64) {
  $("transcript").textContent = "…";
  const answer = await api("/v1/transcribe", { audio_wav_base64: wav64, language: $("language").value, ...common() });
  $("transcript").textContent = answer.text;
  await nearest($("audio-neighbours"), { audio_wav_base64: wav64 });
}

function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

// Draws a picture scaled onto the model-sized canvas and answers the canvas as base64 PNG.
function drawAndExport(source) {
  const canvas = $("preview"), ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/png").split(",")[1];
}

async function guarded(work) {
  $("status").textContent = "";
  try { await work(); } catch (e) { $("status").textContent = e.message; throw e; }
}

$("image-file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  guarded(async () => describeImage(drawAndExport(await createImageBitmap(file)))).catch(() => {});
});

$("audio-file").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  $("player").src = URL.createObjectURL(file);
  guarded(async () => describeAudio(base64(new Uint8Array(await file.arrayBuffer())))).catch(() => {});
});

async function demo() {
  const sample = await (await fetch("/v1/sample")).json();
  const img = new Image();
  img.src = "data:image/png;base64," + sample.image_png_base64;
  await img.decode();
  $("player").src = "data:audio/wav;base64," + sample.audio_wav_base64;
  await describeImage(drawAndExport(img));  // the way an upload goes: through the canvas
  await describeAudio(sample.audio_wav_base64);
}

async function init() {
  health = await (await fetch("/healthz")).json();
  $("model").textContent = "model " + health.model + " · checkpoint " + health.checkpoint +
                           " · " + health.index_captions + " captions indexed";
  $("preview").width = $("preview").height = health.image_size;
  for (const name of health.adapters) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    $("adapter").appendChild(option);
  }
  if (new URLSearchParams(location.search).get("demo") === "1") {
    await guarded(demo);
    document.body.dataset.demo = "done";
  }
}

init().catch((e) => {
  $("status").textContent = e.message;
  document.body.dataset.demo = "error";
});
</script>
</body>
</html>
)PAGE";
  return page;
}

}  // namespace loom::serve
