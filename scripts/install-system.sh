#!/usr/bin/env bash
# System packages facestage needs on Debian 12: EGL/Mesa for offscreen GL, ffmpeg, espeak-ng
# (Mandarin TTS), Chromium + driver (browser tests), g++/cmake (llama-cpp-python compiles from source for the
# local OpenAI-compatible chat server used by the dialogue tests). Installs only what is missing.
set -euo pipefail
PKGS=(libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libopengl0 libgles2 ffmpeg espeak-ng
      chromium chromium-driver fonts-noto-cjk g++ cmake)
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
