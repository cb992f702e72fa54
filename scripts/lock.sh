#!/usr/bin/env bash
# Regenerate the locks (`make lock`): requirements/run.txt (what `make run` installs) and
# requirements/test.txt (run + test extras). test.txt is resolved with run.txt as a constraint, so every
# package they share has the same version in both. pip-tools runs in a throwaway venv of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${LOCK_TOOLS_VENV:-.cache/lock-tools}"
test -x "$TOOLS/bin/pip-compile" || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install -q "pip-tools==7.6.2"; }
COMPILE=("$TOOLS/bin/pip-compile" --quiet --strip-extras --allow-unsafe --no-emit-index-url
         --no-emit-find-links --no-emit-trusted-host --newline LF)
"${COMPILE[@]}" --extra speech --extra dialogue --extra asr --extra security --extra avatar --extra cluster --extra effects -o requirements/run.txt pyproject.toml requirements/bootstrap.in
"${COMPILE[@]}" --extra speech --extra dialogue --extra asr --extra security --extra avatar --extra cluster --extra effects --extra llm --extra pyrender --extra test -c requirements/run.txt -o requirements/test.txt pyproject.toml requirements/bootstrap.in
# torch resolves to this machine's CPU build (2.13.0+cpu); "==2.13.0" matches it and keeps the lock portable.
# facestage itself is installed editable after the lock, not from it.
for f in requirements/run.txt requirements/test.txt; do
  sed -i -E 's/^torch==2\.13\.0\+cpu$/torch==2.13.0/' "$f"
done
echo "locked: $(grep -c '==' requirements/run.txt) packages for running, $(grep -c '==' requirements/test.txt) with tests"
