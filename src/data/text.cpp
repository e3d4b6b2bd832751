// Fortune files -> clean UTF-8 records, corpora tagged by source, and the
// hash-based train/validation split (see include/loom/data/text.hpp).
#include "loom/data/text.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "loom/core/error.hpp"

namespace loom::data {

namespace {

std::string read_file_bytes(const std::string& path, const char* who) {
  LOOM_CHECK(!std::filesystem::is_directory(path), who, ": '", path, "' is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), who, ": cannot open '", path, "': ", std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  LOOM_CHECK(!in.bad(), who, ": error reading '", path, "'");
  return bytes.str();
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Removes CSI sequences: ESC '[' params (0x30-0x3F)* intermediates (0x20-0x2F)*
// final (0x40-0x7E). An interrupted sequence loses what was read of it.
std::string strip_csi(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] == '\x1b' && i + 1 < in.size() && in[i + 1] == '[') {
      size_t j = i + 2;
      while (j < in.size() && in[j] >= 0x30 && in[j] <= 0x3F) ++j;
      while (j < in.size() && in[j] >= 0x20 && in[j] <= 0x2F) ++j;
      if (j < in.size() && in[j] >= 0x40 && in[j] <= 0x7E) ++j;  // complete: drop the final too
      i = j;
      continue;
    }
    out.push_back(in[i++]);
  }
  return out;
}

// One line (no '\n') rendered the way a terminal shows backspace overstrike,
// with other control bytes dropped.
void render_line(std::string_view in, std::string& out) {
  std::string line;
  size_t cur = 0;
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\b') {
      if (cur > 0 && static_cast<unsigned char>(line[cur - 1]) < 0x80) --cur;
      continue;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) continue;
    if (cur < line.size()) {
      if (c < 0x80) {
        if (c != '_') line[cur] = ch;  // an underline never hides what it underlines
        ++cur;
        continue;
      }
      cur = line.size();  // a multi-byte character is never split: append it
    }
    line.push_back(ch);
    ++cur;
  }
  out += line;
}

std::string rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t')) --end;
  return std::string(s.substr(0, end));
}

// Trailing whitespace of each line and blank lines at both ends removed.
std::string trim_record(const std::vector<std::string_view>& lines) {
  std::vector<std::string> kept;
  kept.reserve(lines.size());
  for (auto line : lines) kept.push_back(rstrip(line));
  size_t first = 0, last = kept.size();
  while (first < last && kept[first].empty()) ++first;
  while (last > first && kept[last - 1].empty()) --last;
  std::string text;
  for (size_t i = first; i < last; ++i) {
    if (i > first) text.push_back('\n');
    text += kept[i];
  }
  return text;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string strip_u8(std::string_view name) {
  if (name.size() > 3 && name.substr(name.size() - 3) == ".u8") name.remove_suffix(3);
  return std::string(name);
}

}  // namespace

size_t utf8_invalid_offset(std::string_view bytes) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong 4-byte forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;  // 0x80-0xC1 (continuation or overlong lead) or 0xF5-0xFF
    }
    if (i + 1 >= n || s[i + 1] < lo || s[i + 1] > hi) return i;  // the sequence starting at i is malformed
    for (size_t k = 2; k < len; ++k)
      if (i + k >= n || !is_continuation(s[i + k])) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string clean_terminal_text(std::string_view bytes) {
  const std::string no_csi = strip_csi(bytes);
  std::string out;
  out.reserve(no_csi.size());
  size_t start = 0;
  while (start <= no_csi.size()) {
    size_t end = start;
    while (end < no_csi.size() && no_csi[end] != '\n' && no_csi[end] != '\r') ++end;
    render_line(std::string_view(no_csi).substr(start, end - start), out);
    if (end == no_csi.size()) break;
    out.push_back('\n');
    start = end + 1;
    if (no_csi[end] == '\r' && start < no_csi.size() && no_csi[start] == '\n') ++start;  // CRLF
  }
  return out;
}

std::vector<std::string> read_fortunes(const std::string& path) {
  std::string raw = read_file_bytes(path, "read_fortunes");
  const size_t bad = utf8_invalid_offset(raw);
  if (bad != std::string_view::npos) {
    const size_t line = 1 + static_cast<size_t>(std::count(raw.begin(), raw.begin() + bad, '\n'));
    std::ostringstream byte;
    byte << "0x" << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(static_cast<unsigned char>(raw[bad]));
    LOOM_FAIL("read_fortunes: '", path, "' is not valid UTF-8 at byte offset ", bad, " (line ", line, "): byte ",
              byte.str());
  }
  std::string_view body = raw;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  const std::string text = clean_terminal_text(body);

  std::vector<std::string> records;
  std::vector<std::string_view> lines;
  auto flush = [&] {
    std::string record = trim_record(lines);
    if (!record.empty()) records.push_back(std::move(record));
    lines.clear();
  };
  std::string_view rest = text;
  while (true) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    if (line == "%")
      flush();
    else
      lines.push_back(line);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  flush();
  return records;
}

size_t TextCorpus::bytes() const {
  size_t total = 0;
  for (const auto& r : records) total += r.text.size();
  return total;
}

std::vector<std::string> TextCorpus::texts() const {
  std::vector<std::string> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(r.text);
  return out;
}

TextCorpus load_corpus(const std::vector<std::string>& files) {
  TextCorpus corpus;
  corpus.files = files;
  for (const auto& file : files)
    for (auto& text : read_fortunes(file)) corpus.records.push_back({std::move(text), file});
  return corpus;
}

bool in_validation_split(std::string_view text, double val_fraction, uint64_t seed) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a 64
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  const uint64_t x = splitmix64(h ^ splitmix64(seed));
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53;  // [0, 1)
  return u < val_fraction;
}

TextSplit split_records(const std::vector<TextRecord>& records, double val_fraction, uint64_t seed) {
  LOOM_CHECK(val_fraction >= 0.0 && val_fraction <= 1.0, "split_records: val_fraction must lie in [0, 1], got ",
             val_fraction);
  TextSplit split;
  for (const auto& r : records) (in_validation_split(r.text, val_fraction, seed) ? split.val : split.train).push_back(r);
  return split;
}

std::string fortune_package(std::string_view name) {
  const std::string base = strip_u8(name);
  if (base == "tang300" || base == "song100" || base == "chinese") return "fortunes-zh";
  if (base == "fortunes" || base == "literature" || base == "riddles") return "fortunes-min";
  return "fortunes";
}

std::string require_fortune_file(const std::string& name, const std::string& dir) {
  const std::string base = strip_u8(name);
  const std::string path = dir + "/" + base + ".u8";
  LOOM_CHECK(std::filesystem::exists(path), "fortune file '", path, "' is missing: install the Debian package '",
             fortune_package(base), "' (apt-get install ", fortune_package(base), ", or run scripts/install-deps.sh)");
  return path;
}

std::vector<std::string> default_poetry_corpus_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* name : {"tang300", "song100", "songs-poems", "love", "wisdom", "literature", "fortunes", "riddles"})
    files.push_back(require_fortune_file(name, dir));
  return files;
}

}  // namespace loom::data
