// Reading and writing safetensors files (format and rules in
// loom/io/safetensors.hpp; header validation in safetensors_header.cpp).
#include "loom/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "loom/io/atomic_file.hpp"
#include "safetensors_header.hpp"

namespace loom::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; loom's io layer assumes a little-endian host");

namespace {

using detail::SafetensorsEntry;
using detail::SafetensorsHeader;

std::string quoted(const std::string& path) { return "safetensors: '" + path + "'"; }

// A BOOL tensor's bytes must be 0 or 1 (anything else is not a bool).
void check_bools(const Tensor& t, const SafetensorsEntry& e, const std::string& where) {
  if (e.dtype != DType::boolean) return;
  const auto* p = static_cast<const uint8_t*>(t.raw_data());
  for (uint64_t i = 0; i < e.end - e.begin; ++i)
    LOOM_CHECK(p[i] <= 1, where, ": tensor \"", e.name, "\" (BOOL) has the byte ", int(p[i]), " at element ", i,
               " (must be 0 or 1)");
}

// ---- reading a file ----

class File {
 public:
  File(const std::string& path, const std::string& where) : where_(where) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    LOOM_CHECK(fd_ >= 0, where_, ": cannot open: ", std::strerror(errno));
    struct stat st{};
    LOOM_CHECK(::fstat(fd_, &st) == 0, where_, ": cannot stat: ", std::strerror(errno));
    LOOM_CHECK(S_ISREG(st.st_mode), where_, ": not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }

  void read_at(void* out, uint64_t n, uint64_t offset, const char* what) const {
    auto* p = static_cast<char*>(out);
    uint64_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      LOOM_CHECK(r >= 0, where_, ": reading ", what, " failed: ", std::strerror(errno));
      LOOM_CHECK(r > 0, where_, ": file ended while reading ", what, " (it changed while being read?)");
      done += static_cast<uint64_t>(r);
    }
  }

 private:
  std::string where_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct FileHeader {
  SafetensorsHeader header;
  uint64_t data_start = 0;
};

FileHeader read_file_header(const File& file, const std::string& where) {
  LOOM_CHECK(file.size() >= 8, where, ": file is ", file.size(), " bytes, too short for the 8-byte header length");
  uint8_t prefix[8];
  file.read_at(prefix, 8, 0, "the header length");
  const uint64_t n = detail::check_safetensors_prefix(prefix, file.size(), where);
  std::string text(n, '\0');  // n is within the cap and the file
  file.read_at(text.data(), n, 8, "the header");
  FileHeader out;
  out.data_start = 8 + n;
  out.header = detail::parse_safetensors_header(text.data(), n, file.size() - out.data_start, where);
  return out;
}

}  // namespace

SafetensorsContents parse_safetensors(const uint8_t* data, size_t size, const std::string& name_for_errors) {
  const std::string where = quoted(name_for_errors);
  LOOM_CHECK(data != nullptr || size == 0, where, ": null buffer");
  LOOM_CHECK(size >= 8, where, ": file is ", size, " bytes, too short for the 8-byte header length");
  const uint64_t n = detail::check_safetensors_prefix(data, size, where);
  const uint64_t data_start = 8 + n;
  const SafetensorsHeader header =
      detail::parse_safetensors_header(reinterpret_cast<const char*>(data + 8), n, size - data_start, where);
  SafetensorsContents out;
  out.metadata = header.metadata;
  for (const auto& e : header.entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), data + data_start + e.begin, e.end - e.begin);
    check_bools(t, e, where);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

NamedTensors load_safetensors(const std::string& path) {
  const std::string where = quoted(path);
  const File file(path, where);
  const FileHeader fh = read_file_header(file, where);
  NamedTensors out;
  for (const auto& e : fh.header.entries) {
    Tensor t = empty(e.shape, e.dtype);
    const std::string what = "tensor \"" + e.name + "\"";
    file.read_at(t.raw_data(), e.end - e.begin, fh.data_start + e.begin, what.c_str());
    check_bools(t, e, where);
    out.emplace_back(e.name, std::move(t));
  }
  return out;
}

Metadata safetensors_metadata(const std::string& path) {
  const std::string where = quoted(path);
  const File file(path, where);
  return read_file_header(file, where).header.metadata;
}

// ---- writing ----

void write_safetensors(const ByteSink& sink, const NamedTensors& tensors, const Metadata& metadata) {
  using nlohmann::json;
  // json::dump throws on invalid UTF-8; say which string it was.
  auto dump = [](const json& v, const std::string& what) {
    try {
      return v.dump();
    } catch (const json::exception& e) {
      LOOM_FAIL("save_safetensors: ", what, " is not valid UTF-8 (", e.what(), ")");
    }
  };

  std::vector<Tensor> contiguous;
  std::set<std::string> seen;
  std::string header = "{";
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header += "\"__metadata__\":" + dump(m, "a metadata key or value");
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    LOOM_CHECK(name != "__metadata__", "save_safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    LOOM_CHECK(seen.insert(name).second, "save_safetensors: tensor name \"", name, "\" is given twice");
    LOOM_CHECK(tensor.defined(), "save_safetensors: tensor \"", name, "\" is undefined");
    LOOM_CHECK(tensor.device().is_cpu(), "save_safetensors: tensor \"", name, "\" is on ", tensor.device().str(),
               "; copy it to the CPU first");
    Tensor c = tensor.contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * itemsize(c.dtype());
    json entry = {{"dtype", safetensors_dtype_name(c.dtype())},
                  {"shape", c.shape()},
                  {"data_offsets", {offset, offset + nbytes}}};
    if (header.size() > 1) header += ',';
    header += dump(json(name), "tensor name \"" + name + "\"") + ":" + entry.dump();
    offset += nbytes;
    contiguous.push_back(std::move(c));
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // the data block starts 8-byte aligned

  uint8_t prefix[8];
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(n >> (8 * i));
  sink(prefix, 8);
  sink(header.data(), header.size());
  for (const Tensor& c : contiguous) {
    const size_t nbytes = static_cast<size_t>(c.numel()) * itemsize(c.dtype());
    if (nbytes > 0) sink(c.raw_data(), nbytes);
  }
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  AtomicFile file(path);
  write_safetensors([&](const void* p, size_t n) { file.write(p, n); }, tensors, metadata);
  file.commit();
}

}  // namespace loom::io
