// Fuzzes ParseConfig on arbitrary text. It must never crash, hang or let an
// exception out (toml++ is built with exceptions; TomlReader::Parse is the
// one place that catches them). Besides that it checks the loader's promises:
//  - a refusal is InvalidArgument reading "FILE:LINE:COL: what", with LINE
//    inside the text;
//  - an accepted config holds what docs/config.md says the loader checked
//    (ranges, unique names, normal-form hosts, resolvable references), so
//    the master never has to second-guess it.
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "src/config/config.h"
#include "src/config/host_pattern.h"
#include "tests/fuzz/fuzz_check.h"

namespace ddv {
namespace config {
namespace {

constexpr char kPath[] = "fuzz.toml";

// "fuzz.toml:LINE:COL: what", LINE within the text (or one past its last
// line, for "end of file" errors).
void CheckRefusal(absl::string_view text, const absl::Status& status) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  absl::string_view message = status.message();
  FUZZ_CHECK(absl::ConsumePrefix(&message, kPath));
  FUZZ_CHECK(absl::ConsumePrefix(&message, ":"));
  std::vector<absl::string_view> parts =
      absl::StrSplit(message, absl::MaxSplits(':', 2));
  FUZZ_CHECK(parts.size() == 3);
  uint32_t line = 0, column = 0;
  FUZZ_CHECK(absl::SimpleAtoi(parts[0], &line) && line >= 1);
  FUZZ_CHECK(absl::SimpleAtoi(parts[1], &column) && column >= 1);
  FUZZ_CHECK(absl::StartsWith(parts[2], " ") && parts[2].size() > 1);
  const size_t lines = std::count(text.begin(), text.end(), '\n') + 1;
  if (line > lines + 1) {
    std::fprintf(stderr, "error on line %u of a %zu-line text: %s\n", line,
                 lines, std::string(status.message()).c_str());
    std::abort();
  }
}

bool IsSiteIdByte(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '.' || c == '-';
}

void CheckAccepted(const Config& config) {
  FUZZ_CHECK(config.path == kPath);
  const MasterConfig& master = config.master;
  FUZZ_CHECK(absl::StartsWith(master.control_socket, "/"));
  FUZZ_CHECK(master.control_socket.size() < sizeof(sockaddr_un{}.sun_path));
  FUZZ_CHECK(master.peek_timeout_ms >= 1 && master.peek_timeout_ms <= 600000);
  FUZZ_CHECK(master.max_peek_bytes >= 512 &&
             master.max_peek_bytes <= 1048576);

  FUZZ_CHECK(!config.listeners.empty());
  FUZZ_CHECK(!config.sites.empty());

  std::set<std::string> site_ids;
  int defaults = 0;
  for (const SiteConfig& site : config.sites) {
    FUZZ_CHECK(!site.id.empty() && site.id != "." && site.id != "..");
    FUZZ_CHECK(std::all_of(site.id.begin(), site.id.end(), IsSiteIdByte));
    FUZZ_CHECK(site_ids.insert(site.id).second);
    FUZZ_CHECK(!site.command.empty());
    FUZZ_CHECK(absl::StartsWith(site.command[0], "/"));
    FUZZ_CHECK(site.processes >= 1 && site.processes <= 1024);
    std::set<std::string> hosts;
    for (const std::string& host : site.hosts) {
      absl::StatusOr<std::string> again = NormalizeHostPattern(host);
      FUZZ_CHECK(again.ok() && *again == host);
      FUZZ_CHECK(hosts.insert(host).second);
    }
    for (const std::string& name : site.listeners) {
      FUZZ_CHECK(std::any_of(
          config.listeners.begin(), config.listeners.end(),
          [&name](const ListenerConfig& l) { return l.name == name; }));
    }
    for (const std::string& alpn : site.alpn) {
      FUZZ_CHECK(!alpn.empty() && alpn.size() <= 255);
    }
    FUZZ_CHECK(std::is_sorted(site.env.begin(), site.env.end()));
    for (const auto& [name, value] : site.env) {
      FUZZ_CHECK(!name.empty());
      FUZZ_CHECK(name.find('=') == std::string::npos);
      FUZZ_CHECK(name.find('\0') == std::string::npos);
    }
    FUZZ_CHECK(site.tls_cert.size() == site.tls_key.size());
    for (const std::string* path : {&site.log_output, &site.log_error,
                                    &site.log_all}) {
      FUZZ_CHECK(path->empty() || absl::StartsWith(*path, "/"));
    }
    if (site.is_default) ++defaults;
  }
  FUZZ_CHECK(defaults <= 1);

  std::set<std::string> listener_names;
  for (const ListenerConfig& listener : config.listeners) {
    FUZZ_CHECK(!listener.name.empty());
    FUZZ_CHECK(listener_names.insert(listener.name).second);
    FUZZ_CHECK(listener.addr_len > 0 &&
               listener.addr_len <= sizeof(listener.addr));
    if (!listener.default_site.empty()) {
      FUZZ_CHECK(site_ids.count(listener.default_site) == 1);
    }
  }

  // Summarising a loaded config must work for anything the loader accepts.
  FUZZ_CHECK(!DescribeConfig(config).empty());
}

}  // namespace
}  // namespace config
}  // namespace ddv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ddv::config::Config> config = [&] {
    try {
      return ddv::config::ParseConfig(text, ddv::config::kPath);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ParseConfig threw: %s\n", e.what());
      std::abort();
    } catch (...) {
      std::fprintf(stderr, "ParseConfig threw a non-std exception\n");
      std::abort();
    }
  }();
  if (config.ok()) {
    ddv::config::CheckAccepted(*config);
  } else {
    ddv::config::CheckRefusal(text, config.status());
  }
  return 0;
}
