// Text corpora for the language models: the Debian fortune files
// (/usr/share/games/fortunes/*.u8, packages fortunes-min, fortunes and
// fortunes-zh), read into clean UTF-8 records, tagged with their source, and
// split into train/validation by a hash of each record's text, so the split
// does not depend on file order and duplicated records never straddle it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::data {

// Where Debian installs the fortune files.
inline constexpr const char* kFortuneDir = "/usr/share/games/fortunes";

// Byte offset where the first malformed UTF-8 sequence starts (a stray
// continuation byte, a lead byte without its continuations, an overlong form,
// a surrogate or a code point above U+10FFFF: RFC 3629), or
// std::string_view::npos when the bytes are valid UTF-8.
size_t utf8_invalid_offset(std::string_view bytes);

// Terminal clean-up the fortune files need, in this order:
//  - ANSI CSI sequences (ESC '[' parameters... final letter, e.g. the colours
//    "\x1b[1;33m" of tang300/song100/chinese) are removed; an interrupted
//    sequence (ESC '[' params followed by a byte that cannot continue it, as
//    in chinese's "\x1b[;\x1b[34m") loses its ESC '[' and parameters;
//  - CRLF (and a lone CR) become LF;
//  - backspace overstrike is rendered per line as a terminal would show it
//    ("_\bX" and "X\b_" give X, "'\be" gives e, "___\b\b\bone" gives one);
//    a backspace never moves back over a non-ASCII byte (it is dropped then);
//  - every other C0 control byte except '\t' and '\n' (BEL, a stray ESC, ...)
//    and DEL are removed.
// Input and output are bytes; valid UTF-8 stays valid UTF-8.
std::string clean_terminal_text(std::string_view bytes);

// Reads one fortune file: records are separated by lines holding only "%".
// The whole file must be valid UTF-8 (a leading BOM is skipped); otherwise
// loom::Error names the file, the byte offset, line and the offending byte.
// Each record is cleaned with clean_terminal_text, then trimmed: trailing
// whitespace of every line and blank lines at both ends are removed (the
// indentation of the first line is kept: it matters for verse and ASCII art).
// Empty records are dropped.
std::vector<std::string> read_fortunes(const std::string& path);

struct TextRecord {
  std::string text;
  std::string source;  // the path it was read from
};

struct TextCorpus {
  std::vector<std::string> files;   // in the order given
  std::vector<TextRecord> records;  // file by file, in file order
  size_t bytes() const;             // total bytes of record text
  std::vector<std::string> texts() const;
};

// read_fortunes on every file, records tagged with their file.
TextCorpus load_corpus(const std::vector<std::string>& files);

// True when `text` belongs to the validation side for this fraction and seed:
// a 64-bit FNV-1a hash of the text, mixed with the seed (splitmix64), mapped
// to [0, 1) and compared with val_fraction. Only the text is hashed (not the
// source), so the answer does not depend on file order or position.
bool in_validation_split(std::string_view text, double val_fraction, uint64_t seed);

struct TextSplit {
  std::vector<TextRecord> train, val;  // each in input order
};

// Deterministic train/validation split by in_validation_split; val_fraction
// must lie in [0, 1].
TextSplit split_records(const std::vector<TextRecord>& records, double val_fraction, uint64_t seed);

// The Debian package that installs fortune file `name` ("tang300" or
// "tang300.u8"): fortunes-zh, fortunes-min or fortunes.
std::string fortune_package(std::string_view name);

// Path of fortune file `name` (".u8" appended when missing) under `dir`;
// loom::Error naming the path and the package to install when it is absent.
std::string require_fortune_file(const std::string& name, const std::string& dir = kFortuneDir);

// The poetry corpus of the GPT example, all under `dir`:
//   tang300.u8, song100.u8             (fortunes-zh: Tang poems, Song ci)
//   songs-poems.u8, love.u8, wisdom.u8 (fortunes)
//   literature.u8, fortunes.u8, riddles.u8 (fortunes-min)
// about 117 KB of Chinese verse and 415 KB of English. A missing file is a
// loom::Error naming it and the package (scripts/install-deps.sh installs all).
std::vector<std::string> default_poetry_corpus_files(const std::string& dir = kFortuneDir);

}  // namespace loom::data
