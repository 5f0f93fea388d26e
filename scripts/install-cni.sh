#!/usr/bin/env bash
# Builds the Romana CNI plugin (NativeAOT, linux-x64) and installs it as DESTDIR/romana, the name a conflist's
# "type": "romana" makes the runtime look for in its CNI_PATH (usually /opt/cni/bin).
# Usage: scripts/install-cni.sh DESTDIR
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: install-cni.sh DESTDIR   (e.g. /opt/cni/bin)" >&2
  exit 2
fi
dest=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Quiet unless it fails: then the build output says why.
dotnet publish "$repo/Romana.Cni" -c Release -r linux-x64 -o "$out/bin" --nologo -v quiet >"$out/publish.log" 2>&1 \
  || { cat "$out/publish.log" >&2; echo "install-cni: dotnet publish failed" >&2; exit 1; }
install -d "$dest"
install -m 0755 "$out/bin/romana-cni" "$dest/romana"
echo "installed $dest/romana ($(stat -c %s "$dest/romana") bytes)"
