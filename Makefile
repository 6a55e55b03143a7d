# cohort - transparent checkpoint/restart for Linux application groups.
#   make          build build/cohort, build/libcohort.so, build/cohort-restore
#   make check    build and run every test (ends with "N passed, N failed")
#   make demo     checkpoint and restart the bundled example
#   make asan     the CLI built with AddressSanitizer/UBSan, as build/asan/cohort
#   make deps     install the packages the build and the tests need (as root;
#                 otherwise it names them); `check` and `demo` run it first
#   make install  PREFIX=/usr/local DESTDIR=: the command, the agent and the
#                 restorer, the man page and the bash completion; make uninstall

CC ?= gcc
B := build
WARN := -Wall -Wextra
BASE := -std=gnu11 -O2 -g $(WARN) -Isrc/common -Isrc/res -Isrc -MMD -MP

COMMON := src/common/util.c src/common/boost.c src/common/xxh64.c src/common/image.c src/common/procfs.c src/common/helper.c src/common/clone.S \
	src/common/procfs_maps.c src/common/procfs_fdinfo.c src/common/procfs_mount.c \
	src/kinds/classify.c src/kinds/plan.c
RES := src/res/mem.c src/res/pages.c src/res/threads.c src/res/timers.c src/res/files.c src/res/proc.c src/res/attrs.c src/res/cgroup.c src/res/pidfd.c \
	src/res/seccomp.c src/res/semundo.c src/res/aio.c
AGENT := src/agent/agent.c src/agent/quiesce.c src/agent/wrap.c src/agent/wrap_signal.c src/agent/wrap_sock.c src/agent/wrap_exec.c src/agent/dump.c src/agent/park.c src/agent/cpuclock.c src/agent/ctx.S \
	src/agent/manager.c src/agent/snapshot.c \
	src/agent/semundo.c src/agent/aio.c src/agent/root.c src/agent/mirror.c src/agent/inotify.c \
	src/agent/dirty.c src/agent/dirty_method.c src/agent/dirty_wp.c src/agent/dirty_thp.c src/agent/dirty_lean.c src/agent/dirty_hash.c \
	src/agent/accept.c src/agent/dnotify.c
RESTORER := src/restore/restorer.c src/restore/entry.S src/restore/lazy.c
# the kernel objects a group shares: one engine, one file per kind (src/kinds/kinds.h)
KINDS := src/kinds/engine.c src/kinds/records.c src/kinds/pipe.c src/kinds/file.c src/kinds/shm.c \
	src/kinds/eventfd.c src/kinds/signalfd.c src/kinds/timerfd.c src/kinds/epoll.c src/kinds/unix.c \
	src/kinds/unix_restore.c src/kinds/unix_queue.c src/kinds/unix_name.c src/kinds/inotify.c src/kinds/sysv.c src/kinds/pty.c \
	src/kinds/unix_backlog.c src/kinds/unix_opts.c src/kinds/fanotify.c
COORD := $(addprefix src/cli/coord/,setup.c conn.c barrier.c progress.c jobs.c checkpoint.c ending.c status.c loop.c run.c restore.c lazy.c hold.c hold_locks.c refuse.c)
CLI := src/cli/main.c src/cli/ctl.c src/cli/json.c $(COORD) src/cli/nsinit.c src/cli/store.c src/cli/inspect.c \
	src/cli/merge.c src/cli/precopy.c src/cli/zimage.c src/cli/progress.c src/cli/tty.c src/cli/park.c src/cli/seccomp.c \
	src/cli/merge_pages.c src/cli/merge_dir.c \
	src/cli/wire.c src/cli/migrate.c src/cli/receive.c src/agent/dirty_method.c $(KINDS) \
	src/cli/filler.c src/cli/filler_index.c src/cli/chain.c \
	src/cli/pindex.c \
	src/cli/wire_crypt.c \
	src/cli/postcopy.c src/cli/postcopy_target.c src/cli/behind.c

# The agent lives in other people's programs: hidden symbols, no stack
# protector (its handler runs on any thread), no unexpected dependencies.
AGENT_FLAGS := $(BASE) -fPIC -fvisibility=hidden -fno-stack-protector
# The restorer runs without libc at a fixed address far from programs.
RESTORER_FLAGS := $(BASE) -DCOHORT_RESTORER -fPIE -ffreestanding -fno-stack-protector \
	-fno-tree-loop-distribute-patterns -fno-asynchronous-unwind-tables -fno-jump-tables
RESTORER_LD := -nostdlib -static -no-pie -Wl,-Ttext-segment=0x1f0000000000 -Wl,--gc-sections \
	-Wl,-z,noexecstack -Wl,--build-id=none
VERSION := 0.7.0
CLI_FLAGS := $(BASE) -Wno-format-truncation -DCOHORT_VERSION='"$(VERSION)"' -I$(B)/gen

obj = $(patsubst src/%,$(B)/$(1)/%.o,$(2))

AGENT_OBJ := $(call obj,agent,$(AGENT) $(COMMON) $(RES))
RESTORER_OBJ := $(call obj,restorer,$(RESTORER) $(COMMON) $(RES))
CLI_OBJ := $(call obj,cli,$(CLI) $(COMMON))

TEST_PROGS := $(patsubst tests/progs/%.c,$(B)/tests/%,$(wildcard tests/progs/*.c))
BENCH_PROGS := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))

all: $(B)/cohort $(B)/libcohort.so $(B)/cohort-restore

$(B)/agent/%.o: src/%
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_FLAGS) -c $< -o $@
$(B)/restorer/%.o: src/%
	@mkdir -p $(dir $@)
	$(CC) $(RESTORER_FLAGS) -c $< -o $@
$(B)/cli/%.o: src/%
	@mkdir -p $(dir $@)
	$(CC) $(CLI_FLAGS) -c $< -o $@

# The system calls the agent makes in a program's process, from its source
# (src/cli/seccomp.c checks a program's seccomp filters against them): the
# agent's files but its wrappers of the program's own calls (wrap.c, and
# aio.c, whose aio calls are the program's; it makes nanosleep besides;
# accept.c, which makes its calls in the program's accept, never in a
# checkpoint). Those of root.c, made only in a chroot, are a table of their own.
AGENT_SYSCALLS := $(B)/gen/agent_syscalls.h $(B)/gen/agent_root_syscalls.h
$(B)/gen/agent_syscalls.h: scripts/agent-syscalls.sh src/common/sys.h \
		$(filter-out src/agent/wrap.c src/agent/aio.c src/agent/root.c src/agent/accept.c,$(filter %.c,$(AGENT) $(COMMON) $(RES)))
	@mkdir -p $(dir $@)
	sh $^ > $@.tmp && mv $@.tmp $@
$(B)/gen/agent_root_syscalls.h: scripts/agent-syscalls.sh src/common/sys.h src/agent/root.c
	@mkdir -p $(dir $@)
	sh $^ > $@.tmp && mv $@.tmp $@
$(B)/cli/cli/seccomp.c.o: $(AGENT_SYSCALLS)

$(B)/libcohort.so: $(AGENT_OBJ)
	$(CC) -shared -o $@ $^ -ldl -lpthread -Wl,-z,noexecstack
$(B)/cohort-restore: $(RESTORER_OBJ)
	$(CC) $(RESTORER_LD) -o $@ $^
# only the CLI links libzstd (--compress) and OpenSSL's libcrypto (migrate and
# receive prove the token with HMAC-SHA256): never the agent nor the restorer
$(B)/cohort: $(CLI_OBJ)
	$(CC) -o $@ $^ -lpthread -lzstd -lcrypto

$(B)/tests/%: tests/progs/%.c $(wildcard tests/progs/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread $(WARN) -o $@ $< -lrt -lm
# the aio test that goes through libaio (libaio-dev: scripts/install-deps.sh)
$(B)/tests/aio_libaio: tests/progs/aio_libaio.c $(wildcard tests/progs/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread $(WARN) -o $@ $< -laio
$(B)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread $(WARN) -o $@ $< -lrt -lm
$(B)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread $(WARN) -o $@ $< -lrt -lm

progs: $(TEST_PROGS) $(BENCH_PROGS) $(EXAMPLES)

# A fresh machine lacks what the build needs (zstd.h, ...): `check` and
# `demo` install it before they build, through a sub-make so that nothing is
# compiled before the headers are there.
deps:
	bash scripts/install-deps.sh

check: deps
	$(MAKE) all progs fuzz
	bash tests/run.sh

demo: deps
	$(MAKE) all $(EXAMPLES)
	bash examples/demo.sh

bench: all progs
	bash bench/run.sh

# the CLI with ASan/UBSan, beside copies of the agent and the restorer (which
# cannot take ASan): COHORT=build/asan/cohort bash tests/run.sh [TEST...]
asan: $(B)/libcohort.so $(B)/cohort-restore $(AGENT_SYSCALLS)
	@mkdir -p $(B)/asan
	$(CC) $(CLI_FLAGS) -fsanitize=address,undefined -fno-omit-frame-pointer -o $(B)/asan/cohort \
		$(CLI) $(COMMON) -lpthread -lzstd -lcrypto
	cp $(B)/libcohort.so $(B)/cohort-restore $(B)/asan/

# The image readers under libFuzzer (tests/fuzz/fuzz_image.c, clang): the CLI
# with its main renamed, ASan and UBSan; tests/cases/fuzz.sh runs it briefly.
FUZZ_CC ?= clang
fuzz: $(B)/fuzz/fuzz_image
$(B)/fuzz/fuzz_image: tests/fuzz/fuzz_image.c $(CLI) $(COMMON) | $(AGENT_SYSCALLS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -O1 -g $(WARN) -Wno-unused-command-line-argument -Isrc/common -Isrc/res -Isrc -I$(B)/gen \
		-Dmain=cohort_cli_main -DCOHORT_VERSION='"$(VERSION)"' -fsanitize=fuzzer,address,undefined \
		-fno-omit-frame-pointer -o $@ $^ -lpthread -lzstd -lcrypto

# Installed as a packaged tool is: the command in bin, the agent and the
# restorer (which the command finds in ../lib/cohort from its own directory),
# the man page and the bash completion.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(DESTDIR)$(PREFIX)/bin
LIBDIR := $(DESTDIR)$(PREFIX)/lib/cohort
MANDIR := $(DESTDIR)$(PREFIX)/share/man/man1
COMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions

install: all
	install -d $(BINDIR) $(LIBDIR) $(MANDIR) $(COMPDIR)
	install -m 755 $(B)/cohort $(BINDIR)/cohort
	install -m 644 $(B)/libcohort.so $(LIBDIR)/libcohort.so
	install -m 755 $(B)/cohort-restore $(LIBDIR)/cohort-restore
	install -m 644 docs/cohort.1 $(MANDIR)/cohort.1
	install -m 644 scripts/cohort.bash $(COMPDIR)/cohort

uninstall:
	rm -f $(BINDIR)/cohort $(LIBDIR)/libcohort.so $(LIBDIR)/cohort-restore $(MANDIR)/cohort.1 $(COMPDIR)/cohort
	-rmdir $(LIBDIR)

clean:
	rm -rf $(B)

.PHONY: all progs deps check demo bench asan fuzz clean install uninstall
-include $(shell find $(B) -name '*.d' 2>/dev/null)
