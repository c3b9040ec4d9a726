#!/usr/bin/env bash
# Run Byline's benchmarks by hand (pytest never collects tests/bench).
#   tests/bench/run_all.sh                 # defaults: 1,000 articles; 10k and 100k chunks
#   SMALL=1 tests/bench/run_all.sh         # the sizes used for RESULTS.md on a shared 2-core box
# Extra arguments go to both scripts' environment via ARTICLES / SIZES / QUESTIONS / GENERATORS.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
OUT="${OUT:-${TMPDIR:-/tmp}/byline-bench}"  # JSON numbers land here
mkdir -p "$OUT"
if [ "${SMALL:-0}" = "1" ]; then
  ARTICLES="${ARTICLES:-300}"; SIZES="${SIZES:-10000,100000}"; QUESTIONS="${QUESTIONS:-3}"
else
  ARTICLES="${ARTICLES:-1000}"; SIZES="${SIZES:-10000,100000}"; QUESTIONS="${QUESTIONS:-5}"
fi
echo "== $(date -Is)  $(nproc) cores  commit $(git rev-parse --short HEAD)  load $(cut -d' ' -f1-3 /proc/loadavg)"
python tests/bench/bench_ingest.py --articles "$ARTICLES" --json "$OUT/ingest.json"
gen_args=()
[ -n "${GENERATORS:-}" ] && gen_args=(--generators "$GENERATORS")
url_args=()
[ -n "${CHROMA_URL:-}" ] && url_args=(--chroma-url "$CHROMA_URL")
python tests/bench/bench_query.py --sizes "$SIZES" --questions "$QUESTIONS" "${gen_args[@]}" "${url_args[@]}" --json "$OUT/query.json"
