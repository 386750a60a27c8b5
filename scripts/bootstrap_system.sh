#!/usr/bin/env bash
# Install the few Debian packages the project needs when they are missing:
# iproute2 (loopback in the test network namespace) and Mesa's EGL (offscreen MuJoCo).
set -euo pipefail
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || missing+=(libegl1)
ls /usr/share/glvnd/egl_vendor.d/*mesa* >/dev/null 2>&1 || missing+=(libegl-mesa0 libgl1-mesa-dri)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "[bootstrap] installing missing system packages: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "[bootstrap] need root to install ${missing[*]}; install them and re-run" >&2
        exit 1
    }
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
