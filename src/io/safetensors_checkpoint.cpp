#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "io/safetensors_index.hpp"
#include "io/strict_json.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace moekit::safetensors {

namespace fs = std::filesystem;

struct Checkpoint::Impl {
  std::string dir;
  std::string index_label;  // the index file, or the single file, for error messages
  OpenOptions options;
  std::map<std::string, std::string, std::less<>> shard_of;  // tensor name -> shard file name
  std::set<std::string> shards;

  mutable std::mutex mutex;  // guards `open_shards`; a File never moves once opened
  mutable std::map<std::string, std::unique_ptr<File>, std::less<>> open_shards;

  const File& shard(const std::string& name) const;
  const TensorInfo& info(std::string_view name) const;
};

namespace {

std::string read_text(const fs::path& path, std::uint64_t limit) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(Errc::not_found, path.string() + ": cannot read (" + ec.message() + ")");
  if (size > limit)
    throw Error(Errc::invalid_argument, path.string() + ": " + std::to_string(size) + " bytes, over the limit of " +
                                            std::to_string(limit));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw Error(Errc::not_found, path.string() + ": cannot read");
  return text.str();
}

}  // namespace

const File& Checkpoint::Impl::shard(const std::string& file) const {
  std::lock_guard lock(mutex);
  auto it = open_shards.find(file);
  if (it != open_shards.end()) return *it->second;
  auto opened = std::make_unique<File>(File::open((fs::path(dir) / file).string(), options));
  // A tensor that the index places elsewhere would be the same name in two shards.
  for (const TensorInfo& t : opened->tensors()) {
    const auto owner = shard_of.find(t.name);
    if (owner != shard_of.end() && owner->second != file)
      throw Error(Errc::invalid_argument, index_label + ": tensor " + io::quoted(t.name) + " is in shard " +
                                              io::quoted(file) + " but the index places it in " + io::quoted(owner->second));
  }
  return *open_shards.emplace(file, std::move(opened)).first->second;
}

const TensorInfo& Checkpoint::Impl::info(std::string_view name) const {
  const auto it = shard_of.find(name);
  if (it == shard_of.end()) throw Error(Errc::not_found, index_label + ": no tensor " + io::quoted(name));
  const File& f = shard(it->second);
  const TensorInfo* t = f.find(name);
  if (!t)
    throw Error(Errc::not_found, index_label + ": the index places tensor " + io::quoted(name) + " in " +
                                     io::quoted(it->second) + ", which has no such tensor");
  return *t;
}

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

Checkpoint Checkpoint::open(const std::string& dir, const OpenOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  const fs::path index = fs::path(dir) / detail::kIndexName;
  const fs::path single = fs::path(dir) / detail::kSingleName;
  std::error_code ec;
  if (fs::exists(index, ec)) {
    impl->index_label = index.string();
    impl->shard_of = detail::parse_weight_map(read_text(index, options.max_header_bytes), impl->index_label);
    for (const auto& [name, file] : impl->shard_of) impl->shards.insert(file);
    for (const std::string& file : impl->shards)
      if (!fs::is_regular_file(fs::path(dir) / file, ec))
        throw Error(Errc::not_found, impl->index_label + ": shard " + io::quoted(file) + " is missing");
  } else if (fs::exists(single, ec)) {
    // One file lists its own tensors, so it is opened now rather than on first use.
    impl->index_label = single.string();
    impl->shards.insert(detail::kSingleName);
    const File& f = impl->shard(detail::kSingleName);
    for (const TensorInfo& t : f.tensors()) impl->shard_of.emplace(t.name, detail::kSingleName);
  } else {
    throw Error(Errc::not_found, dir + ": neither " + detail::kIndexName + " nor " + detail::kSingleName);
  }
  return Checkpoint(std::move(impl));
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->shard_of.size());
  for (const auto& [name, file] : impl_->shard_of) out.push_back(name);
  return out;
}

bool Checkpoint::contains(std::string_view name) const noexcept {
  return impl_->shard_of.find(name) != impl_->shard_of.end();
}

const TensorInfo& Checkpoint::info(std::string_view name) const { return impl_->info(name); }

TensorView Checkpoint::view(std::string_view name) const {
  const TensorInfo& t = impl_->info(name);
  return impl_->shard(impl_->shard_of.find(name)->second).view(t.name);
}

std::vector<std::string> Checkpoint::files() const {
  return std::vector<std::string>(impl_->shards.begin(), impl_->shards.end());
}

void Checkpoint::validate() const {
  for (const auto& [name, file] : impl_->shard_of) impl_->info(name);
}

}  // namespace moekit::safetensors
