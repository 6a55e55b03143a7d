#!/usr/bin/env bash
# Installs what cohort needs to build and test on Debian 12: a C toolchain,
# make, libc's static archive (for the "static binaries are refused" test),
# libzstd's headers (the CLI compresses images with --compress) and python3
# (one test program is a threaded Python script).
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -e /usr/include/zstd.h ] || need+=(libzstd-dev)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need ${need[*]} (run as root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
