#!/usr/bin/env bash
# Debian packages the test suite drives for real: headless Chromium + ChromeDriver (the Airflow UI browser test) and
# docker-compose (validates infra/docker-compose.yaml; no Docker engine needed). Installs only what is missing.
set -euo pipefail
missing=()
command -v chromium > /dev/null || missing+=(chromium)
command -v chromedriver > /dev/null || missing+=(chromium-driver)
command -v docker-compose > /dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -eq 0 ]; then
    echo "==> [system-deps] chromium, chromedriver, docker-compose present"
    exit 0
fi
echo "==> [system-deps] apt-get install ${missing[*]} (first run only, ~1-2 min)"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
echo "==> [system-deps] done"
