#!/usr/bin/env bash
# Optional: fetch Debian bullseye's android.jar (API 23, libandroid-23-java) without installing it,
# for the compile check in tests/demos/test_android_compile.py. Needs apt-get and dpkg; takes a few
# seconds. Writes ${1:-~/.cache/lightseg/android-23}/android.jar. Bullseye may move to the
# Debian archive later: set BULLSEYE_MIRROR then.
set -euo pipefail
dest=${1:-$HOME/.cache/lightseg/android-23}
# The Debian mirror this machine's apt already uses (first "URIs:" / "deb" line), unless set.
mirror=${BULLSEYE_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
  awk '/^URIs:/{print $2; exit} /^deb /{print $2; exit}')}
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources; set BULLSEYE_MIRROR" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc" "$work/state/lists/partial" "$work/cache/archives/partial" "$dest"
echo "deb $mirror bullseye main" > "$work/etc/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update
(cd "$work" && apt-get "${opts[@]}" -qq download libandroid-23-java)
dpkg -x "$work"/libandroid-23-java_*.deb "$work/x"
cp "$work/x/usr/lib/android-sdk/platforms/android-23/android.jar" "$dest/android.jar.tmp"
mv "$dest/android.jar.tmp" "$dest/android.jar"
echo "wrote $dest/android.jar"
