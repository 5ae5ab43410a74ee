// Writes the config seed corpus: every ```toml example of docs/config.md
// (as written, and with its programs and accounts swapped for ones that
// exist here, so it loads), the files in tests/config/testdata/, and one
// document per row of tests/config/config_errors_test.cc, named after the
// row ("ProcessesZero" -> error_processes_zero). The error table is compiled
// in, so new rows become seeds on the next run.
//
//   bazel run //tests/fuzz:config_seeds -- "$PWD" "$PWD/tests/fuzz/corpus/config"
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

// Cases(): the table of refused documents, with its helpers.
#include "tests/config/config_errors_test.cc"

namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// "TlsCertWithoutKey" -> "tls_cert_without_key".
std::string SnakeCase(absl::string_view camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(camel[i]);
    if (std::isupper(c)) {
      if (i > 0) out += '_';
      out += static_cast<char>(std::tolower(c));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// The bodies of the ```toml blocks of a Markdown file.
std::vector<std::string> TomlBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  std::string* block = nullptr;
  for (absl::string_view line : absl::StrSplit(markdown, '\n')) {
    if (block == nullptr && line == "```toml") {
      block = &blocks.emplace_back();
    } else if (block != nullptr && line == "```") {
      block = nullptr;
    } else if (block != nullptr) {
      block->append(line.data(), line.size());
      block->push_back('\n');
    }
  }
  return blocks;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s REPO_ROOT CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  const std::filesystem::path dir(argv[2]);
  std::vector<std::pair<std::string, std::string>> seeds;

  std::vector<std::string> examples =
      TomlBlocks(ReadFile(root / "docs/config.md"));
  for (size_t i = 0; i < examples.size(); ++i) {
    std::string name = "docs_example";
    if (i > 0) name += "_" + std::to_string(i + 1);
    seeds.emplace_back(name, examples[i]);
    // Programs that exist and accounts every system has: the whole
    // document loads, so the cross checks are reached.
    seeds.emplace_back(
        name + "_loadable",
        absl::StrReplaceAll(examples[i], {{"/usr/local/bin/ddv_hello", "/bin/sh"},
                                          {"/usr/local/bin/acme_responder",
                                           "/bin/true"},
                                          {"www-data", "root"}}));
  }
  for (const auto& entry :
       std::filesystem::directory_iterator(root / "tests/config/testdata")) {
    if (entry.path().extension() != ".toml") continue;
    seeds.emplace_back("testdata_" + entry.path().stem().string(),
                       ReadFile(entry.path()));
  }
  for (const ddv::config::ErrorCase& c : ddv::config::Cases()) {
    seeds.emplace_back("error_" + SnakeCase(c.name), c.toml);
  }

  std::filesystem::create_directories(dir);
  for (const auto& [name, text] : seeds) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
  return 0;
}
