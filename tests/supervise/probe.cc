// A tiny worker stand-in for the supervisor tests: it reports what a spawned
// process sees (its fds, credentials, signal state, parent-death signal) and
// can write to an inherited fd. Actions run in argument order:
//   probe fds | write FD TEXT | ids | signals | pdeathsig | pgid | sleep SECS
//         | limits | cwd | status | sid
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

namespace {

// "fds 0 1 2 7": every open fd except the one reading /proc/self/fd.
void PrintFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) std::exit(3);
  std::vector<int> fds;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = std::atoi(entry->d_name);
    if (fd != dirfd(dir)) fds.push_back(fd);
  }
  closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::printf("fds");
  for (int fd : fds) std::printf(" %d", fd);
  std::printf("\n");
}

// "SigBlk: ..." and "SigIgn: ..." lines of /proc/self/status.
void PrintSignals() {
  FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) std::exit(3);
  char line[256];
  while (std::fgets(line, sizeof(line), status)) {
    if (std::strncmp(line, "SigBlk:", 7) == 0 ||
        std::strncmp(line, "SigIgn:", 7) == 0) {
      std::fputs(line, stdout);
    }
  }
  std::fclose(status);
}

// "nofile SOFT HARD" for each limit a site may set; "unlimited" for
// RLIM_INFINITY.
void PrintLimits() {
  const struct {
    const char* name;
    int resource;
  } kLimits[] = {{"nofile", RLIMIT_NOFILE},
                 {"nproc", RLIMIT_NPROC},
                 {"core", RLIMIT_CORE},
                 {"as", RLIMIT_AS},
                 {"memlock", RLIMIT_MEMLOCK}};
  for (const auto& limit : kLimits) {
    struct rlimit r;
    if (getrlimit(limit.resource, &r) != 0) std::exit(3);
    auto show = [](rlim_t v) {
      return v == RLIM_INFINITY ? std::string("unlimited")
                                : std::to_string(static_cast<uint64_t>(v));
    };
    std::printf("%s %s %s\n", limit.name, show(r.rlim_cur).c_str(),
                show(r.rlim_max).c_str());
  }
}

// The credential lines of /proc/self/status and NoNewPrivs, as the
// kernel sees them.
void PrintStatus() {
  FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) std::exit(3);
  char line[512];
  while (std::fgets(line, sizeof(line), status)) {
    for (const char* key : {"Uid:", "Gid:", "Groups:", "NoNewPrivs:"}) {
      if (std::strncmp(line, key, std::strlen(key)) == 0) {
        std::fputs(line, stdout);
      }
    }
  }
  std::fclose(status);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string action = argv[i];
    if (action == "fds") {
      PrintFds();
    } else if (action == "write" && i + 2 < argc) {
      int fd = std::atoi(argv[++i]);
      const char* text = argv[++i];
      if (write(fd, text, std::strlen(text)) < 0) return 4;
    } else if (action == "ids") {
      gid_t groups[64];
      int n = getgroups(64, groups);
      std::printf("uid %d gid %d groups", static_cast<int>(getuid()),
                  static_cast<int>(getgid()));
      for (int k = 0; k < n; ++k)
        std::printf(" %d", static_cast<int>(groups[k]));
      std::printf("\n");
    } else if (action == "signals") {
      std::fflush(stdout);
      PrintSignals();
    } else if (action == "pdeathsig") {
      int sig = 0;
      prctl(PR_GET_PDEATHSIG, &sig);
      std::printf("pdeathsig %d\n", sig);
    } else if (action == "pgid") {
      std::printf("pgid_is_pid %d\n", getpgid(0) == getpid() ? 1 : 0);
    } else if (action == "limits") {
      PrintLimits();
    } else if (action == "cwd") {
      char cwd[PATH_MAX];
      if (getcwd(cwd, sizeof(cwd)) == nullptr) return 3;
      std::printf("cwd %s\n", cwd);
    } else if (action == "status") {
      std::fflush(stdout);
      PrintStatus();
    } else if (action == "sid") {
      std::printf("sid_is_pid %d\n", getsid(0) == getpid() ? 1 : 0);
    } else if (action == "sleep" && i + 1 < argc) {
      std::fflush(stdout);
      sleep(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "probe: bad action %s\n", argv[i]);
      return 5;
    }
  }
  std::fflush(stdout);
  return 0;
}
