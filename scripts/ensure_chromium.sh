#!/usr/bin/env bash
# The report test opens the HTML report in a real headless browser: Debian's chromium.
# Installs it where it is missing and this user can (root with apt-get); else says so.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then echo "chromium: $(chromium --version 2>/dev/null | head -1)"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium: installing Debian's chromium for the report's browser test"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
else
  echo "warning: chromium is missing and cannot be installed here; the browser test will skip (or fail with CI=true)" >&2
fi
