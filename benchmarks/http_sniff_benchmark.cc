// Nanoseconds per SniffHttpRequest on typical first peeks: what the master
// spends finding the Host of one HTTP connection.
#include <string>

#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "src/sniff/http_sniffer.h"

namespace ddv {
namespace sniff {
namespace {

constexpr size_t kCap = 16384;  // the default max_peek_bytes

constexpr absl::string_view kCurl =
    "GET / HTTP/1.1\r\n"
    "Host: a.localhost:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

// What Chromium sends for a first navigation: ~10 fields, Host first.
constexpr absl::string_view kBrowser =
    "GET /index.html?q=1 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "sec-ch-ua: \"Chromium\";v=\"116\", \"Not)A;Brand\";v=\"24\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/116.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/"
    "avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: session=0123456789abcdef; theme=dark\r\n"
    "\r\n";

void Sniff(benchmark::State& state, absl::string_view prefix,
           SniffStatus want) {
  HttpRequestInfo info;
  for (auto _ : state) {
    benchmark::DoNotOptimize(prefix.data());
    SniffStatus status = SniffHttpRequest(prefix, kCap, &info);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(info);
  }
  if (SniffHttpRequest(prefix, kCap, &info) != want) {
    state.SkipWithError("unexpected sniff status");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(prefix.size()));
}

void BM_SniffCurl(benchmark::State& state) {
  Sniff(state, kCurl, SniffStatus::kFound);
}
BENCHMARK(BM_SniffCurl);

void BM_SniffBrowser(benchmark::State& state) {
  Sniff(state, kBrowser, SniffStatus::kFound);
}
BENCHMARK(BM_SniffBrowser);

// A first peek that stopped mid-head: the re-parse cost before waiting.
void BM_SniffBrowserHalf(benchmark::State& state) {
  Sniff(state, kBrowser.substr(0, kBrowser.size() / 2), SniffStatus::kNeedMore);
}
BENCHMARK(BM_SniffBrowserHalf);

// A TLS ClientHello on the HTTP listener: rejected from the first byte.
void BM_SniffTlsRecord(benchmark::State& state) {
  Sniff(state, "\x16\x03\x01\x02", SniffStatus::kNotThisProtocol);
}
BENCHMARK(BM_SniffTlsRecord);

}  // namespace
}  // namespace sniff
}  // namespace ddv
