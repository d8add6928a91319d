#!/bin/sh
# Builds the HTTP1 fuzzer (libFuzzer + AddressSanitizer) and runs it for the given seconds (default 60)
# on a scratch copy of the seed corpus in Tests/HTTP1Tests/Corpus. Crashes are written to /tmp/http1-fuzz-artifacts/.
set -eu
cd "$(dirname "$0")/.."
seconds="${1:-60}"
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name HTTP1Fuzz -use-ld=lld \
    Sources/HTTP1/*.swift Fuzz/HTTP1Fuzz.swift -o /tmp/http1-fuzz
corpus="$(mktemp -d /tmp/http1-corpus.XXXXXX)"
cp Tests/HTTP1Tests/Corpus/* "$corpus"/
mkdir -p /tmp/http1-fuzz-artifacts
SWIFT_BACKTRACE=enable=no /tmp/http1-fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -dict=Fuzz/http1.dict -artifact_prefix=/tmp/http1-fuzz-artifacts/ "$corpus"
