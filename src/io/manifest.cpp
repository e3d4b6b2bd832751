// Writing, parsing and verifying checkpoint manifests (loom/io/manifest.hpp).
#include "loom/io/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/io/sha256.hpp"
#include "strict_json.hpp"

namespace loom::io {

using nlohmann::json;
using detail::json_kind;

const ManifestEntry* Manifest::find(const std::string& name) const {
  for (const auto& e : files)
    if (e.name == name) return &e;
  return nullptr;
}

namespace {

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool is_lower_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void check_keys(const json& obj, std::initializer_list<const char*> keys, const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    (void)value;
    bool known = false;
    for (const char* k : keys) known = known || key == k;
    LOOM_CHECK(known, where, " has the unknown key \"", key, "\"");
  }
  for (const char* k : keys) LOOM_CHECK(obj.contains(k), where, " has no \"", k, "\"");
}

// A file opened for reading, closed on every path.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string manifest_to_json(const Manifest& manifest) {
  json files = json::array();
  for (const auto& e : manifest.files) {
    LOOM_CHECK(is_plain_file_name(e.name), "manifest: \"", e.name, "\" is not a plain file name");
    files.push_back({{"name", e.name}, {"bytes", e.bytes}, {"sha256", e.sha256}});
  }
  const json doc = {{"format", kManifestFormat}, {"version", kManifestVersion}, {"files", files}};
  return doc.dump(2) + "\n";
}

Manifest parse_manifest(const std::string& text, const std::string& name_for_errors) {
  const std::string where = "manifest '" + name_for_errors + "'";
  LOOM_CHECK(text.size() <= kMaxManifestBytes, where, " is ", text.size(), " bytes (a manifest is at most ",
             kMaxManifestBytes, ")");
  const json doc = detail::parse_strict_json(text.data(), text.size(), where);
  LOOM_CHECK(doc.is_object(), where, " is ", json_kind(doc), " (must be a JSON object)");
  check_keys(doc, {"format", "version", "files"}, where);
  LOOM_CHECK(doc["format"] == kManifestFormat, where, ": \"format\" is ", doc["format"].dump(), " (expected \"",
             kManifestFormat, "\")");
  LOOM_CHECK(doc["version"] == kManifestVersion, where, ": \"version\" is ", doc["version"].dump(),
             " (this loom reads version ", kManifestVersion, ")");
  const json& files = doc["files"];
  LOOM_CHECK(files.is_array(), where, ": \"files\" is ", json_kind(files), " (must be an array)");

  Manifest out;
  std::set<std::string> names;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string field = where + ": \"files\"[" + std::to_string(i) + "]";
    const json& f = files[i];
    LOOM_CHECK(f.is_object(), field, " is ", json_kind(f), " (must be an object)");
    check_keys(f, {"name", "bytes", "sha256"}, field);
    ManifestEntry e;
    LOOM_CHECK(f["name"].is_string(), field, ": \"name\" is ", json_kind(f["name"]), " (must be a string)");
    e.name = f["name"].get<std::string>();
    LOOM_CHECK(is_plain_file_name(e.name), field, ": \"name\" ", f["name"].dump(), " is not a plain file name");
    LOOM_CHECK(names.insert(e.name).second, field, ": \"name\" \"", e.name, "\" is listed twice");
    LOOM_CHECK(f["bytes"].is_number_unsigned(), field, ": \"bytes\" is ", f["bytes"].dump(),
               " (must be a non-negative integer)");
    e.bytes = f["bytes"].get<uint64_t>();
    LOOM_CHECK(f["sha256"].is_string() && is_lower_hex64(f["sha256"].get<std::string>()), field, ": \"sha256\" is ",
               f["sha256"].dump(), " (must be 64 lowercase hex digits)");
    e.sha256 = f["sha256"].get<std::string>();
    out.files.push_back(std::move(e));
  }
  return out;
}

ManifestEntry describe_file(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  LOOM_CHECK(f.fd >= 0, "checkpoint: '", path, "' cannot be opened: ", std::strerror(errno));
  struct stat st{};
  LOOM_CHECK(::fstat(f.fd, &st) == 0 && S_ISREG(st.st_mode), "checkpoint: '", path, "' is not a regular file");
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  uint64_t total = 0;
  while (true) {
    const ssize_t r = ::read(f.fd, buffer.data(), buffer.size());
    if (r < 0 && errno == EINTR) continue;
    LOOM_CHECK(r >= 0, "checkpoint: reading '", path, "' failed: ", std::strerror(errno));
    if (r == 0) break;
    hash.update(buffer.data(), static_cast<size_t>(r));
    total += static_cast<uint64_t>(r);
  }
  return {name, total, hash.hex_digest()};
}

void verify_manifest(const std::string& dir, const Manifest& manifest) {
  for (const auto& expected : manifest.files) {
    const std::string path = dir + "/" + expected.name;
    struct stat st{};
    LOOM_CHECK(::stat(path.c_str(), &st) == 0, "checkpoint: '", path, "' is listed in manifest.json but missing (",
               std::strerror(errno), ")");
    LOOM_CHECK(static_cast<uint64_t>(st.st_size) == expected.bytes, "checkpoint: '", path, "' is ", st.st_size,
               " bytes but manifest.json lists ", expected.bytes, " (truncated or changed)");
    const ManifestEntry actual = describe_file(dir, expected.name);
    LOOM_CHECK(actual.bytes == expected.bytes, "checkpoint: '", path, "' read ", actual.bytes,
               " bytes but manifest.json lists ", expected.bytes, " (changed while being read?)");
    LOOM_CHECK(actual.sha256 == expected.sha256, "checkpoint: '", path, "' has SHA-256 ", actual.sha256,
               " but manifest.json lists ", expected.sha256, " (corrupted)");
  }
}

}  // namespace loom::io
