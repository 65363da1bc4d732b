// The tune table of `auto` (include/moekit/tune.hpp): JSON in and out, and the process-wide table.
#include "moekit/tune.hpp"

#include <cstdlib>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "moekit/error.hpp"

namespace moekit {
namespace {

using json = nlohmann::json;
constexpr const char* kSchema = "moekit-tune/1";

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw Error(Errc::invalid_argument, "tune table " + path + ": " + what);
}

template <class V>
V get(const json& j, const char* key, const std::string& path, std::size_t i) {
  const auto it = j.find(key);
  if (it == j.end()) bad(path, "entry " + std::to_string(i) + " has no '" + key + "'");
  try {
    return it->get<V>();
  } catch (const json::exception&) {
    bad(path, "entry " + std::to_string(i) + ": '" + key + "' has the wrong type");
  }
}

struct Current {
  std::mutex mutex;
  bool resolved = false;  // set_tune_table() was called or the environment was read
  std::shared_ptr<const TuneTable> table;
};
Current& current() {
  static Current c;
  return c;
}

}  // namespace

TuneTable read_tune_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(Errc::invalid_argument, "tune table " + path + ": cannot open the file");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    bad(path, std::string("not JSON: ") + e.what());
  }
  if (!j.is_object() || j.value("schema", std::string()) != kSchema)
    bad(path, std::string("expected an object with \"schema\": \"") + kSchema + "\"");
  const auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_array()) bad(path, "no \"entries\" array");
  TuneTable t;
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const json& e = (*entries)[i];
    if (!e.is_object()) bad(path, "entry " + std::to_string(i) + " is not an object");
    TuneEntry r;
    r.device = get<std::string>(e, "device", path, i);
    r.hidden = get<std::int64_t>(e, "hidden", path, i);
    r.intermediate = get<std::int64_t>(e, "intermediate", path, i);
    r.experts = get<std::int64_t>(e, "experts", path, i);
    r.top_k = get<std::int64_t>(e, "top_k", path, i);
    r.tokens = get<std::int64_t>(e, "tokens", path, i);
    const auto dtype = parse_dtype(get<std::string>(e, "dtype", path, i));
    if (!dtype || !is_floating(*dtype)) bad(path, "entry " + std::to_string(i) + ": unknown dtype");
    r.dtype = *dtype;
    r.transposed = e.value("transposed", false);
    r.backend = get<std::string>(e, "backend", path, i);
    r.plan = e.value("plan", std::string());
    r.ms = e.value("ms", 0.0);
    if (r.tokens < 1) bad(path, "entry " + std::to_string(i) + ": tokens must be >= 1");
    t.entries.push_back(std::move(r));
  }
  return t;
}

void write_tune_table(const TuneTable& table, const std::string& path) {
  json entries = json::array();
  for (const TuneEntry& r : table.entries)
    entries.push_back({{"device", r.device},
                       {"hidden", r.hidden},
                       {"intermediate", r.intermediate},
                       {"experts", r.experts},
                       {"top_k", r.top_k},
                       {"dtype", std::string(dtype_name(r.dtype))},
                       {"transposed", r.transposed},
                       {"tokens", r.tokens},
                       {"backend", r.backend},
                       {"plan", r.plan},
                       {"ms", r.ms}});
  const json j = {{"schema", kSchema}, {"entries", entries}};
  std::ofstream out(path);
  if (!out) throw Error(Errc::invalid_argument, "tune table " + path + ": cannot write the file");
  out << j.dump(1) << "\n";
  if (!out) throw Error(Errc::invalid_argument, "tune table " + path + ": write failed");
}

void set_tune_table(std::shared_ptr<const TuneTable> table) {
  Current& c = current();
  std::lock_guard lock(c.mutex);
  c.table = std::move(table);
  c.resolved = true;
}

std::shared_ptr<const TuneTable> current_tune_table() {
  Current& c = current();
  std::lock_guard lock(c.mutex);
  if (!c.resolved) {
    if (const char* path = std::getenv("MOEKIT_TUNE_FILE"); path && *path)
      c.table = std::make_shared<const TuneTable>(read_tune_table(path));  // throws: resolved stays false
    c.resolved = true;
  }
  return c.table;
}

#if !MOEKIT_HAVE_CUDA
// Without the CUDA backends there is nothing for auto to choose from.
namespace {
[[noreturn]] void no_cuda() {
  throw Error(Errc::unsupported, "auto and its tuner choose among the CUDA backends; this build has none");
}
}  // namespace
AutoChoice auto_choice(const ExpertsCall&) { no_cuda(); }
std::vector<TuneCandidate> tune_candidates(const ExpertsCall&) { no_cuda(); }
std::size_t candidate_workspace_bytes(const ExpertsCall&, const TuneCandidate&) { no_cuda(); }
void run_candidate(const ExpertsCall&, const TuneCandidate&, const RunContext&, Workspace) { no_cuda(); }
std::string cuda_device_name(int) { no_cuda(); }
#endif

}  // namespace moekit
