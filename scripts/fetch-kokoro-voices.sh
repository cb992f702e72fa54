#!/bin/sh
# Fetch the Kokoro-82M Mandarin voice style vectors (Apache-2.0) from npm kokoro-js@1.2.1 without
# installing it as a dependency (it would pull transformers.js and onnxruntime-node): `npm pack` the
# tarball into a temp dir, check it against the sha512 integrity recorded here, and extract only the
# voices facestage uses into the data dir. Idempotent: voices already present are kept.
#
# Usage: scripts/fetch-kokoro-voices.sh [DEST]   (default: $FACESTAGE_DATA/kokoro or ~/.cache/facestage/kokoro)
set -eu

PKG="kokoro-js@1.2.1"
# from `npm view kokoro-js@1.2.1 dist.integrity` (recorded 2026-12-01)
INTEGRITY="sha512-oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
VOICES="zf_xiaobei zf_xiaoni zf_xiaoxiao zf_xiaoyi zm_yunjian zm_yunxi zm_yunxia zm_yunyang"
# a voice file is 510 style rows x 256 float32
SIZE=522240

if [ $# -ge 1 ]; then DEST="$1"
elif [ -n "${FACESTAGE_DATA:-}" ]; then DEST="$FACESTAGE_DATA/kokoro"
else DEST="${XDG_CACHE_HOME:-$HOME/.cache}/facestage/kokoro"
fi

missing=""
for v in $VOICES; do
  f="$DEST/$v.bin"
  if [ ! -f "$f" ] || [ "$(wc -c < "$f")" -ne "$SIZE" ]; then missing="$missing $v"; fi
done
if [ -z "$missing" ]; then echo "kokoro voices already in $DEST"; exit 0; fi

command -v npm >/dev/null || { echo "fetch-kokoro-voices: npm is needed (apt-get install npm)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null)
TGZ=$(ls "$TMP"/kokoro-js-*.tgz)
GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
  echo "fetch-kokoro-voices: $PKG tarball integrity mismatch (got $GOT)" >&2; exit 1
fi
mkdir -p "$DEST"
members=""
for v in $missing; do members="$members package/voices/$v.bin"; done
# shellcheck disable=SC2086  # word splitting of the member list is intended
tar -xzf "$TGZ" -C "$TMP" $members
for v in $missing; do
  f="$TMP/package/voices/$v.bin"
  [ "$(wc -c < "$f")" -eq "$SIZE" ] || { echo "fetch-kokoro-voices: $v.bin has an unexpected size" >&2; exit 1; }
  # copy then rename: a concurrent reader never sees half a file
  cp "$f" "$DEST/.$v.bin.tmp" && mv "$DEST/.$v.bin.tmp" "$DEST/$v.bin"
done
echo "kokoro voices ($missing ) installed in $DEST"
