#!/usr/bin/env bash
# The Debian package, installed for real on this machine: build it (release binary, built
# once), install it with dpkg, check the installed configuration as the service user, run
# the installed binary as that user against a Mosquitto of its own until a reading is in
# its journal, verify the unit file, then remove and purge it and check what is left.
#
# Needs root (dpkg -i); tests/run.sh builds the package as the calling user and runs this
# as root or through sudo with HYDROWATCH_DEB=<the .deb>. It refuses to run where hydrowatch
# is already installed: it would replace that installation.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "deb test: FAILED: $*" >&2
    if [ -n "${work:-}" ] && [ -f "$work/hydrowatch.log" ]; then
        echo "---- hydrowatch log tail ----" >&2
        tail -n 40 "$work/hydrowatch.log" >&2
    fi
    exit 1
}
step() { echo "deb test: $*" >&2; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i); run it with sudo"
if dpkg-query -W -f='${Status}' hydrowatch 2>/dev/null | grep -q "installed"; then
    fail "hydrowatch is already installed here; this test would replace it"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hw-deb-test.XXXXXX")
chmod 0755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if dpkg-query -W -f='${Status}' hydrowatch 2>/dev/null | grep -q "installed\|config-files"; then
        dpkg --purge hydrowatch >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    fail "no free port"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 100 ms.
wait_for() {
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
        sleep 0.1
    done
}

if [ -n "${HYDROWATCH_DEB:-}" ]; then
    deb=$HYDROWATCH_DEB
else
    step "building the package"
    deb=$(bash deploy/debian/build-deb.sh | tail -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/hydrowatch ./lib/systemd/system/hydrowatch.service \
    ./etc/hydrowatch/hydrowatch.toml ./etc/hydrowatch/stations.toml \
    ./usr/share/hydrowatch/grafana/dashboards/hydrowatch.json \
    ./usr/share/hydrowatch/grafana/provisioning/datasources/hydrowatch.yaml \
    ./usr/share/hydrowatch/mosquitto/hydrowatch.conf; do
    grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
grep -q -- "-rw-r----- root/root .* ./etc/hydrowatch/hydrowatch.toml$" <<<"$contents" \
    || fail "the configuration must not be world-readable in the package"
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
[ "$conffiles" = $'/etc/hydrowatch/hydrowatch.toml\n/etc/hydrowatch/stations.toml' ] \
    || fail "conffiles: $conffiles"

step "installing $deb"
dpkg -i "$deb" >&2
getent passwd hydrowatch >/dev/null || fail "no hydrowatch user"
[ "$(stat -c '%U:%G %a' /var/lib/hydrowatch)" = "hydrowatch:hydrowatch 750" ] \
    || fail "/var/lib/hydrowatch: $(stat -c '%U:%G %a' /var/lib/hydrowatch)"
[ "$(stat -c '%U:%G %a' /etc/hydrowatch/hydrowatch.toml)" = "root:hydrowatch 640" ] \
    || fail "/etc/hydrowatch/hydrowatch.toml: $(stat -c '%U:%G %a' /etc/hydrowatch/hydrowatch.toml)"
grep -q '^path = "/var/lib/hydrowatch/hydrowatch.db"' /etc/hydrowatch/hydrowatch.toml \
    || fail "the installed journal path is not in /var/lib/hydrowatch"

step "check-config as the service user"
runuser -u hydrowatch -- hydrowatch check-config -c /etc/hydrowatch/hydrowatch.toml >&2 \
    || fail "check-config refused the installed configuration"
# The service user may read its configuration but not change it.
if runuser -u hydrowatch -- sh -c 'echo >> /etc/hydrowatch/hydrowatch.toml' 2>/dev/null; then
    fail "the service user can write its configuration"
fi

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify"
    # Without a running systemd, verify may warn about the environment; the unit's own
    # errors name the file.
    out=$(systemd-analyze verify /lib/systemd/system/hydrowatch.service 2>&1 || true)
    if grep -q "hydrowatch.service:" <<<"$out"; then
        fail "systemd-analyze verify: $out"
    fi
    echo "$out" >&2
    # The sandbox, as systemd rates it (0 = fully sandboxed, 10 = none); 1.5 when written.
    systemd-analyze security --offline=true --threshold=20 /lib/systemd/system/hydrowatch.service \
        >"$work/security.txt" 2>&1 \
        || fail "the unit's exposure is above 2.0: $(tail -n 3 "$work/security.txt")"
    tail -n 1 "$work/security.txt" >&2
fi

step "running the installed binary as the service user against a local Mosquitto"
mqtt_port=$(free_port)
http_port=$(free_port)
cat > "$work/mosquitto.conf" <<CONF
user root
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/mosquitto.log
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
pids+=($!)
wait_for 10 "Mosquitto to listen" bash -c "exec 3<>/dev/tcp/127.0.0.1/$mqtt_port"

# setpriv, not runuser: runuser stays as the parent and answers SIGTERM by killing its child
# after 2 s, which would hide how hydrowatch itself stops. setpriv execs hydrowatch.
(cd /var/lib/hydrowatch && exec setpriv --reuid hydrowatch --regid hydrowatch --init-groups \
    env RUST_LOG=info \
    HYDROWATCH__MQTT__URL="mqtt://127.0.0.1:$mqtt_port" \
    HYDROWATCH__HTTP__LISTEN="127.0.0.1:$http_port" \
    /usr/bin/hydrowatch run -c /etc/hydrowatch/hydrowatch.toml) >"$work/hydrowatch.log" 2>&1 &
hw_pid=$!
pids+=($hw_pid)
ready() { curl -fsS "http://127.0.0.1:$http_port/readyz"; }
wait_for 30 "/readyz" ready
now=$(date +%s)
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t hydro/62304000/data \
    -m "{\"time\": $((now - 60)), \"level_m\": 58.21}"
stored() { curl -fsS "http://127.0.0.1:$http_port/api/v1/stations/62304000" | grep -q '"latest_level_m":58.21'; }
wait_for 30 "the reading in the installed journal" stored
[ "$(stat -c '%U' /var/lib/hydrowatch/hydrowatch.db)" = hydrowatch ] \
    || fail "the journal is not the service user's"
[ "$(ps -o user= -p "$hw_pid")" = hydrowatch ] || fail "hydrowatch does not run as its user"
kill -TERM "$hw_pid"
wait "$hw_pid" || fail "hydrowatch did not stop cleanly on SIGTERM: $(tail -20 "$work/hydrowatch.log")"

step "dpkg -r: the binary goes, configuration and journal stay"
dpkg -r hydrowatch >&2
[ ! -e /usr/bin/hydrowatch ] || fail "/usr/bin/hydrowatch is still there"
[ -f /etc/hydrowatch/hydrowatch.toml ] || fail "remove deleted the configuration"
[ -f /var/lib/hydrowatch/hydrowatch.db ] || fail "remove deleted the journal"

step "dpkg --purge: configuration and journal go, the system user stays"
dpkg --purge hydrowatch >&2
[ ! -e /etc/hydrowatch ] || fail "/etc/hydrowatch survived the purge: $(ls -la /etc/hydrowatch)"
[ ! -e /var/lib/hydrowatch ] || fail "/var/lib/hydrowatch survived the purge"
getent passwd hydrowatch >/dev/null || fail "the purge removed the system user (it is kept by design)"
step "passed"
