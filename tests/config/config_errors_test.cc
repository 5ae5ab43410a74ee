// ParseConfig refusals: one row per mistake, each with the exact
// "FILE:LINE:COL: what is wrong" the user will see.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/config/config.h"

namespace ddv {
namespace config {
namespace {

struct ErrorCase {
  std::string name;
  std::string toml;
  std::string message;  // the whole message, FILE being "t.toml"
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

// Documents built around one line under test, so each row shows only what
// differs. Line numbers are noted on each helper.

// Lines 1-4 one listener, 5-7 site "a"; `line` is line 8, inside [[site]].
std::string SiteWith(const std::string& line) {
  return "[[listener]]\n"
         "name = \"http\"\n"
         "address = \"127.0.0.1:80\"\n"
         "protocol = \"http\"\n"
         "[[site]]\n"
         "id = \"a\"\n"
         "command = [\"/bin/sh\"]\n" +
         line + "\n";
}

// Lines 1-4 one listener, 5 "[[site]]"; `body` starts on line 6.
std::string SiteBody(const std::string& body) {
  return "[[listener]]\n"
         "name = \"http\"\n"
         "address = \"127.0.0.1:80\"\n"
         "protocol = \"http\"\n"
         "[[site]]\n" +
         body + "\n";
}

// Lines 1-4 listener "http"; `line` is line 5, inside [[listener]]; then a
// site "a" on lines 6-8.
std::string ListenerWith(const std::string& line) {
  return "[[listener]]\n"
         "name = \"http\"\n"
         "address = \"127.0.0.1:80\"\n"
         "protocol = \"http\"\n" +
         line +
         "\n"
         "[[site]]\n"
         "id = \"a\"\n"
         "command = [\"/bin/sh\"]\n";
}

// `listeners` (one or more [[listener]] tables, or a broken section) and
// then a good site "a": rows about listeners show only their own error.
std::string WithSite(const std::string& listeners) {
  return listeners + "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\n";
}

// Line 1 "[master]"; `line` is line 2; then one listener and one site.
std::string MasterWith(const std::string& line) {
  return "[master]\n" + line +
         "\n"
         "[[listener]]\n"
         "name = \"http\"\n"
         "address = \"127.0.0.1:80\"\n"
         "protocol = \"http\"\n"
         "[[site]]\n"
         "id = \"a\"\n"
         "command = [\"/bin/sh\"]\n";
}

const std::vector<ErrorCase>& Cases() {
  static const auto* cases = new std::vector<ErrorCase>{
      // TOML syntax, positioned by toml++.
      {"SyntaxMissingValue", SiteWith("processes = "),
       "t.toml:8:13: Error while parsing key-value pair: expected value, "
       "saw '\\n'"},
      {"SyntaxRedefinedKey", SiteWith("id = \"b\""),
       "t.toml:8:6: Error while parsing key-value pair: cannot redefine "
       "existing string 'id'"},
      {"SyntaxUnclosedArray", SiteWith("hosts = [\"a\""),
       "t.toml:8:14: Error while parsing array: encountered end-of-file"},

      // Inputs that break toml++ 3.3.0's internal assumptions, found by
      // fuzzing ParseConfig with toml++ compiled from its headers under
      // UBSan: a debug assertion (an assumption in release builds), or
      // __builtin_unreachable in its whitespace test for most non-ASCII
      // code points (marzer/tomlplusplus#190, #295). Debian's gcc-built
      // library still gives the right answer; these rows keep it that way.
      {"SyntaxBracketThenEquals", "[=",
       "t.toml:1:2: Error while parsing key: expected bare key starting "
       "character or string delimiter, saw '='"},
      {"SyntaxArrayClosedByBrace", "d=[}",
       "t.toml:1:4: Error while parsing value: could not determine value "
       "type"},
      {"SyntaxNonAsciiInKey", SiteWith("proc\u00e9sses = 2"),
       "t.toml:8:5: Error while parsing key-value pair: expected '=', saw "
       "'\u00e9'"},
      {"SyntaxNonAsciiAfterValue", SiteWith("processes = 2 \u00a7"),
       "t.toml:8:15: Error while parsing key-value pair: expected a comment "
       "or whitespace, saw '\u00a7'"},
      {"SyntaxNonAsciiAfterLineEndingBackslash",
       SiteWith("log_all = \"\"\"\\\n\u00a7\"\"\""),
       "t.toml:8:11: log_all \"\u00a7\" must be an absolute path"},

      // Unknown keys, first in file order, with a suggestion when close.
      {"UnknownSiteKeyTypo", SiteWith("proceses = 2"),
       "t.toml:8:1: unknown key \"proceses\" in [[site]] (did you mean "
       "\"processes\"?)"},
      {"UnknownSiteKey", SiteWith("colour = \"red\""),
       "t.toml:8:1: unknown key \"colour\" in [[site]]; known keys: id, "
       "command, processes, hosts, listeners, default, alpn, env, user, "
       "group, log_output, log_error, log_all, log_max_bytes, log_keep, "
       "tls_cert, tls_key, runtime, claimable_hosts, may_claim_default, "
       "limits, cwd, memory_max, cpu_weight, max_connections, max_pending, "
       "strict_host"},
      {"UnknownListenerKey", ListenerWith("adress = \"127.0.0.1:81\""),
       "t.toml:5:1: unknown key \"adress\" in [[listener]] (did you mean "
       "\"address\"?)"},
      {"UnknownMasterKey", MasterWith("peek_timout_ms = 5"),
       "t.toml:2:1: unknown key \"peek_timout_ms\" in [master] (did you "
       "mean \"peek_timeout_ms\"?)"},
      {"UnknownTopLevelTable", "[sites]\nx = 1\n" + SiteWith(""),
       "t.toml:1:2: unknown key \"sites\" in the top level (did you mean "
       "\"site\"?)"},
      {"EveryUnknownKeyInFileOrder", SiteWith("zzz = 1\naaa = 2"),
       "t.toml:8:1: unknown key \"zzz\" in [[site]]; known keys: id, "
       "command, processes, hosts, listeners, default, alpn, env, user, "
       "group, log_output, log_error, log_all, log_max_bytes, log_keep, "
       "tls_cert, tls_key, runtime, claimable_hosts, may_claim_default, "
       "limits, cwd, memory_max, cpu_weight, max_connections, max_pending, "
       "strict_host\n"
       "t.toml:9:1: unknown key \"aaa\" in [[site]]; known keys: id, "
       "command, processes, hosts, listeners, default, alpn, env, user, "
       "group, log_output, log_error, log_all, log_max_bytes, log_keep, "
       "tls_cert, tls_key, runtime, claimable_hosts, may_claim_default, "
       "limits, cwd, memory_max, cpu_weight, max_connections, max_pending, "
       "strict_host"},

      // [master]
      {"MasterNotTable",
       "master = 1\n" + SiteBody("id = \"a\"\ncommand = [\"/bin/sh\"]"),
       "t.toml:1:10: master must be a table, got an integer"},
      {"PeekTimeoutZero", MasterWith("peek_timeout_ms = 0"),
       "t.toml:2:19: peek_timeout_ms must be between 1 and 600000, got 0"},
      {"PeekTimeoutTooLong", MasterWith("peek_timeout_ms = 600001"),
       "t.toml:2:19: peek_timeout_ms must be between 1 and 600000, got "
       "600001"},
      {"PeekTimeoutString", MasterWith("peek_timeout_ms = \"5s\""),
       "t.toml:2:19: peek_timeout_ms must be an integer, got a string"},
      {"MaxPeekBytesTooSmall", MasterWith("max_peek_bytes = 511"),
       "t.toml:2:18: max_peek_bytes must be between 512 and 1048576, got "
       "511"},
      {"MaxPeekBytesTooLarge", MasterWith("max_peek_bytes = 1048577"),
       "t.toml:2:18: max_peek_bytes must be between 512 and 1048576, got "
       "1048577"},
      {"MetricsAddressHostName", MasterWith("metrics_address = \"localhost:9150\""),
       "t.toml:2:19: metrics_address: address \"localhost:9150\": host names "
       "are not accepted, use an IP address, e.g. \"127.0.0.1:9150\""},
      {"MetricsAddressIsAListener",
       MasterWith("metrics_address = \"127.0.0.1:80\""),
       "t.toml:2:19: metrics_address \"127.0.0.1:80\" is already used by "
       "listener \"http\""},
      {"HandoffUnknown", MasterWith("handoff = \"fd\""),
       "t.toml:2:11: handoff \"fd\" must be \"scm_rights\" or \"pidfd\""},
      {"ControlSocketRelative", MasterWith("control_socket = \"ddv.sock\""),
       "t.toml:2:18: control_socket \"ddv.sock\" must be an absolute path"},
      {"ControlSocketModeInteger", MasterWith("control_socket_mode = 0o660"),
       "t.toml:2:23: control_socket_mode must be a string of octal digits "
       "such as \"0660\", got an integer"},
      {"ControlSocketModeNotOctal", MasterWith("control_socket_mode = \"0680\""),
       "t.toml:2:23: control_socket_mode \"0680\" must be 3 or 4 octal "
       "digits, such as \"0600\" or \"0660\""},
      {"ControlSocketModeTooLong",
       MasterWith("control_socket_mode = \"00660\""),
       "t.toml:2:23: control_socket_mode \"00660\" must be 3 or 4 octal "
       "digits, such as \"0600\" or \"0660\""},
      {"ControlSocketModeSetuid", MasterWith("control_socket_mode = \"4660\""),
       "t.toml:2:23: control_socket_mode \"4660\" sets set-id or sticky "
       "bits; only permission bits (0777) apply to a socket"},
      {"ControlSocketModeOwnerCannotWrite",
       MasterWith("control_socket_mode = \"0460\""),
       "t.toml:2:23: control_socket_mode \"0460\" must give the owner read "
       "and write (0600): ddvctl needs both to connect"},
      {"ControlSocketGroupUnknown",
       MasterWith("control_socket_group = \"ddv-no-such-group\""),
       "t.toml:2:24: control_socket_group \"ddv-no-such-group\" does not "
       "exist"},
      {"ControlSocketGroupEmpty", MasterWith("control_socket_group = \"\""),
       "t.toml:2:24: control_socket_group must not be empty; leave it out "
       "instead"},
      {"ControlSocketTooLong",
       MasterWith("control_socket = \"/" + std::string(107, 's') + "\""),
       "t.toml:2:18: control_socket is 108 bytes; a Unix socket path must "
       "be shorter than 108"},

      // Sections present and of the right shape.
      {"EmptyDocument", "",
       "t.toml:1:1: no [[listener]]: at least one is required\n"
       "t.toml:1:1: no [[site]]: at least one is required"},
      {"NoListener", "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\n",
       "t.toml:1:1: no [[listener]]: at least one is required"},
      {"NoSite",
       "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"http\"\n",
       "t.toml:1:1: no [[site]]: at least one is required"},
      {"ListenerAsPlainTable", WithSite("[listener]\nname = \"http\"\n"),
       "t.toml:1:1: listener must be an array of tables: write [[listener]], "
       "got a table"},
      {"EmptyListenerArray", WithSite("listener = []\n"),
       "t.toml:1:12: no [[listener]]: at least one is required"},
      {"SiteArrayOfStrings",
       "site = [\"a\"]\n[[listener]]\nname = \"http\"\n"
       "address = \"127.0.0.1:80\"\nprotocol = \"http\"\n",
       "t.toml:1:8: site must be an array of tables: write [[site]], got an "
       "array"},

      // [[listener]]
      {"ListenerMissingName",
       WithSite("[[listener]]\naddress = \"127.0.0.1:80\"\nprotocol = \"http\"\n"),
       "t.toml:1:1: [[listener]] needs a name"},
      {"ListenerEmptyName",
       WithSite("[[listener]]\nname = \"\"\naddress = \"127.0.0.1:80\"\n"
                "protocol = \"http\"\n"),
       "t.toml:2:8: listener name must not be empty"},
      {"ListenerNameWithASeparator",
       WithSite("[[listener]]\nname = \"web#1\"\naddress = \"127.0.0.1:80\"\n"
                "protocol = \"http\"\n"),
       "t.toml:2:8: listener name \"web#1\" must not contain \",\" or \"=\", "
       "nor end in \"#\" and digits"},
      {"ListenerMissingAddress",
       WithSite("[[listener]]\nname = \"http\"\nprotocol = \"http\"\n"),
       "t.toml:1:1: listener \"http\" needs an address"},
      {"ListenerHostName",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"localhost:80\"\n"
                "protocol = \"http\"\n"),
       "t.toml:3:11: address \"localhost:80\": host names are not accepted, "
       "use an IP address, e.g. \"127.0.0.1:80\""},
      {"ListenerNoPort",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"0.0.0.0\"\n"
                "protocol = \"http\"\n"),
       "t.toml:3:11: address \"0.0.0.0\": missing port: write "
       "\"0.0.0.0:PORT\""},
      {"ListenerBadPort",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"[::]:70000\"\n"
                "protocol = \"http\"\n"),
       "t.toml:3:11: address \"[::]:70000\": port \"70000\" must be a number "
       "from 0 to 65535"},
      {"ListenerAddressNotString",
       WithSite("[[listener]]\nname = \"http\"\naddress = 80\n"
                "protocol = \"http\"\n"),
       "t.toml:3:11: address must be a string, got an integer"},
      {"ListenerMissingProtocol",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"),
       "t.toml:1:1: listener \"http\" needs a protocol: \"http\", \"tls\" or "
       "\"tcp\""},
      {"ListenerUnknownProtocol",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"https\"\n"),
       "t.toml:4:12: protocol \"https\" must be \"http\", \"tls\" or \"tcp\""},
      {"ListenerProxyProtocolNotBool", ListenerWith("proxy_protocol = 1"),
       "t.toml:5:18: proxy_protocol must be true or false, got an integer"},
      {"ListenerProxyProtocolFromWithoutProxyProtocol",
       ListenerWith("proxy_protocol_from = [\"10.0.0.0/8\"]"),
       "t.toml:5:23: proxy_protocol_from needs proxy_protocol = true"},
      {"ListenerProxyProtocolFromEmpty",
       ListenerWith("proxy_protocol = true\nproxy_protocol_from = []"),
       "t.toml:6:23: proxy_protocol_from must not be empty; leave it out to "
       "accept PROXY headers from any address"},
      {"ListenerProxyProtocolFromString",
       ListenerWith("proxy_protocol = true\n"
                    "proxy_protocol_from = \"10.0.0.0/8\""),
       "t.toml:6:23: proxy_protocol_from must be an array of strings, got a "
       "string"},
      {"ListenerProxyProtocolFromHostBits",
       ListenerWith("proxy_protocol = true\n"
                    "proxy_protocol_from = [\"::1/128\", \"10.1.2.3/8\"]"),
       "t.toml:6:35: network \"10.1.2.3/8\": bits are set past the prefix; "
       "did you mean \"10.0.0.0/8\"?"},
      {"ListenerProxyProtocolFromHostName",
       ListenerWith("proxy_protocol = true\n"
                    "proxy_protocol_from = [\"lb.internal\"]"),
       "t.toml:6:24: network \"lb.internal\": not an IPv4 or IPv6 address "
       "with an optional /PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\" (no "
       "brackets, no host names)"},
      {"ListenerV6OnlyOnIpv4", ListenerWith("v6only = false"),
       "t.toml:5:10: v6only applies to IPv6 addresses only, and "
       "\"127.0.0.1:80\" is IPv4"},
      {"ListenerV6OnlyNotBool",
       "[[listener]]\nname = \"http\"\naddress = \"[::]:80\"\n"
       "protocol = \"http\"\nv6only = \"no\"\n"
       "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\n",
       "t.toml:5:10: v6only must be true or false, got a string"},
      {"AccessLogRelative", ListenerWith("access_log = \"access.log\""),
       "t.toml:5:14: access_log \"access.log\" must be an absolute path"},
      {"AccessLogFormatUnknown",
       ListenerWith("access_log = \"/a.log\"\naccess_log_format = \"csv\""),
       "t.toml:6:21: access_log_format \"csv\" must be \"json\" or "
       "\"logfmt\""},
      {"AccessLogSampleTooLarge",
       ListenerWith("access_log = \"/a.log\"\naccess_log_sample = 1.5"),
       "t.toml:6:21: access_log_sample must be from 0 to 1 (the share of "
       "connections logged), got 1.5"},
      {"AccessLogSampleNegative",
       ListenerWith("access_log = \"/a.log\"\naccess_log_sample = -1"),
       "t.toml:6:21: access_log_sample must be from 0 to 1 (the share of "
       "connections logged), got -1"},
      {"AccessLogSampleString",
       ListenerWith("access_log = \"/a.log\"\naccess_log_sample = \"10%\""),
       "t.toml:6:21: access_log_sample must be a number from 0 to 1, got a "
       "string"},
      {"AccessLogFormatAlone", ListenerWith("access_log_format = \"json\""),
       "t.toml:5:21: access_log_format needs access_log (the file to write)"},
      {"AccessLogSampleAlone", ListenerWith("access_log_sample = 0.5"),
       "t.toml:5:21: access_log_sample needs access_log (the file to write)"},
      {"ListenerEmptyDefaultSite", ListenerWith("default_site = \"\""),
       "t.toml:5:16: default_site must not be empty; leave it out instead"},
      {"ListenerDuplicateName",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"http\"\n"
       "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:81\"\n"
       "protocol = \"http\"\n"),
       "t.toml:6:8: listener name \"http\" is already used on line 1"},
      {"ListenerDuplicateAddress",
       WithSite("[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"http\"\n"
       "[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"tls\"\n"),
       "t.toml:7:11: address \"127.0.0.1:80\" is already used by listener "
       "\"http\""},

      // [[site]]: id and command.
      {"SiteMissingId", SiteBody("command = [\"/bin/sh\"]"),
       "t.toml:5:1: [[site]] needs an id"},
      {"SiteIdWithSpace",
       SiteBody("id = \"a b\"\ncommand = [\"/bin/sh\"]"),
       "t.toml:6:6: site id \"a b\" must be non-empty and use only A-Z a-z "
       "0-9 _ . -"},
      {"SiteIdEmpty",
       SiteBody("id = \"\"\ncommand = [\"/bin/sh\"]"),
       "t.toml:6:6: site id \"\" must be non-empty and use only A-Z a-z 0-9 "
       "_ . -"},
      {"SiteIdDotDot",
       SiteBody("id = \"..\"\ncommand = [\"/bin/sh\"]"),
       "t.toml:6:6: site id \"..\" must be non-empty and use only A-Z a-z "
       "0-9 _ . -"},
      {"SiteMissingCommand", SiteBody("id = \"a\""),
       "t.toml:5:1: site \"a\" needs a command"},
      {"CommandString", SiteBody("id = \"a\"\ncommand = \"/bin/sh\""),
       "t.toml:7:11: command must be an array of strings, got a string"},
      {"CommandEmpty", SiteBody("id = \"a\"\ncommand = []"),
       "t.toml:7:11: command must not be empty"},
      {"CommandNotString", SiteBody("id = \"a\"\ncommand = [\"/bin/sh\", 1]"),
       "t.toml:7:23: command[1] must be a string, got an integer"},
      {"CommandProgramEmpty", SiteBody("id = \"a\"\ncommand = [\"\"]"),
       "t.toml:7:12: command[0] must not be empty"},
      {"CommandMissing",
       SiteBody("id = \"a\"\ncommand = [\"/nonexistent/ddv_hello\"]"),
       "t.toml:7:12: command[0] \"/nonexistent/ddv_hello\" does not exist"},
      {"CommandNotExecutable",
       SiteBody("id = \"a\"\ncommand = [\"/etc/passwd\"]"),
       "t.toml:7:12: command[0] \"/etc/passwd\" is not executable"},
      {"CommandDirectory", SiteBody("id = \"a\"\ncommand = [\"/\"]"),
       "t.toml:7:12: command[0] \"/\" is a directory"},
      {"CommandDevice", SiteBody("id = \"a\"\ncommand = [\"/dev/null\"]"),
       "t.toml:7:12: command[0] \"/dev/null\" is not a regular file"},

      // [[site]]: the other keys, line 8.
      {"ProcessesString", SiteWith("processes = \"2\""),
       "t.toml:8:13: processes must be an integer, got a string"},
      {"ProcessesFloat", SiteWith("processes = 2.0"),
       "t.toml:8:13: processes must be an integer, got a float"},
      {"ProcessesZero", SiteWith("processes = 0"),
       "t.toml:8:13: processes must be between 1 and 1024, got 0"},
      {"ProcessesTooMany", SiteWith("processes = 1025"),
       "t.toml:8:13: processes must be between 1 and 1024, got 1025"},
      {"DefaultNotBool", SiteWith("default = \"yes\""),
       "t.toml:8:11: default must be true or false, got a string"},
      {"HostsString", SiteWith("hosts = \"a.example\""),
       "t.toml:8:9: hosts must be an array of strings, got a string"},
      {"HostsElementNotString", SiteWith("hosts = [\"a.example\", 7]"),
       "t.toml:8:23: hosts[1] must be a string, got an integer"},
      {"HostStar", SiteWith("hosts = [\"*\"]"),
       "t.toml:8:10: host \"*\" matches everything: mark the site default = "
       "true (or name it in a listener's default_site) instead"},
      {"HostInnerStar", SiteWith("hosts = [\"a.*.b\"]"),
       "t.toml:8:10: host \"a.*.b\" has a misplaced \"*\": a wildcard is "
       "only allowed as the whole first label, as in \"*.example.com\""},
      {"HostPartialStar", SiteWith("hosts = [\"*a.b\"]"),
       "t.toml:8:10: host \"*a.b\" has a misplaced \"*\": a wildcard is only "
       "allowed as the whole first label, as in \"*.example.com\""},
      {"HostWithPort", SiteWith("hosts = [\"a.example:80\"]"),
       "t.toml:8:10: host \"a.example:80\" must not include a port"},
      {"HostWithSpace", SiteWith("hosts = [\"a b\"]"),
       "t.toml:8:10: host \"a b\" is not valid: invalid character in host"},
      {"HostEmpty", SiteWith("hosts = [\"\"]"), "t.toml:8:10: host is empty"},
      {"HostTwiceInOneSite",
       SiteWith("hosts = [\"x.example\", \"X.Example.\"]"),
       "t.toml:8:23: host \"x.example\" is listed twice"},
      {"ListenersUnknown", SiteWith("listeners = [\"nope\"]"),
       "t.toml:8:14: no listener named \"nope\""},
      {"ListenersEmpty", SiteWith("listeners = []"),
       "t.toml:8:13: listeners must not be empty; leave it out to serve "
       "every listener"},
      {"ListenersTwice", SiteWith("listeners = [\"http\", \"http\"]"),
       "t.toml:8:22: listener \"http\" is listed twice"},
      {"AlpnEmpty", SiteWith("alpn = [\"\"]"),
       "t.toml:8:9: alpn[0] must be 1 to 255 bytes long"},
      {"AlpnTooLong", SiteWith("alpn = [\"" + std::string(256, 'x') + "\"]"),
       "t.toml:8:9: alpn[0] must be 1 to 255 bytes long"},
      {"AlpnTwice", SiteWith("alpn = [\"h2\", \"h2\"]"),
       "t.toml:8:15: alpn \"h2\" is listed twice"},
      {"EnvNotTable", SiteWith("env = \"A=1\""),
       "t.toml:8:7: env must be a table of strings, got a string"},
      {"EnvValueNotString", SiteWith("env = { A = 1 }"),
       "t.toml:8:13: env.A must be a string, got an integer"},
      {"EnvNameWithEquals", SiteWith("env = { \"A=B\" = \"1\" }"),
       "t.toml:8:9: env name \"A=B\" must not contain \"=\""},
      {"UserUnknown", SiteWith("user = \"ddv-no-such-user\""),
       "t.toml:8:8: user \"ddv-no-such-user\" does not exist"},
      {"UserNotString", SiteWith("user = 0"),
       "t.toml:8:8: user must be a string, got an integer"},
      {"GroupUnknown", SiteWith("group = \"ddv-no-such-group\""),
       "t.toml:8:9: group \"ddv-no-such-group\" does not exist"},
      {"ClaimableHostInvalid", SiteWith("claimable_hosts = [\"a.*.b\"]"),
       "t.toml:8:20: claimable_hosts: host \"a.*.b\" has a misplaced \"*\": "
       "a wildcard is only allowed as the whole first label, as in "
       "\"*.example.com\""},
      {"ClaimableHostTwice",
       SiteWith("claimable_hosts = [\"*.a.com\", \"*.A.com.\"]"),
       "t.toml:8:31: claimable host \"*.a.com\" is listed twice"},
      {"ClaimableHostsNotArray", SiteWith("claimable_hosts = \"a.com\""),
       "t.toml:8:19: claimable_hosts must be an array of strings, got a "
       "string"},
      {"MayClaimDefaultNotBool", SiteWith("may_claim_default = 1"),
       "t.toml:8:21: may_claim_default must be true or false, got an "
       "integer"},
      {"StrictHostNotBool", SiteWith("strict_host = \"no\""),
       "t.toml:8:15: strict_host must be true or false, got a string"},
      {"LogOutputRelative", SiteWith("log_output = \"a.log\""),
       "t.toml:8:14: log_output \"a.log\" must be an absolute path"},
      {"LogErrorRelative", SiteWith("log_error = \"logs/a.err\""),
       "t.toml:8:13: log_error \"logs/a.err\" must be an absolute path"},
      {"LogAllNotString", SiteWith("log_all = true"),
       "t.toml:8:11: log_all must be a string, got a boolean"},
      {"LogMaxBytesNegative",
       SiteWith("log_all = \"/l/a.log\"\nlog_max_bytes = -1"),
       "t.toml:9:17: log_max_bytes must be between 0 and 1125899906842624, "
       "got -1"},
      {"LogMaxBytesNotInteger", SiteWith("log_max_bytes = \"10M\""),
       "t.toml:8:17: log_max_bytes must be an integer, got a string"},
      {"LogMaxBytesWithoutLog", SiteWith("log_max_bytes = 1000000"),
       "t.toml:8:17: log_max_bytes needs a log file to rotate: log_output, "
       "log_error or log_all"},
      {"LogKeepWithoutMaxBytes",
       SiteWith("log_all = \"/l/a.log\"\nlog_keep = 3"),
       "t.toml:9:12: log_keep needs log_max_bytes: files are rotated only by "
       "size"},
      {"LogKeepTooMany",
       SiteWith("log_all = \"/l/a.log\"\nlog_max_bytes = 1000\n"
                "log_keep = 1001"),
       "t.toml:10:12: log_keep must be between 0 and 1000, got 1001"},
      {"TlsCertNotString", SiteWith("tls_cert = 5"),
       "t.toml:8:12: tls_cert must be a string or an array of strings, got "
       "an integer"},
      {"TlsKeyRelative",
       SiteWith("tls_cert = \"/a.pem\"\ntls_key = \"a.key\""),
       "t.toml:9:11: tls_key \"a.key\" must be an absolute path"},
      {"TlsCertWithoutKey", SiteWith("tls_cert = \"/a.pem\""),
       "t.toml:8:12: site \"a\" has 1 tls_cert and 0 tls_key; give one key "
       "per certificate"},
      {"TlsKeysMissingOne",
       SiteWith("tls_cert = [\"/a.pem\", \"/b.pem\"]\ntls_key = [\"/a.key\"]"),
       "t.toml:9:11: site \"a\" has 2 tls_cert and 1 tls_key; give one key "
       "per certificate"},

      // Isolation (docs/isolation.md).
      {"LimitsNotATable", SiteWith("limits = 5"),
       "t.toml:8:10: limits must be a table such as { nofile = 4096, core = "
       "0 }, got an integer"},
      {"LimitsUnknownKey", SiteWith("limits = { nofiles = 10 }"),
       "t.toml:8:12: unknown key \"nofiles\" in limits (did you mean "
       "\"nofile\"?)"},
      {"LimitsNofileTooLow", SiteWith("limits = { nofile = 3 }"),
       "t.toml:8:21: limits.nofile must be 16 to 1073741824 or "
       "\"unlimited\", got 3"},
      {"LimitsCoreNegative", SiteWith("limits = { core = -1 }"),
       "t.toml:8:19: limits.core must not be negative"},
      {"LimitsAsBytesNotASize", SiteWith("limits = { as_bytes = \"lots\" }"),
       "t.toml:8:23: limits.as_bytes \"lots\" must be a size such as "
       "\"512M\" or \"unlimited\""},
      {"LimitsNprocString", SiteWith("limits = { nproc = \"10\" }"),
       "t.toml:8:20: limits.nproc \"10\" must be an integer or "
       "\"unlimited\""},
      {"LimitsNprocBoolean", SiteWith("limits = { nproc = true }"),
       "t.toml:8:20: limits.nproc must be an integer or \"unlimited\", got "
       "a boolean"},
      {"CwdRelative", SiteWith("cwd = \"srv/a\""),
       "t.toml:8:7: cwd \"srv/a\" must be an absolute path"},
      {"CwdMissing", SiteWith("cwd = \"/nonexistent-ddv-dir\""),
       "t.toml:8:7: cwd \"/nonexistent-ddv-dir\": No such file or "
       "directory"},
      {"CwdNotADirectory", SiteWith("cwd = \"/bin/sh\""),
       "t.toml:8:7: cwd \"/bin/sh\" is not a directory"},
      {"MemoryMaxTooSmall", SiteWith("memory_max = 4096"),
       "t.toml:8:14: memory_max must be 1048576 to 4611686018427387904, got "
       "4096"},
      {"MemoryMaxBadSuffix", SiteWith("memory_max = \"5Q\""),
       "t.toml:8:14: memory_max \"5Q\" must be a size such as \"512M\""},
      {"MemoryMaxFloat", SiteWith("memory_max = 1.5"),
       "t.toml:8:14: memory_max must be an integer or a size such as "
       "\"512M\", got a float"},
      {"CpuWeightZero", SiteWith("cpu_weight = 0"),
       "t.toml:8:14: cpu_weight must be between 1 and 10000, got 0"},
      {"MaxConnectionsZero", SiteWith("max_connections = 0"),
       "t.toml:8:19: max_connections must be between 1 and 10000000, got 0"},
      {"MaxPendingAboveMaxConnections",
       SiteWith("max_connections = 10\nmax_pending = 20"),
       "t.toml:9:15: max_pending (20) cannot exceed max_connections (10): "
       "waiting connections count against both"},

      // Cross checks between sites and listeners.
      {"SiteIdTwice",
       SiteBody("id = \"a\"\ncommand = [\"/bin/sh\"]\n"
                "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]"),
       "t.toml:9:6: site id \"a\" is already used by the site on line 5"},
      {"TwoDefaultSites",
       SiteBody("id = \"a\"\ncommand = [\"/bin/sh\"]\ndefault = true\n"
                "[[site]]\nid = \"b\"\ncommand = [\"/bin/sh\"]\n"
                "default = true"),
       "t.toml:12:11: site \"b\" has default = true, but so does site \"a\"; "
       "at most one site may be the default"},
      {"DefaultSiteUnknown", ListenerWith("default_site = \"nope\""),
       "t.toml:5:16: default_site \"nope\" is not a site id"},
      {"DefaultSiteDoesNotServeListener",
       "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"http\"\ndefault_site = \"a\"\n"
       "[[listener]]\nname = \"tls\"\naddress = \"127.0.0.1:443\"\n"
       "protocol = \"tls\"\n"
       "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\nlisteners = [\"tls\"]\n",
       "t.toml:5:16: default_site \"a\" does not serve listener \"http\": add "
       "\"http\" to that site's listeners"},
      {"TcpListenerWithoutDefault",
       "[[listener]]\nname = \"db\"\naddress = \"127.0.0.1:5432\"\n"
       "protocol = \"tcp\"\n"
       "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\n",
       "t.toml:1:1: listener \"db\" is tcp, which cannot route by name: give "
       "it a default_site, or mark a site that serves it default = true"},
      {"TcpListenerDefaultSiteElsewhere",
       "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n"
       "protocol = \"http\"\n"
       "[[listener]]\nname = \"db\"\naddress = \"127.0.0.1:5432\"\n"
       "protocol = \"tcp\"\n"
       "[[site]]\nid = \"a\"\ncommand = [\"/bin/sh\"]\ndefault = true\n"
       "listeners = [\"http\"]\n",
       "t.toml:5:1: listener \"db\" is tcp, which cannot route by name: give "
       "it a default_site, or mark a site that serves it default = true"},
      {"SameHostOnTwoSites",
       SiteBody("id = \"a\"\ncommand = [\"/bin/sh\"]\n"
                "hosts = [\"x.example\"]\n"
                "[[site]]\nid = \"b\"\ncommand = [\"/bin/sh\"]\n"
                "hosts = [\"y.example\", \"X.EXAMPLE\"]"),
       "t.toml:12:23: host \"x.example\" is on both site \"a\" and site "
       "\"b\", which share listener \"http\""},
      {"SameHostSameAlpn",
       SiteBody("id = \"a\"\ncommand = [\"/bin/sh\"]\n"
                "hosts = [\"x.example\"]\nalpn = [\"acme-tls/1\"]\n"
                "[[site]]\nid = \"b\"\ncommand = [\"/bin/sh\"]\n"
                "hosts = [\"x.example\"]\nalpn = [\"h2\", \"acme-tls/1\"]"),
       "t.toml:13:10: host \"x.example\" with ALPN \"acme-tls/1\" is on both "
       "site \"a\" and site \"b\", which share listener \"http\""},
  };
  return *cases;
}

class ParseConfigErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ParseConfigErrorTest, RefusesWithPosition) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<Config> parsed = ParseConfig(c.toml, "t.toml");
  ASSERT_FALSE(parsed.ok()) << "accepted:\n" << c.toml;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(parsed.status().message()), c.message) << c.toml;
}

// One file, many independent mistakes: every one is reported, in file order,
// and nothing that only follows from one of them (the listener with a bad
// name is not "missing" from the site that names it; the site whose id is
// bad is not a duplicate).
TEST(ParseConfigErrorsTest, ReportsEveryErrorInFileOrder) {
  const std::string toml =
      "[master]\n"                                   // 1
      "peek_timeout_ms = 0\n"                        // 2
      "handof = \"pidfd\"\n"                         // 3
      "[[listener]]\n"                               // 4
      "name = \"http\"\n"                            // 5
      "address = \"localhost:80\"\n"                 // 6
      "protocol = \"http\"\n"                        // 7
      "[[listener]]\n"                               // 8
      "name = 7\n"                                   // 9
      "address = \"127.0.0.1:81\"\n"                 // 10
      "protocol = \"htp\"\n"                         // 11
      "[[site]]\n"                                   // 12
      "id = \"a\"\n"                                 // 13
      "command = [\"/bin/sh\"]\n"                    // 14
      "processes = 0\n"                              // 15
      "hosts = [\"a.example\", \"a.*.b\", \"b:80\"]\n"  // 16
      "listeners = [\"http\", \"tls\"]\n"            // 17
      "[[site]]\n"                                   // 18
      "id = \"a b\"\n"                               // 19
      "command = [\"/nonexistent/ddv_hello\"]\n"     // 20
      "hosts = [\"a.example\"]\n"                    // 21
      "user = \"ddv-no-such-user\"\n"                // 22
      "log_keep = 3\n"                               // 23
      "[[site]]\n"                                   // 24
      "id = \"a\"\n"                                 // 25
      "command = [\"/bin/sh\"]\n"                    // 26
      "listeners = [\"http\"]\n"                     // 27
      "hosts = [\"a.example\"]\n";                   // 28
  absl::StatusOr<Config> parsed = ParseConfig(toml, "t.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      std::string(parsed.status().message()),
      "t.toml:2:19: peek_timeout_ms must be between 1 and 600000, got 0\n"
      "t.toml:3:1: unknown key \"handof\" in [master] (did you mean "
      "\"handoff\"?)\n"
      "t.toml:6:11: address \"localhost:80\": host names are not accepted, "
      "use an IP address, e.g. \"127.0.0.1:80\"\n"
      "t.toml:9:8: name must be a string, got an integer\n"
      "t.toml:11:12: protocol \"htp\" must be \"http\", \"tls\" or "
      "\"tcp\"\n"
      "t.toml:15:13: processes must be between 1 and 1024, got 0\n"
      "t.toml:16:23: host \"a.*.b\" has a misplaced \"*\": a wildcard is "
      "only allowed as the whole first label, as in \"*.example.com\"\n"
      "t.toml:16:32: host \"b:80\" must not include a port\n"
      "t.toml:19:6: site id \"a b\" must be non-empty and use only A-Z a-z "
      "0-9 _ . -\n"
      "t.toml:20:12: command[0] \"/nonexistent/ddv_hello\" does not exist\n"
      "t.toml:22:8: user \"ddv-no-such-user\" does not exist\n"
      "t.toml:23:12: log_keep needs log_max_bytes: files are rotated only by "
      "size\n"
      "t.toml:25:6: site id \"a\" is already used by the site on line 12");
}

// The listener names are all good here, so a site naming one that does
// not exist is reported beside the other errors, and so are host clashes.
TEST(ParseConfigErrorsTest, CrossChecksRunBesideTableErrors) {
  const std::string toml =
      "[[listener]]\n"                        // 1
      "name = \"http\"\n"                     // 2
      "address = \"127.0.0.1:80\"\n"          // 3
      "protocol = \"http\"\n"                 // 4
      "default_site = \"nope\"\n"             // 5
      "[[site]]\n"                            // 6
      "id = \"a\"\n"                          // 7
      "command = [\"/bin/sh\"]\n"             // 8
      "hosts = [\"x.example\"]\n"             // 9
      "listeners = [\"http\", \"https\"]\n"   // 10
      "[[site]]\n"                            // 11
      "id = \"b\"\n"                          // 12
      "command = [\"/bin/sh\"]\n"             // 13
      "hosts = [\"x.example\"]\n"             // 14
      "processes = \"2\"\n";                  // 15
  absl::StatusOr<Config> parsed = ParseConfig(toml, "t.toml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(std::string(parsed.status().message()),
            "t.toml:5:16: default_site \"nope\" is not a site id\n"
            "t.toml:10:22: no listener named \"https\"\n"
            "t.toml:14:10: host \"x.example\" is on both site \"a\" and site "
            "\"b\", which share listener \"http\"\n"
            "t.toml:15:13: processes must be an integer, got a string");
}

INSTANTIATE_TEST_SUITE_P(Table, ParseConfigErrorTest,
                         testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace config
}  // namespace ddv
