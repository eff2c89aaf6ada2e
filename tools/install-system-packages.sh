#!/usr/bin/env bash
# Install the Debian packages listed in tools/system-packages.txt that are
# missing (`make test` runs this before the tests).
#
# As root it runs apt-get itself; as another user it uses `sudo -n` when sudo
# needs no password.  Otherwise it prints the one command to run and exits 1,
# so the tests never run without what they need.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')

missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

command="apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "The tests need these Debian packages (or your system's equivalent): ${missing[*]}." >&2
    echo "This is not a Debian-based system: install them with your package manager, then run make test again." >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "The tests need these Debian packages, which are not installed: ${missing[*]}." >&2
    echo "Install them (as root), then run make test again:" >&2
    echo "    sudo apt-get update && sudo $command" >&2
    exit 1
fi
echo "Installing Debian packages the tests need: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
