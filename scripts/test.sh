#!/usr/bin/env bash
# The whole test suite: setup, every test, the sniffer and route tests again
# under ASan+UBSan, the Debian package built and run from a temporary root,
# and a bounded libFuzzer run (iterations, not time) of each fuzz target.
# Ends with one line "N passed, M failed", counted from the test cases in the
# results (scripts/count_results.py).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1

# Every io_uring (the master's and each ddv_hello worker's) pins memory that
# the kernel charges to the user's RLIMIT_MEMLOCK (8 MiB by default) when
# the process lacks CAP_IPC_LOCK, as inside Bazel's sandbox: parallel tests
# would share that budget and fail with ENOMEM at ring set-up. Raise it for
# this run; the Bazel server is restarted so the tests inherit it.
if ulimit -l unlimited 2>/dev/null; then
  bazel shutdown >/dev/null 2>&1
fi

RESULTS=$(mktemp -d)
step=0

# bazel_tests NAME [bazel test args...]: runs the tests and records where their
# results are, for the count at the end.
bazel_tests() {
  local name=$1; shift
  step=$((step + 1))
  echo "== $name: bazel test $*"
  bazel test --keep_going "$@" 2>&1 | tee "$RESULTS/$step-$name.bazel.log"
  local configs=()
  for arg in "$@"; do
    case "$arg" in --config=*) configs+=("$arg") ;; esac
  done
  bazel info "${configs[@]}" bazel-testlogs 2>/dev/null \
    >"$RESULTS/$step-$name.testlogs"
}

bazel_tests all //...
bazel_tests asan --config=asan //tests/sniff/... //tests/route/...

# The Debian package: built from the --config=opt outputs, linted, extracted
# into a temporary root and run from there (tests/package/package_test.sh).
# One result per check.
step=$((step + 1))
echo "== package: tests/package/package_test.sh"
bash tests/package/package_test.sh --results="$RESULTS" \
  >"$RESULTS/$step-package.log" 2>&1
grep -E '^(PASSED|FAILED) ' "$RESULTS/$step-package.log" | sed 's/^/package /'
if grep -q '^FAILED ' "$RESULTS/$step-package.log" ||
    ! ls "$RESULTS"/package-*.result >/dev/null 2>&1; then
  tail -60 "$RESULTS/$step-package.log"
  echo "FAILED" >"$RESULTS/package.result"
fi

# libFuzzer needs clang. A separate output base keeps the clang toolchain from
# invalidating the gcc build; no convenience symlinks, so bazel-bin and
# bazel-testlogs keep pointing at the main build.
FUZZ=(bazel --output_base="${HOME:-/root}/.cache/ddv-bazel-fuzz")
FUZZ_FLAGS=(--config=fuzz --config=asan --symlink_prefix=/)
FUZZ_RUNS="${DDV_FUZZ_RUNS:-20000}"
step=$((step + 1))
echo "== fuzz: ${FUZZ_RUNS} runs per target"
if "${FUZZ[@]}" build "${FUZZ_FLAGS[@]}" //tests/fuzz/... \
    >"$RESULTS/$step-fuzz-build.log" 2>&1; then
  bin_dir=$("${FUZZ[@]}" info "${FUZZ_FLAGS[@]}" bazel-bin)
  for bin in "$bin_dir"/tests/fuzz/*_fuzzer; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    # Every checkout shares this output base, so it may hold fuzzers another
    # branch built; this tree's each have a corpus.
    [ -d "tests/fuzz/corpus/${name%_fuzzer}" ] || continue
    work=$(mktemp -d)
    if "$bin" -runs="$FUZZ_RUNS" -max_len=20000 "$work" \
        "tests/fuzz/corpus/${name%_fuzzer}" >"$RESULTS/fuzz-$name.log" 2>&1; then
      echo "PASSED" >"$RESULTS/fuzz-$name.result"
    else
      echo "FAILED" >"$RESULTS/fuzz-$name.result"
      tail -40 "$RESULTS/fuzz-$name.log"
    fi
    echo "fuzz $name: $(cat "$RESULTS/fuzz-$name.result")"
    rm -rf "$work"
  done
else
  tail -40 "$RESULTS/$step-fuzz-build.log"
  echo "FAILED" >"$RESULTS/fuzz-build.result"
fi

python3 scripts/count_results.py "$RESULTS"
