#!/usr/bin/env bash
# Debian 12 packages facestage needs, in two groups; installs only what is missing.
#   run:  Mesa EGL/GL for offscreen rendering (llvmpipe without a GPU), ffmpeg (keeps audio when effects
#         process a video), Noto CJK (Mandarin captions in rendered talk videos), openssl (checks the Kokoro
#         voice tarball), Node.js + npm when the machine has none (`npm ci` of the pages' JS, `npm pack` of
#         the voices), redis-server (shared state for `facestage serve --replicas N` when no Redis URL is given).
#   test: Chromium + driver (the browser tests), g++/cmake (llama-cpp-python compiles from source for the
#         local OpenAI-compatible chat server the dialogue tests use), assimp-testmodels (Khronos glTF sample
#         models with skins and morphs for the import tests).
# Usage: install-system.sh run|test   (test includes run)
set -euo pipefail
GROUP="${1:-run}"
PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0 libgles2 ffmpeg fonts-noto-cjk openssl redis-server)
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
if [ "$GROUP" = "test" ]; then
  PKGS+=(chromium chromium-driver g++ cmake assimp-testmodels)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
