#!/usr/bin/env bash
# Time the two README commands the way a new user meets them: a fresh clone, a new .venv, an empty pip cache.
# Writes bench/results/install.json (the README's install times are generated from it).
#   make run  -> until GET /healthz answers 200 (install + server start with the demo employee)
#   make test -> the test extras on top, then the suite (pass --no-test to time only `make run`)
# Usage: scripts/time-fresh-install.sh [--no-test]   (needs network access to the package registries)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d /tmp/facestage-fresh.XXXXXX)"
export PIP_CACHE_DIR="$WORK/pip-cache"
PORT="${PORT:-18765}"
trap 'kill -- -"${SERVER_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/facestage"
cd "$WORK/facestage"
commit="$(git rev-parse --short HEAD)"
load_before="$(cut -d' ' -f1 /proc/loadavg)"

t0=$(date +%s.%N)
setsid make run PORT="$PORT" >"$WORK/run.log" 2>&1 &  # the README command itself: install, then serve
SERVER_PID=$!
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -30 "$WORK/run.log"; exit 1; }
  sleep 0.5
done
t_healthy=$(date +%s.%N)
t_installed=$(stat -c %Y .venv/.run-installed)  # when the install step finished
kill -- -"$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
grep -q "demo" "$WORK/run.log" || { echo "make run did not set up the demo employee:"; tail -20 "$WORK/run.log"; exit 1; }
venv_mb=$(du -sm .venv | cut -f1)

t1=0; t2=0; t3=0; test_summary=None
if [ "${1:-}" != "--no-test" ]; then
  t1=$(date +%s.%N)
  make install-test >"$WORK/install-test.log" 2>&1 || { tail -30 "$WORK/install-test.log"; exit 1; }
  t2=$(date +%s.%N)
  make test >"$WORK/test.log" 2>&1 || { tail -40 "$WORK/test.log"; exit 1; }
  t3=$(date +%s.%N)
  test_summary="\"$(grep -E '^[0-9]+ passed' "$WORK/test.log" | tail -1 | tr -d '=' | xargs)\""
fi
mkdir -p "$REPO/bench/results"
python3 - "$REPO/bench/results/install.json" <<PY
import json, os, sys, datetime, platform
rec = {"bench": "install", "result": {
    "make_run_install_s": round($t_installed - $t0, 1),
    "make_run_healthy_s": round($t_healthy - $t0, 1),
    "server_start_s": round($t_healthy - $t_installed, 1),
    "make_test_extra_install_s": round($t2 - $t1, 1) if $t1 else None,
    "make_test_suite_s": round($t3 - $t2, 1) if $t1 else None,
    "suite": $test_summary,
    "venv_mb_run": $venv_mb,
    "timing": "wall clock, fresh clone, new .venv, empty pip cache; Debian packages already installed"},
  "started": datetime.datetime.fromtimestamp($t0, datetime.UTC).replace(microsecond=0).isoformat(),
  "duration_s": round(float("$(date +%s.%N)") - $t0, 1),
  "load_avg": {"before_1m": float("$load_before"), "after_1m": os.getloadavg()[0]},
  "machine": {"cores": os.cpu_count(), "cpu": "", "system": platform.platform()},
  "versions": {"python": platform.python_version()}, "git": {"commit": "$commit", "dirty": False}}
json.dump(rec, open(sys.argv[1], "w"), indent=2); open(sys.argv[1], "a").write("\n")
print(json.dumps(rec["result"]))
PY
