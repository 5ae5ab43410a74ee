/* fd_report DIR PROGRAM ARGS...: writes what this process holds the moment
 * it starts (every fd of /proc/self/fd and what it points at, one
 * "FD TARGET" line each) to DIR/PID, then execs PROGRAM with ARGS, the same
 * process. Put before a site's command, it shows exactly what ddv_master
 * gave the worker, before the worker opened anything of its own. */
#define _GNU_SOURCE

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: fd_report DIR PROGRAM ARGS...\n");
    return 2;
  }
  char lines[16384];
  size_t used = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == NULL) return 3;
  struct dirent* entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.') continue;
    int fd = atoi(entry->d_name);
    if (fd == dirfd(dir)) continue;
    char path[64], target[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    target[n < 0 ? 0 : n] = '\0';
    int wrote = snprintf(lines + used, sizeof(lines) - used, "%d %s\n", fd,
                         target);
    if (wrote < 0 || (size_t)wrote >= sizeof(lines) - used) return 4;
    used += (size_t)wrote;
  }
  closedir(dir);
  char out[PATH_MAX];
  snprintf(out, sizeof(out), "%s/%d", argv[1], (int)getpid());
  FILE* f = fopen(out, "we");  /* close-on-exec: the worker never sees it */
  if (f == NULL || fwrite(lines, 1, used, f) != used || fclose(f) != 0) {
    return 5;
  }
  execv(argv[2], argv + 2);
  perror("fd_report: execv");
  return 127;
}
