#!/usr/bin/env bash
# Render a driftwatch HTML report in headless Chromium and save a PNG screenshot.
#
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTHxHEIGHT]
#
# Default window 1280x2400 (the top of the report: header, OOD rate, CUSUM, histograms).
# Needs Debian's chromium:  apt-get install -y --no-install-recommends chromium fonts-dejavu-core
# The flags keep Chromium off the network and away from the user's profile: the
# report is self-contained, so nothing needs fetching.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
    exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1280x2400}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z "$chromium" ]]; then
    echo "error: chromium not found (apt-get install -y --no-install-recommends chromium fonts-dejavu-core)" >&2
    exit 1
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" \
    --window-size="${size/x/,}" --screenshot="$out" "file://$report" 2>/dev/null
test -s "$out" || { echo "error: chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
