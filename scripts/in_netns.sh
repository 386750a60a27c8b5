#!/usr/bin/env bash
# Run a command inside a private network namespace with only loopback up, so DDS
# traffic (ROS 2 discovery and data) can never leave the machine.
# Root uses `unshare -n`; other users get a user namespace (`unshare -rn`).
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if [ "${DF_IN_NETNS:-0}" = "1" ]; then
    exec "$@"
fi
if [ "$(id -u)" = "0" ]; then
    flags=(-n)
else
    flags=(-r -n)
fi
export DF_IN_NETNS=1
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
exec unshare "${flags[@]}" bash -c 'ip link set lo up && exec "$@"' in_netns "$@"
