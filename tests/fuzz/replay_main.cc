// Replays fuzz inputs through LLVMFuzzerTestOneInput without libFuzzer, so a
// seed corpus runs as an ordinary test (and under ASan). Arguments are files
// or directories; an argument that yields no file fails the run, so a missing
// corpus cannot pass silently.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int ReplayFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                         bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    size_t replayed = 0;
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      for (const auto& entry :
           std::filesystem::recursive_directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        if (ReplayFile(entry.path()) != 0) return 1;
        ++replayed;
      }
    } else if (std::filesystem::is_regular_file(arg, error)) {
      if (ReplayFile(arg) != 0) return 1;
      ++replayed;
    }
    if (replayed == 0) {
      std::fprintf(stderr, "no inputs found at %s\n", argv[i]);
      return 1;
    }
    std::printf("replayed %zu inputs from %s\n", replayed, argv[i]);
  }
  return 0;
}
