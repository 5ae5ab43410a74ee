// Micro-benchmark of SniffTlsClientHello on ClientHellos captured from real
// clients (tests/data/client_hello/): ns per sniff for a typical curl hello
// (517 B) and a typical browser hello (Chromium, 1951 B with a post-quantum
// key share and ECH GREASE), whole and cut short.
//   bazel run --config=opt //benchmarks:tls_sniff_benchmark
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "benchmark/benchmark.h"
#include "src/sniff/tls_sniffer.h"

namespace ddv {
namespace sniff {
namespace {

// The data files are runfiles: relative to the working directory under
// `bazel run`, else beside the binary in <binary>.runfiles/ddv/.
std::string ReadCaptured(const char* name) {
  const std::string relative = std::string("tests/data/client_hello/") + name;
  std::ifstream in(relative, std::ios::binary);
  if (!in) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
      in.open(std::string(self, n) + ".runfiles/ddv/" + relative,
              std::ios::binary);
    }
  }
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", relative.c_str());
    std::exit(1);
  }
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

void SniffLoop(benchmark::State& state, const std::string& bytes,
               SniffStatus want) {
  ClientHelloInfo info;
  for (auto _ : state) {
    const SniffStatus status = SniffTlsClientHello(bytes, 16384, &info);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(info.sni.size());
    if (status != want) {
      state.SkipWithError("unexpected sniff status");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(bytes.size()));
}

void BM_SniffCurl(benchmark::State& state) {
  static const std::string bytes =
      ReadCaptured("curl_7_88_sni_a_localhost.bin");
  SniffLoop(state, bytes, SniffStatus::kFound);
}
BENCHMARK(BM_SniffCurl);

void BM_SniffChromium(benchmark::State& state) {
  static const std::string bytes =
      ReadCaptured("chromium_156_sni_a_localhost.bin");
  SniffLoop(state, bytes, SniffStatus::kFound);
}
BENCHMARK(BM_SniffChromium);

// A peek that caught half of the browser hello: the need-more path.
void BM_SniffChromiumHalf(benchmark::State& state) {
  static const std::string bytes =
      ReadCaptured("chromium_156_sni_a_localhost.bin").substr(0, 975);
  SniffLoop(state, bytes, SniffStatus::kNeedMore);
}
BENCHMARK(BM_SniffChromiumHalf);

}  // namespace
}  // namespace sniff
}  // namespace ddv
