#!/usr/bin/env bash
# Builds the Debian package of hydrowatch with dpkg-deb (see docs/decisions.md for why not
# cargo-deb): the release binary, the sandboxed systemd unit, the sample configuration as
# conffiles under /etc/hydrowatch/, and the Grafana and Mosquitto files under
# /usr/share/hydrowatch/.
#
#   bash deploy/debian/build-deb.sh            # builds the release binary, prints the .deb path
#   HYDROWATCH_BINARY=path bash deploy/debian/build-deb.sh   # package an existing binary
#
# The package lands in target/debian/hydrowatch_<version>_<arch>.deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
binary=${HYDROWATCH_BINARY:-}
if [ -z "$binary" ]; then
    cargo build --release --locked --bin hydrowatch >&2
    binary=target/release/hydrowatch
fi

out=target/debian
stage=$(mktemp -d "${TMPDIR:-/tmp}/hydrowatch-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/hydrowatch_${version}_${arch}

install -D -m 0755 "$binary" "$pkg/usr/bin/hydrowatch"
# The release profile keeps line tables for backtraces; the package does not need them.
strip --strip-debug "$pkg/usr/bin/hydrowatch"
install -D -m 0644 deploy/hydrowatch.service "$pkg/lib/systemd/system/hydrowatch.service"

# The sample configuration, with the journal in the state directory and the catalogue
# beside the configuration file.
install -d -m 0755 "$pkg/etc/hydrowatch"
sed -e 's|^catalog = \["config/stations.toml"\]|catalog = ["/etc/hydrowatch/stations.toml"]|' \
    -e 's|^path = "var/hydrowatch.db"|path = "/var/lib/hydrowatch/hydrowatch.db"|' \
    -e 's|hydrowatch check-config -c config/hydrowatch.toml|hydrowatch check-config -c /etc/hydrowatch/hydrowatch.toml|' \
    config/hydrowatch.toml > "$pkg/etc/hydrowatch/hydrowatch.toml"
grep -q '^path = "/var/lib/hydrowatch/hydrowatch.db"' "$pkg/etc/hydrowatch/hydrowatch.toml" \
    || { echo "build-deb: the sample's journal path was not rewritten" >&2; exit 1; }
grep -q '^catalog = \["/etc/hydrowatch/stations.toml"\]' "$pkg/etc/hydrowatch/hydrowatch.toml" \
    || { echo "build-deb: the sample's catalogue path was not rewritten" >&2; exit 1; }
install -m 0644 config/stations.toml "$pkg/etc/hydrowatch/stations.toml"

install -d "$pkg/usr/share/hydrowatch"
cp -r deploy/grafana "$pkg/usr/share/hydrowatch/grafana"
install -D -m 0644 deploy/mosquitto.conf "$pkg/usr/share/hydrowatch/mosquitto/hydrowatch.conf"
install -D -m 0644 README.md "$pkg/usr/share/doc/hydrowatch/README.md"
install -m 0644 docs/architecture.md docs/notifications.md docs/dashboards.md \
    "$pkg/usr/share/doc/hydrowatch/"
cat > "$pkg/usr/share/doc/hydrowatch/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hydrowatch
License: Apache-2.0

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
 The status board embeds uPlot (MIT), see the board's /assets/uPlot.LICENSE.
COPYRIGHT
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg/usr/share" -type f -exec chmod 0644 {} +
# The configuration holds team tokens: unreadable to others from the moment it is unpacked
# (postinst then gives the hydrowatch group read access).
chmod 0750 "$pkg/etc/hydrowatch"
chmod 0640 "$pkg"/etc/hydrowatch/*

install -d "$pkg/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$installed_kb/" \
    deploy/debian/control > "$pkg/DEBIAN/control"
(cd "$pkg" && find etc -type f | sort | sed 's|^|/|') > "$pkg/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "deploy/debian/$script" "$pkg/DEBIAN/$script"
done
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' \
    | sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"

mkdir -p "$out"
deb="$root/$out/hydrowatch_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
echo "$deb"
