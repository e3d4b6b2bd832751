// The strict 16-bit PCM WAV reader and the canonical writer (see wav.hpp).
#include "loom/audio/wav.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "loom/core/error.hpp"
#include "loom/io/atomic_file.hpp"

namespace loom::audio {

namespace {

uint32_t u32le(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint16_t u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}

}  // namespace

Wav parse_wav(const uint8_t* data, size_t size, const std::string& name) {
  LOOM_CHECK(size >= 12, "read_wav: ", name, ": file has ", size, " bytes, too short for the 12-byte RIFF header");
  LOOM_CHECK(std::memcmp(data, "RIFF", 4) == 0, "read_wav: ", name, ": RIFF tag missing (not a WAV file)");
  LOOM_CHECK(std::memcmp(data + 8, "WAVE", 4) == 0, "read_wav: ", name, ": RIFF form type is not WAVE");
  const uint64_t riff_size = u32le(data + 4);
  LOOM_CHECK(riff_size + 8 <= size, "read_wav: ", name, ": RIFF size ", riff_size, " + 8 exceeds the file size ",
             size, " (truncated file)");
  const size_t end = static_cast<size_t>(riff_size + 8);
  Wav wav;
  bool have_fmt = false;
  size_t pos = 12;
  while (true) {
    LOOM_CHECK(pos + 8 <= end, "read_wav: ", name, ": no data chunk",
               have_fmt ? "" : " and no fmt chunk", " before the end of the RIFF body at byte ", end);
    const uint8_t* chunk = data + pos;
    const uint64_t chunk_size = u32le(chunk + 4);
    const std::string id(reinterpret_cast<const char*>(chunk), 4);
    const size_t body = pos + 8;
    if (id == "fmt ") {
      LOOM_CHECK(chunk_size >= 16, "read_wav: ", name, ": fmt chunk has ", chunk_size, " bytes, expected at least 16");
      LOOM_CHECK(body + chunk_size <= end, "read_wav: ", name, ": fmt chunk size ", chunk_size,
                 " runs past the end of the file");
      const uint8_t* f = data + body;
      const uint16_t format = u16le(f), channels = u16le(f + 2), bits = u16le(f + 14), block_align = u16le(f + 12);
      const uint32_t rate = u32le(f + 4), byte_rate = u32le(f + 8);
      LOOM_CHECK(format == 1, "read_wav: ", name, ": fmt audio format is ", format, ", only 1 (PCM) is supported");
      LOOM_CHECK(channels == 1 || channels == 2, "read_wav: ", name, ": fmt channels is ", channels,
                 ", expected 1 or 2");
      LOOM_CHECK(bits == 16, "read_wav: ", name, ": fmt bits per sample is ", bits, ", only 16 is supported");
      LOOM_CHECK(rate > 0 && rate <= 1'000'000, "read_wav: ", name, ": fmt sample rate ", rate,
                 " is out of range (1..1000000)");
      LOOM_CHECK(block_align == channels * 2, "read_wav: ", name, ": fmt block align is ", block_align, ", expected ",
                 channels * 2, " for ", channels, " channel(s) of 16 bits");
      LOOM_CHECK(byte_rate == rate * block_align, "read_wav: ", name, ": fmt byte rate is ", byte_rate,
                 ", expected sample rate x block align = ", static_cast<uint64_t>(rate) * block_align);
      wav.sample_rate = static_cast<int>(rate);
      wav.channels = channels;
      have_fmt = true;
    } else if (id == "data") {
      LOOM_CHECK(have_fmt, "read_wav: ", name, ": data chunk at byte ", pos, " comes before any fmt chunk");
      LOOM_CHECK(body + chunk_size <= end, "read_wav: ", name, ": data chunk size ", chunk_size, " at byte ", pos,
                 " exceeds the file size ", size, " (truncated file)");
      const uint64_t frame_bytes = 2u * wav.channels;
      LOOM_CHECK(chunk_size % frame_bytes == 0, "read_wav: ", name, ": data chunk size ", chunk_size,
                 " is not a whole number of ", frame_bytes, "-byte frames");
      wav.samples.resize(chunk_size / 2);
      const uint8_t* d = data + body;
      for (size_t i = 0; i < wav.samples.size(); ++i) wav.samples[i] = static_cast<int16_t>(u16le(d + 2 * i));
      return wav;
    }
    // Any other chunk (LIST, fact, cue, ...) is skipped, with its pad byte.
    const uint64_t next = body + chunk_size + (chunk_size & 1);
    LOOM_CHECK(body + chunk_size <= end, "read_wav: ", name, ": chunk '", id, "' of size ", chunk_size,
               " runs past the end of the file");
    pos = static_cast<size_t>(std::min<uint64_t>(next, end));
  }
}

Wav read_wav(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), "read_wav: cannot open ", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_wav(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

std::string encode_wav(const Wav& wav) {
  LOOM_CHECK(wav.channels == 1 || wav.channels == 2, "write_wav: channels is ", wav.channels, ", expected 1 or 2");
  LOOM_CHECK(wav.sample_rate > 0, "write_wav: sample rate is ", wav.sample_rate, ", expected > 0");
  LOOM_CHECK(wav.samples.size() % wav.channels == 0, "write_wav: ", wav.samples.size(),
             " samples are not a whole number of ", wav.channels, "-channel frames");
  const uint32_t data_bytes = static_cast<uint32_t>(wav.samples.size() * 2);
  std::string s;
  s.reserve(44 + data_bytes);
  s += "RIFF";
  put_u32(s, 36 + data_bytes);
  s += "WAVEfmt ";
  put_u32(s, 16);
  put_u16(s, 1);
  put_u16(s, static_cast<uint16_t>(wav.channels));
  put_u32(s, static_cast<uint32_t>(wav.sample_rate));
  put_u32(s, static_cast<uint32_t>(wav.sample_rate * wav.channels * 2));
  put_u16(s, static_cast<uint16_t>(wav.channels * 2));
  put_u16(s, 16);
  s += "data";
  put_u32(s, data_bytes);
  for (int16_t v : wav.samples) put_u16(s, static_cast<uint16_t>(v));
  return s;
}

void write_wav(const std::string& path, const Wav& wav) { io::atomic_write_file(path, encode_wav(wav)); }

std::vector<float> to_mono_float(const Wav& wav) {
  const int64_t n = wav.frames();
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0;
    for (int c = 0; c < wav.channels; ++c) acc += wav.samples[i * wav.channels + c];
    out[i] = acc / (32768.0f * wav.channels);
  }
  return out;
}

Wav from_float(const std::vector<float>& samples, int sample_rate) {
  Wav wav;
  wav.sample_rate = sample_rate;
  wav.channels = 1;
  wav.samples.resize(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const float v = std::clamp(samples[i], -1.0f, 1.0f) * 32767.0f;
    wav.samples[i] = static_cast<int16_t>(std::lrint(v));
  }
  return wav;
}

}  // namespace loom::audio
