#!/usr/bin/env bash
# Install what the browser tests need on a fresh Debian machine: Chromium (driven by
# Playwright, which cannot download its own browser here) and npm (fills the Solara asset
# cache). Idempotent: installs only what is missing, and runs apt-get update at most once.
set -euo pipefail

missing=()
# fonts-liberation: chromium only recommends it; text needs some font
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_browser: chromium and npm already present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install_browser: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
chromium --version 2>/dev/null | head -n 1 || true
