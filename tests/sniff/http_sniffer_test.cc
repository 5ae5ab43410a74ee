// SniffHttpRequest: every RFC 9112 rule it enforces, each vector also fed one
// byte at a time (and with bare LF line ends) to prove prefixes never decide.
#include "src/sniff/http_sniffer.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace ddv {
namespace sniff {
namespace {

constexpr size_t kCap = 16384;  // the default max_peek_bytes

struct Case {
  std::string name;
  std::string input;  // for kFound: exactly the head
  SniffStatus want = SniffStatus::kFound;
  std::string host;  // kFound only
  int minor_version = 1;
  bool absolute_form = false;
  bool http2_preface = false;
  // Also run with every CRLF turned into a bare LF (RFC 9112 §2.2).
  bool lf_variant = true;
  std::string reason;  // kMalformed / kNotThisProtocol: the rule that fired
};

Case MakeCase(std::string name, std::string input, SniffStatus want) {
  Case c;
  c.name = std::move(name);
  c.input = std::move(input);
  c.want = want;
  return c;
}
Case Found(std::string name, std::string input, std::string host,
           int minor_version = 1) {
  Case c = MakeCase(std::move(name), std::move(input), SniffStatus::kFound);
  c.host = std::move(host);
  c.minor_version = minor_version;
  return c;
}
Case FoundInTarget(std::string name, std::string input, std::string host,
                   int minor_version = 1) {
  Case c =
      Found(std::move(name), std::move(input), std::move(host), minor_version);
  c.absolute_form = true;
  return c;
}
Case Malformed(std::string name, std::string input, std::string reason) {
  Case c = MakeCase(std::move(name), std::move(input), SniffStatus::kMalformed);
  c.reason = std::move(reason);
  return c;
}
Case NotHttp(std::string name, std::string input, std::string reason) {
  Case c = MakeCase(std::move(name), std::move(input),
                    SniffStatus::kNotThisProtocol);
  c.reason = std::move(reason);
  c.lf_variant = false;
  return c;
}
Case CrlfOnly(Case c) {
  c.lf_variant = false;
  return c;
}

std::string Get(absl::string_view fields, absl::string_view version = "1.1") {
  return absl::StrCat("GET / HTTP/", version, "\r\n", fields, "\r\n");
}

std::vector<Case> Cases() {
  const std::string kBrowser =
      "GET /index.html?q=1 HTTP/1.1\r\n"
      "Host: www.example.com\r\n"
      "Connection: keep-alive\r\n"
      "Cache-Control: max-age=0\r\n"
      "sec-ch-ua: \"Chromium\";v=\"116\", \"Not)A;Brand\";v=\"24\"\r\n"
      "Upgrade-Insecure-Requests: 1\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
      "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Accept-Language: en-US,en;q=0.9\r\n"
      "Cookie: a=b; c=d\r\n"
      "\r\n";
  std::string h2 = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  Case preface = Found("h2_preface", h2, "");
  preface.http2_preface = true;
  preface.lf_variant = false;
  return {
      // Host and its normal form (host_name.h).
      Found("get_with_host", Get("Host: a.localhost\r\n"), "a.localhost"),
      Found("curl",
            "GET / HTTP/1.1\r\nHost: a.localhost:8080\r\n"
            "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
            "a.localhost"),
      Found("browser", kBrowser, "www.example.com"),
      Found("name_case_insensitive", Get("hOsT: A.Example.COM\r\n"),
            "a.example.com"),
      Found("upper_name", Get("HOST: a.test\r\n"), "a.test"),
      Found("ows_around_value", Get("Host: \t a.test \t\r\n"), "a.test"),
      Found("no_ows", Get("Host:a.test\r\n"), "a.test"),
      Found("trailing_dot", Get("Host: a.test.\r\n"), "a.test"),
      Found("host_with_port", Get("Host: a.test:8080\r\n"), "a.test"),
      Found("host_with_empty_port", Get("Host: a.test:\r\n"), "a.test"),
      Found("ipv4_host", Get("Host: 127.0.0.1:80\r\n"), "127.0.0.1"),
      Found("ipv6_host", Get("Host: [::1]:8080\r\n"), "[::1]"),
      Found("ipv6_host_no_port", Get("Host: [2001:DB8::1]\r\n"),
            "[2001:db8::1]"),
      Found("host_last", Get("Accept: */*\r\nX-A: b\r\nHost: a.test\r\n"),
            "a.test"),
      Found("mixed_line_ends",
            "GET / HTTP/1.1\nHost: a.test\r\nAccept: */*\n\r\n", "a.test"),
      CrlfOnly(Found("bare_lf", "GET / HTTP/1.1\nHost: a.test\n\n", "a.test")),
      // RFC 9112 §2.2: one empty line before the request line is ignored.
      Found("leading_crlf", "\r\n" + Get("Host: a.test\r\n"), "a.test"),
      // HTTP versions.
      Found("http10_no_host", Get("Accept: */*\r\n", "1.0"), "", 0),
      Found("http10_no_fields", "GET / HTTP/1.0\r\n\r\n", "", 0),
      Found("http10_with_host", Get("Host: a.test\r\n", "1.0"), "a.test", 0),
      Found("http19_as_11", Get("Host: a.test\r\n", "1.9"), "a.test", 9),
      // RFC 9112 §3.2: empty Host is what a client sends for a target with
      // no authority: found, with no name.
      Found("empty_host", Get("Host:\r\n"), ""),
      Found("blank_host", Get("Host:  \t \r\n"), ""),
      // Look-alikes are never taken.
      Found("x_forwarded_host_ignored",
            Get("X-Forwarded-Host: evil.test\r\nHost: a.test\r\n"), "a.test"),
      Found("x_host_ignored", Get("X-Host: evil.test\r\nHost: a.test\r\n"),
            "a.test"),
      Found("hostname_ignored",
            Get("Hostname: evil.test\r\nHost: a.test\r\nHosts: e.test\r\n"),
            "a.test"),
      Found("host_in_value_ignored",
            Get("Referer: http://x/?\r\nX-Note: Host: evil.test\r\n"
                "Host: a.test\r\n"),
            "a.test"),
      Found("http10_x_forwarded_only",
            Get("X-Forwarded-Host: evil.test\r\n", "1.0"), "", 0),
      Found("obs_text_in_other_value",
            Get("X-Name: caf\xc3\xa9\r\nHost: a\r\n"), "a"),
      Found("empty_other_value", Get("X-Empty:\r\nHost: a.test\r\n"), "a.test"),
      Found("extension_method",
            "PROPFIND /d HTTP/1.1\r\nHost: a.test\r\nDepth: 1\r\n\r\n",
            "a.test"),
      Found("method_with_dash", "M-SEARCH /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "a.test"),
      Found("options_star", "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "a.test"),
      Found("target_with_query",
            "GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: a\r\n\r\n", "a"),
      // Absolute-form (RFC 9112 §3.2.2): the target wins over Host.
      FoundInTarget("absolute_form",
                    "GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
                    "b.test"),
      FoundInTarget(
          "absolute_https_port_upper",
          "GET HTTPS://B.Test:8443/x?y HTTP/1.1\r\nHost: b.test\r\n\r\n",
          "b.test"),
      FoundInTarget("absolute_no_path",
                    "GET http://b.test HTTP/1.1\r\nHost: b.test\r\n\r\n",
                    "b.test"),
      FoundInTarget("absolute_query_only",
                    "GET http://b.test?x=1 HTTP/1.1\r\nHost: b.test\r\n\r\n",
                    "b.test"),
      FoundInTarget(
          "absolute_ipv6",
          "GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
          "[::1]"),
      FoundInTarget("absolute_empty_host_field",
                    "GET http://b.test/ HTTP/1.1\r\nHost:\r\n\r\n", "b.test"),
      FoundInTarget("absolute_http10_no_host",
                    "GET http://b.test/ HTTP/1.0\r\n\r\n", "b.test", 0),
      // CONNECT authority-form (RFC 9112 §3.2.3).
      FoundInTarget("connect",
                    "CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\n\r\n",
                    "b.test"),
      FoundInTarget("connect_ipv6",
                    "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
                    "[::1]"),
      preface,

      // Request line.
      Malformed("lowercase_method", Get("Host: a\r\n").replace(0, 3, "get"),
                "method is not upper case"),
      Malformed("mixed_case_method", Get("Host: a\r\n").replace(0, 3, "GeT"),
                "method is not upper case"),
      Malformed("control_in_method", "GE\x01T / HTTP/1.1\r\n",
                "bad character in method"),
      Malformed("double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
                "empty request target"),
      Malformed("tab_separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad character in method"),
      Malformed("no_target", "GET\r\n", "request line without target"),
      Malformed("http09", "GET /\r\n", "request line without HTTP version"),
      Malformed("http2_version", Get("Host: a\r\n", "2.0"),
                "bad or unsupported HTTP version"),
      Malformed("http11_trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
                "junk after HTTP version"),
      Malformed("lowercase_version", "GET / http/1.1\r\nHost: a\r\n\r\n",
                "bad or unsupported HTTP version"),
      Malformed("version_letter", Get("Host: a\r\n", "1.x"),
                "bad or unsupported HTTP version"),
      Malformed("version_two_digits", Get("Host: a\r\n", "1.10"),
                "junk after HTTP version"),
      Malformed("version_short", "GET / HTTP/1\r\nHost: a\r\n\r\n",
                "bad or unsupported HTTP version"),
      CrlfOnly(Malformed("bare_cr_in_request_line",
                         "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
                         "bad character in request target")),
      Malformed("non_ascii_target", "GET /caf\xc3\xa9 HTTP/1.1\r\n",
                "bad character in request target"),
      Malformed("relative_target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
                "bad request target"),
      Malformed("asterisk_without_options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
                "asterisk-form target without OPTIONS"),
      Malformed("bad_preface", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
                "bad or unsupported HTTP version"),
      // Host rules (RFC 9112 §3.2).
      Malformed("http11_no_host", Get("Accept: */*\r\n"),
                "HTTP/1.1 request without Host"),
      Malformed("http11_no_fields", "GET / HTTP/1.1\r\n\r\n",
                "HTTP/1.1 request without Host"),
      Malformed("absolute_form_no_host", "GET http://b.test/ HTTP/1.1\r\n\r\n",
                "HTTP/1.1 request without Host"),
      Malformed("duplicate_host", Get("Host: a.test\r\nHost: a.test\r\n"),
                "duplicate Host"),
      Malformed("duplicate_host_case", Get("Host: a.test\r\nhost: b.test\r\n"),
                "duplicate Host"),
      Malformed("duplicate_host_empty", Get("Host:\r\nHost: a.test\r\n"),
                "duplicate Host"),
      Malformed("duplicate_host_http10",
                Get("Host: a.test\r\nHost: b.test\r\n", "1.0"),
                "duplicate Host"),
      Malformed("duplicate_host_absolute",
                "GET http://b.test/ HTTP/1.1\r\nHost: b\r\nHost: b\r\n\r\n",
                "duplicate Host"),
      Malformed("host_space", Get("Host: a b\r\n"),
                "invalid character in host"),
      Malformed("host_slash", Get("Host: a/b\r\n"),
                "invalid character in host"),
      Malformed("host_userinfo", Get("Host: user@a.test\r\n"),
                "invalid character in host"),
      Malformed("host_list", Get("Host: a.test, b.test\r\n"),
                "invalid character in host"),
      Malformed("host_bad_port", Get("Host: a.test:http\r\n"),
                "bad port in host"),
      Malformed("host_dot", Get("Host: .\r\n"), "empty host"),
      Malformed("host_empty_label", Get("Host: a..test\r\n"),
                "empty label in host"),
      Malformed("host_open_ipv6", Get("Host: [::1\r\n"), "bad IPv6 literal"),
      Malformed("host_non_ascii", Get("Host: caf\xc3\xa9.test\r\n"),
                "invalid character in host"),
      Malformed("invalid_host_with_absolute_form",
                "GET http://b.test/ HTTP/1.1\r\nHost: a b\r\n\r\n",
                "invalid character in host"),
      // Absolute- and authority-form targets.
      Malformed("absolute_userinfo",
                "GET http://u:p@b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n",
                "userinfo in request target"),
      Malformed("absolute_empty_host",
                "GET http:///x HTTP/1.1\r\nHost: b.test\r\n\r\n", "empty host"),
      Malformed("absolute_other_scheme",
                "GET ftp://b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n",
                "request target scheme is not http or https"),
      Malformed("absolute_no_slashes",
                "GET http:b.test HTTP/1.1\r\nHost: b.test\r\n\r\n",
                "absolute-form target without authority"),
      Malformed("absolute_bad_host",
                "GET http://b_.te$t/ HTTP/1.1\r\nHost: b.test\r\n\r\n",
                "invalid character in host"),
      Malformed("connect_no_port", "CONNECT b.test HTTP/1.1\r\nHost: b\r\n\r\n",
                "CONNECT target without port"),
      Malformed("connect_empty_port",
                "CONNECT b.test: HTTP/1.1\r\nHost: b\r\n\r\n",
                "CONNECT target without port"),
      Malformed("connect_ipv6_no_port",
                "CONNECT [::1] HTTP/1.1\r\nHost: b\r\n\r\n",
                "CONNECT target without port"),
      Malformed("connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: b\r\n\r\n",
                "CONNECT target without port"),
      Malformed("connect_userinfo",
                "CONNECT u@b.test:443 HTTP/1.1\r\nHost: b\r\n\r\n",
                "invalid character in host"),
      // Field lines (RFC 9112 §5).
      Malformed("obs_fold", Get("Host: a.test\r\n b.test\r\n"),
                "field line starts with whitespace (obs-fold)"),
      Malformed("obs_fold_tab", Get("Host: a.test\r\nX-A: 1\r\n\t2\r\n"),
                "field line starts with whitespace (obs-fold)"),
      Malformed("whitespace_before_first_field",
                "GET / HTTP/1.1\r\n Host: a.test\r\n\r\n",
                "field line starts with whitespace (obs-fold)"),
      Malformed("space_before_colon", Get("Host : a.test\r\n"),
                "whitespace between field name and colon"),
      Malformed("tab_before_colon", Get("Host\t: a.test\r\n"),
                "whitespace between field name and colon"),
      Malformed("space_before_colon_other", Get("Host: a\r\nX-Foo : bar\r\n"),
                "whitespace between field name and colon"),
      Malformed("no_colon", Get("Host a.test\r\n"), "field line without colon"),
      Malformed("empty_field_name", Get("Host: a\r\n: b\r\n"),
                "empty field name"),
      Malformed("bad_char_in_name", Get("Host: a\r\nX(A): b\r\n"),
                "bad character in field name"),
      Malformed("nul_in_value",
                Get(absl::StrCat("Host: a\r\nX: a", absl::string_view("\0", 1),
                                 "b\r\n")),
                "bad character in field value"),
      Malformed("control_in_value", Get("Host: a\r\nX: a\x01\r\n"),
                "bad character in field value"),
      Malformed("del_in_value", Get("Host: a\r\nX: a\x7f\r\n"),
                "bad character in field value"),
      CrlfOnly(Malformed("bare_cr_in_value", Get("Host: a\r\nX: a\rb\r\n"),
                         "bad character in field value")),
      CrlfOnly(Malformed("bare_cr_end_of_head",
                         "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
                         "bad character in field name")),

      // Not HTTP at all: decided from the first byte(s).
      NotHttp("tls_client_hello",
              std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03", 10),
              "not an HTTP method"),
      NotHttp("proxy_v2",
              std::string("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", 16),
              "empty line where a request line should be"),
      NotHttp("nul", std::string("\0", 1), "not an HTTP method"),
      NotHttp("digit", "1GET / HTTP/1.1\r\n", "not an HTTP method"),
      NotHttp("leading_space", " GET / HTTP/1.1\r\n", "not an HTTP method"),
      NotHttp("bare_cr_first", "\rGET / HTTP/1.1\r\n",
              "bare CR before the request line"),
      NotHttp("brace", "{\"jsonrpc\":\"2.0\"}", "not an HTTP method"),
  };
}

// Cases() plus, where it means the same, each with bare LF line ends.
std::vector<Case> CasesWithLfVariants() {
  std::vector<Case> cases = Cases();
  size_t n = cases.size();
  for (size_t i = 0; i < n; ++i) {
    if (!cases[i].lf_variant) continue;
    Case c = cases[i];
    c.name += "_lf";
    c.input = absl::StrReplaceAll(c.input, {{"\r\n", "\n"}});
    cases.push_back(std::move(c));
  }
  return cases;
}

class HttpSnifferTest : public testing::TestWithParam<Case> {};

void ExpectMatches(const Case& c, const std::string& input, SniffStatus got,
                   const HttpRequestInfo& info) {
  ASSERT_EQ(SniffStatusName(got), SniffStatusName(c.want)) << info.reason;
  if (got == SniffStatus::kFound) {
    EXPECT_EQ(info.host.view(), c.host);
    EXPECT_EQ(info.minor_version, c.minor_version);
    EXPECT_EQ(info.absolute_form, c.absolute_form);
    EXPECT_EQ(info.http2_preface, c.http2_preface);
    EXPECT_EQ(info.head_length, input.size());
    EXPECT_EQ(info.reason, nullptr);
  } else {
    ASSERT_NE(info.reason, nullptr);
    EXPECT_EQ(info.reason, c.reason);
    EXPECT_TRUE(info.host.empty());
    EXPECT_EQ(info.head_length, 0u);
  }
}

TEST_P(HttpSnifferTest, WholeInput) {
  const Case& c = GetParam();
  const std::string& input = c.input;
  HttpRequestInfo info;
  ExpectMatches(c, input, SniffHttpRequest(input, kCap, &info), info);
}

// The property the master relies on: every prefix of the vector answers
// kNeedMore until the answer is certain, then the answer never changes.
TEST_P(HttpSnifferTest, OneByteAtATime) {
  const Case& c = GetParam();
  const std::string& input = c.input;
  bool decided = false;
  for (size_t k = 0; k <= input.size(); ++k) {
    HttpRequestInfo info;
    SniffStatus got =
        SniffHttpRequest(absl::string_view(input).substr(0, k), kCap, &info);
    SCOPED_TRACE(testing::Message() << "prefix of " << k << " bytes");
    if (c.want == SniffStatus::kFound && k < input.size()) {
      ASSERT_EQ(SniffStatusName(got), SniffStatusName(SniffStatus::kNeedMore))
          << info.reason;
      EXPECT_TRUE(info.host.empty());
      continue;
    }
    if (got == SniffStatus::kNeedMore) {
      ASSERT_FALSE(decided) << "answer went back to need_more";
      EXPECT_EQ(info.reason, nullptr);
      continue;
    }
    decided = true;
    if (c.want == SniffStatus::kFound) {
      ExpectMatches(c, input, got, info);
    } else {
      ASSERT_EQ(SniffStatusName(got), SniffStatusName(c.want)) << info.reason;
      EXPECT_EQ(info.reason, c.reason);
    }
  }
  EXPECT_TRUE(decided);
}

// Bytes after the head (a body, the next pipelined request, h2 frames) do not
// change the answer or the head length.
TEST_P(HttpSnifferTest, TrailingBytesIgnored) {
  const Case& c = GetParam();
  if (c.want != SniffStatus::kFound) return;
  const std::string& input = c.input;
  HttpRequestInfo info;
  SniffStatus got =
      SniffHttpRequest(input + "GET / HTTP/1.1\r\nHost: evil\r\n", kCap, &info);
  ExpectMatches(c, input, got, info);
}

INSTANTIATE_TEST_SUITE_P(Vectors, HttpSnifferTest,
                         testing::ValuesIn(CasesWithLfVariants()),
                         [](const testing::TestParamInfo<Case>& p) {
                           return p.param.name;
                         });

// kTooLarge: the cap is on the bytes read, whatever was peeked.
std::string Padded(size_t pad) {
  return Get(
      absl::StrCat("Host: a.test\r\nX-Pad: ", std::string(pad, 'p'), "\r\n"));
}

TEST(HttpSnifferCapTest, HeadEndingAtTheCapIsFound) {
  std::string head = Padded(100);
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest(head, head.size(), &info), SniffStatus::kFound);
  EXPECT_EQ(info.host.view(), "a.test");
  EXPECT_EQ(SniffHttpRequest(head + "body", head.size(), &info),
            SniffStatus::kFound);
  EXPECT_EQ(info.head_length, head.size());
}

TEST(HttpSnifferCapTest, HeadPastTheCapIsTooLarge) {
  std::string head = Padded(100);
  size_t cap = head.size() - 1;
  for (size_t k = 0; k <= head.size() + 10; ++k) {
    std::string prefix = (head + "0123456789").substr(0, k);
    HttpRequestInfo info;
    SniffStatus got = SniffHttpRequest(prefix, cap, &info);
    SniffStatus want =
        k < cap ? SniffStatus::kNeedMore : SniffStatus::kTooLarge;
    ASSERT_EQ(SniffStatusName(got), SniffStatusName(want)) << k;
    EXPECT_TRUE(info.host.empty());
    EXPECT_EQ(info.reason != nullptr, want == SniffStatus::kTooLarge);
  }
}

TEST(HttpSnifferCapTest, TooLargeInsideTheRequestLine) {
  std::string line = "GET /" + std::string(5000, 'x') + " HTTP/1.1\r\n";
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest(line, 1024, &info), SniffStatus::kTooLarge);
  EXPECT_EQ(SniffHttpRequest(line.substr(0, 1023), 1024, &info),
            SniffStatus::kNeedMore);
}

TEST(HttpSnifferCapTest, DecisionsWithinTheCapWin) {
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest("\x16\x03\x01", 1, &info),
            SniffStatus::kNotThisProtocol);
  EXPECT_EQ(SniffHttpRequest("get / HTTP/1.1\r\n", 1, &info),
            SniffStatus::kMalformed);
  std::string bad = Get("Host : a\r\n") + std::string(100, 'x');
  EXPECT_EQ(SniffHttpRequest(bad, 40, &info), SniffStatus::kMalformed);
}

TEST(HttpSnifferCapTest, ZeroCapAndEmptyPrefix) {
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest("", kCap, &info), SniffStatus::kNeedMore);
  EXPECT_EQ(SniffHttpRequest("", 0, &info), SniffStatus::kTooLarge);
  EXPECT_EQ(SniffHttpRequest("GET", 0, &info), SniffStatus::kTooLarge);
}

TEST(HttpSnifferCapTest, PrefacePastTheCapIsTooLarge) {
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 10, &info),
            SniffStatus::kTooLarge);
  EXPECT_FALSE(info.http2_preface);
}

TEST(HttpSnifferMiscTest, LongestHostFits) {
  std::string label(63, 'a');
  std::string name = label + "." + label + "." + label + "." +
                     std::string(61, 'b');  // 253 characters
  HttpRequestInfo info;
  EXPECT_EQ(SniffHttpRequest(Get("Host: " + name + ".:65535\r\n"), kCap, &info),
            SniffStatus::kFound);
  EXPECT_EQ(info.host.view(), name);
  EXPECT_EQ(SniffHttpRequest(Get("Host: x" + name + "\r\n"), kCap, &info),
            SniffStatus::kMalformed);
}

TEST(HttpSnifferMiscTest, InfoIsResetOnEveryCall) {
  HttpRequestInfo info;
  ASSERT_EQ(
      SniffHttpRequest("GET http://b.test/ HTTP/1.0\r\n\r\n", kCap, &info),
      SniffStatus::kFound);
  EXPECT_TRUE(info.absolute_form);
  EXPECT_EQ(info.minor_version, 0);
  // A malformed head after a valid host: nothing of either survives.
  EXPECT_EQ(SniffHttpRequest(Get("Host: a.test\r\nHost: b\r\n"), kCap, &info),
            SniffStatus::kMalformed);
  EXPECT_TRUE(info.host.empty());
  EXPECT_FALSE(info.absolute_form);
  EXPECT_EQ(info.head_length, 0u);
  EXPECT_STREQ(info.reason, "duplicate Host");
  ASSERT_EQ(SniffHttpRequest(Get("Host: a.test\r\n"), kCap, &info),
            SniffStatus::kFound);
  EXPECT_EQ(info.reason, nullptr);
  EXPECT_EQ(info.minor_version, 1);
}

}  // namespace
}  // namespace sniff
}  // namespace ddv
