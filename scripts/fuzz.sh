#!/usr/bin/env bash
# Coverage-guided fuzzing of one Conjure reader with libFuzzer + AddressSanitizer.
#
#   scripts/fuzz.sh READER SECONDS [extra libFuzzer flags...]
#
# READER: npy | idx | csv | png | safetensors | gzip | wav | text. Builds fuzz/ (debug, -sanitize=fuzzer,address,
# so Swift's overflow and bounds traps stay on), seeds a working corpus from ../shared/cases and
# fuzz/seeds/READER, then runs for SECONDS. Exits non-zero on any crash, trap, hang (an input
# taking more than FUZZ_TIMEOUT seconds, default 10), out-of-memory (RSS or one allocation over
# FUZZ_RSS_MB, default 2048) or sanitizer report; the input that did it is saved under
# fuzz/artifacts/READER/. The grown corpus stays in fuzz/.build/corpus/READER between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh READER SECONDS [libFuzzer flags...]  (READER: npy idx csv png safetensors gzip wav text)" >&2
  exit 2
fi
reader=$1 seconds=$2; shift 2
case "$reader" in npy|idx|csv|png|safetensors|gzip|wav|text) ;; *) echo "fuzz.sh: unknown reader '$reader'" >&2; exit 2 ;; esac
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac
cases=${CONJURE_SHARED:-$root/../shared}/cases
if [ ! -d "$cases" ]; then
  echo "fuzz.sh: seed folder $cases is missing (../shared must sit beside the repository)" >&2
  exit 1
fi
command -v swift >/dev/null 2>&1 || export PATH=/opt/swift/usr/bin:$PATH

# Build (incremental after the first time). The linker's "Cannot export local symbol __asan_*"
# warnings are noise from ld.gold and are filtered out.
log=$(mktemp); trap 'rm -f "$log"' EXIT
if ! (cd fuzz && swift build -c debug -Xswiftc -sanitize=fuzzer,address) >"$log" 2>&1; then
  grep -v "Cannot export local symbol" "$log" >&2
  echo "fuzz.sh: building the harness failed" >&2
  exit 1
fi
bin=fuzz/.build/debug/conjure-fuzz

# Working corpus: seeds from ../shared/cases (by kind) plus fuzz/seeds/READER.
corpus=fuzz/.build/corpus/$reader
artifacts=fuzz/artifacts/$reader
mkdir -p "$corpus" "$artifacts"
shopt -s nullglob
case "$reader" in
  npy) seeds=("$cases"/*.npy) ;;
  idx) seeds=("$cases"/*idx*) ;;
  png) seeds=("$cases"/F30_*/*.png) ;;
  safetensors) seeds=() ;;
  gzip) seeds=() ;;
  csv) seeds=() ;;
  wav) seeds=("$cases"/../data/fsdd/recordings/1_jackson_0.wav "$cases"/../data/fsdd/recordings/7_theo_3.wav) ;;
  text) seeds=() ;;
esac
for f in "${seeds[@]}"; do cp -f "$f" "$corpus/shared-$(basename "$f")"; done
if [ "$reader" = csv ]; then
  # The harness reads the first byte as its options byte: 0 = auto header, ',' delimiter.
  for f in "$cases"/*.csv; do { printf '\000'; cat "$f"; } >"$corpus/shared-$(basename "$f")"; done
fi
for f in fuzz/seeds/"$reader"/*; do cp -f "$f" "$corpus/seed-$(basename "$f")"; done
chmod -R u+w "$corpus"

echo "fuzz.sh: $reader for ${seconds}s, corpus $corpus ($(ls "$corpus" | wc -l) inputs)"
set +e
CONJURE_FUZZ_READER=$reader ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} "$bin" \
  -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
  -max_len="${FUZZ_MAX_LEN:-65536}" -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$corpus"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "fuzz.sh: $reader FAILED (libFuzzer exit $rc); reproduce with:" >&2
  echo "  CONJURE_FUZZ_READER=$reader $bin $artifacts/<crash-or-timeout-file>" >&2
  exit $rc
fi
echo "fuzz.sh: $reader passed ${seconds}s"
