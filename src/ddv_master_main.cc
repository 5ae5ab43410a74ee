// ddv_master: the front door. Placeholder until the master lands (issue 3).
#include <cstdio>

int main() {
  std::printf(
      "ddv_master is not built yet: the foundation (sniffers, route table)\n"
      "is in place; the io_uring master comes next. See README.md.\n");
  return 0;
}
