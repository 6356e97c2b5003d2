#!/usr/bin/env bash
# Run HERE (a Debian machine with apt), before sending the repo to a GPU node that lacks bubblewrap:
# unpacks Debian's bubblewrap into .device/bwrap (gitignored; carry ".device" to the node).
# tools/device_selfcheck.sh puts .device/bwrap/usr/bin on PATH when the node has no bwrap.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device
cd .device
rm -rf bwrap bubblewrap_*.deb
apt-get download bubblewrap >/dev/null
dpkg -x bubblewrap_*.deb bwrap
rm -f bubblewrap_*.deb
./bwrap/usr/bin/bwrap --version
