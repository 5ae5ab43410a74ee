"""ddv_fuzzer: one libFuzzer target and the replay of its named seed corpus.

ddv_fuzzer(name = "http_sniffer", srcs = [...], deps = [...]) makes
  :http_sniffer_fuzzer      a libFuzzer binary under --config=fuzz; otherwise
                            a replayer of the files named on its command line
  :http_sniffer_corpus_test a cc_test replaying corpus/http_sniffer/ through
                            the same LLVMFuzzerTestOneInput
"""

def ddv_fuzzer(name, srcs, deps = []):
    corpus = "corpus/" + name
    native.cc_binary(
        name = name + "_fuzzer",
        srcs = srcs,
        deps = deps + [":fuzz_check"] + select({
            "//:fuzzing": [],
            "//conditions:default": [":replay_main"],
        }),
        linkopts = select({
            "//:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = srcs,
        deps = deps + [":fuzz_check", ":replay_main"],
        args = ["tests/fuzz/" + corpus],
        data = native.glob([corpus + "/**"]),
    )
