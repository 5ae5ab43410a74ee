/* The bare accept+close floor: the cheapest thing any acceptor can do with a
 * connection. A blocking accept4 + close loop on 127.0.0.1:PORT, one thread.
 *
 *   accept_floor PORT
 *
 * Prints "listening PORT" once the socket listens. On SIGUSR1 it prints
 * "count N" (connections accepted so far) on stdout; on SIGTERM/SIGINT it
 * prints the count and exits 0. Built by benchmarks/load/run_load.py with
 * `cc -O2`, pinned to CPU 0 there and driven by wrk's Connection: close load.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t report_flag, stop_flag;

static void on_usr1(int sig) { (void)sig; report_flag = 1; }
static void on_term(int sig) { (void)sig; stop_flag = 1; }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: accept4 returns EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("socket"); return 1; }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
  if (listen(fd, 4096) < 0) { perror("listen"); return 1; }
  printf("listening %s\n", argv[1]);
  fflush(stdout);

  unsigned long long count = 0;
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c >= 0) {
      close(c);
      ++count;
    } else if (errno != EINTR && errno != ECONNABORTED && errno != EMFILE &&
               errno != ENFILE) {
      perror("accept4");
      return 1;
    }
    if (report_flag) {
      report_flag = 0;
      printf("count %llu\n", count);
      fflush(stdout);
    }
    if (stop_flag) {
      printf("count %llu\n", count);
      fflush(stdout);
      return 0;
    }
  }
}
