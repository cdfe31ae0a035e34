#!/usr/bin/env bash
# Downloads Debian trixie's libonnxruntime-dev .deb (ONNX Runtime 1.21 C/C++ API headers) into
# $1 with apt, with the suite's signature checked against the Debian archive keyring.
# Uses private apt state, so it changes nothing on the host.  Exit status != 0 on failure.
set -euo pipefail
out_dir=$1
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
command -v apt-get >/dev/null || { echo "apt-get not found" >&2; exit 1; }
[ -r "$keyring" ] || { echo "$keyring not found" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$work/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
      -o APT::Sandbox::User=root -qq)
apt-get "${opts[@]}" update
mkdir -p "$out_dir"
cd "$out_dir"
apt-get "${opts[@]}" download libonnxruntime-dev
ls "$out_dir"/libonnxruntime-dev_*.deb
