#!/bin/sh
# Builds the state-store decoder fuzzer (libFuzzer + AddressSanitizer) and runs it for the given
# seconds (default 60), seeded with a few valid journal files. Crashes go to /tmp/store-fuzz-artifacts/.
set -eu
cd "$(dirname "$0")/.."
seconds="${1:-60}"
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name StoreFuzz -use-ld=lld \
    Sources/Store/CRC32C.swift Sources/Store/Frames.swift Sources/Config/JSONText.swift Sources/Config/ConfigError.swift \
    Fuzz/StoreFuzz.swift -o /tmp/store-fuzz
corpus="$(mktemp -d /tmp/store-corpus.XXXXXX)"
# Seeds: a header alone, and one record holding a put change as the store writes it.
printf 'SWYJRNL1' > "$corpus/header"
python3 - "$corpus/one-put" <<'PY'
import struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
payload = b'{"cluster":{"servers":[{"hostname":"127.0.0.1","port":8081}],"upgradeTransition":{"mode":"INSTANT"},"uuid":"a","version":"1.10"},"op":"put","seq":1}'
length = struct.pack('<I', len(payload))
open(sys.argv[1], 'wb').write(b'SWYJRNL1' + length + struct.pack('<I', crc32c(length)) + struct.pack('<I', crc32c(payload)) + payload)
PY
mkdir -p /tmp/store-fuzz-artifacts
SWIFT_BACKTRACE=enable=no /tmp/store-fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix=/tmp/store-fuzz-artifacts/ "$corpus"
