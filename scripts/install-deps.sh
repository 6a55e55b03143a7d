#!/usr/bin/env bash
# Installs what cohort needs to build and test on Debian 12 or Ubuntu (22.04
# and later): a C toolchain, make, libc's static archive (for the "static
# binaries are refused" test), libzstd's headers (the CLI compresses images
# with --compress), OpenSSL's headers (migrate proves its token with an
# HMAC), iproute2 (the migration tests' two hosts), libaio's (one aio test uses it),
# python3 (one test program is a threaded Python script)
# and bash-completion (the completion test sources its helpers); for the
# tests on real programs (tests/cases/real.sh, migrate_real.sh): a JDK, Go, Node.js, rustc,
# numpy for /usr/bin/python3, sqlite3, bash, script(1), flock(1) and tmux; clang and its
# libFuzzer runtime for the fuzz target of the image readers.  Each is checked
# by the file or command it brings, so a toolchain installed some other way
# (Node.js from NodeSource, rustc from rustup on PATH) is left alone.
#
# `make check` and `make demo` run it first; `.ci/run` too. As root it
# installs what is missing with apt-get; as another user it installs nothing
# and names the packages to install, with the command, then fails.
#
#   COHORT_DEPS_DRY_RUN=1  only print the missing packages (one line), exit 0
set -euo pipefail
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd gcc || need+=(gcc)
have_cmd make || need+=(make)
# libc6-dev brings the headers and libc.a; the path is the multiarch one
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -e /usr/include/zstd.h ] || need+=(libzstd-dev)
# OpenSSL's libcrypto: migrate and receive prove the token with HMAC-SHA256 (the CLI only)
[ -e /usr/include/openssl/hmac.h ] || need+=(libssl-dev)
# ip(8): the migration tests make two network namespaces joined by a veth pair
have_cmd ip || need+=(iproute2)
# libaio's headers and library: the aio test that uses it (tests/progs/aio_libaio.c)
[ -e /usr/include/libaio.h ] || need+=(libaio-dev)
[ -x /usr/bin/python3 ] || need+=(python3)
[ -e /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
# the tests on real programs (tests/cases/real.sh, migrate_real.sh)
have_cmd java && have_cmd javac || need+=(default-jdk-headless)
have_cmd go || need+=(golang-go)
have_cmd node || need+=(nodejs)
have_cmd rustc || need+=(rustc)
if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need+=(python3-numpy)
else
	need+=(python3-numpy)
fi
have_cmd sqlite3 || need+=(sqlite3)
# flock(1): a job run under a lock, migrated (tests/cases/migrate_real.sh)
have_cmd flock || need+=(util-linux)
have_cmd bash || need+=(bash)
# script(1): bsdutils on Debian and Ubuntu (util-linux on other systems)
have_cmd script || need+=(bsdutils)
# tmux: a shell inside tmux inside the group (tests/cases/pty.sh)
have_cmd tmux || need+=(tmux)
# the image readers' fuzz target (make fuzz, tests/cases/fuzz.sh): clang with libFuzzer
have_cmd clang || need+=(clang)
if ! have_cmd clang || ! ls "$(clang -print-resource-dir 2>/dev/null)"/lib/linux/libclang_rt.fuzzer-x86_64.a \
	>/dev/null 2>&1; then
	need+=(libclang-rt-dev)
fi

if [ "${COHORT_DEPS_DRY_RUN:-0}" = 1 ]; then
	echo "${need[*]}"
	exit 0
fi
[ ${#need[@]} -eq 0 ] && exit 0
if ! have_cmd apt-get; then
	echo "install-deps: missing ${need[*]}, and this is not a Debian or Ubuntu system (no apt-get):" \
		"install the equivalent packages by hand" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${need[*]}; install them as root with:" \
		"apt-get install ${need[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
