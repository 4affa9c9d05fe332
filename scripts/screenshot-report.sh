#!/bin/sh
# Opens a demo report in headless Chromium and saves a full-page screenshot, so the
# page can be looked at without a desktop:
#   scripts/screenshot-report.sh RUN_DIR/report.html [OUT.png] [WIDTH]
# Needs Debian's `chromium` package (apt-get install -y chromium). The page is
# self-contained, so the browser runs with the network switched off.
set -eu
report=${1:?usage: screenshot-report.sh REPORT.html [OUT.png] [WIDTH]}
out=${2:-${report%.html}.png}
width=${3:-1100}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "screenshot-report: chromium not found (apt-get install -y chromium)" >&2; exit 2; }
[ -f "$report" ] || { echo "screenshot-report: no such file: $report" >&2; exit 2; }
abs=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# Height: generous; the page is white below its end.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --proxy-server=127.0.0.1:9 --proxy-bypass-list='<-loopback>' \
  --window-size="$width,1900" --screenshot="$out" "file://$abs" >/dev/null 2>&1
[ -s "$out" ] || { echo "screenshot-report: no screenshot written" >&2; exit 1; }
echo "$out"
