#!/usr/bin/env bash
# The test command: installs what the tests need from Debian (Mosquitto and its clients,
# InfluxDB 1.x, Chromium, a CJK font for screenshots, openssl for test certificates), then
# runs every test, then builds the Debian package and installs, runs and purges it
# (tests/deb.sh). Each test starts its own broker, database and browser on
# free ports in temporary directories.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo build --locked --bins
cargo test --locked --lib --bins --tests

# The Debian package, installed with dpkg on this machine (one release build).
deb=$(bash deploy/debian/build-deb.sh | tail -n1)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo env HYDROWATCH_DEB="$deb" bash tests/deb.sh
