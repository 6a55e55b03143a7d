/*
 * sys.h - raw Linux system calls for x86-64.
 *
 * The agent's checkpoint path and the restorer cannot rely on libc: the
 * agent runs while other threads may hold libc's locks, and the restorer
 * has no libc at all.  Every call returns the kernel's raw result: a
 * negative errno on failure, never touching the thread's errno.
 */
#ifndef COHORT_SYS_H
#define COHORT_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

/* open(2) flags the restorer's headers (no _GNU_SOURCE) leave out */
#define CO_O_NOATIME 01000000
#define CO_O_PATH 010000000
/* fcntl(2) commands likewise */
#define CO_F_SETSIG 10
#define CO_F_GETSIG 11
#define CO_F_NOTIFY 1026
#define CO_F_SETOWN_EX 15
#define CO_F_GETOWN_EX 16

#ifndef MREMAP_MAYMOVE
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#endif

static inline long co_sys0(long n)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n) : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys1(long n, long a)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys2(long n, long a, long b)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b)
			 : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys4(long n, long a, long b, long c, long d)
{
	long r;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys5(long n, long a, long b, long c, long d, long e)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return r;
}
static inline long co_sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

#define CO_L(x) ((long)(x))

static inline long co_read(int fd, void *b, size_t n) { return co_sys3(SYS_read, fd, CO_L(b), n); }
static inline long co_write(int fd, const void *b, size_t n) { return co_sys3(SYS_write, fd, CO_L(b), n); }
static inline long co_pread(int fd, void *b, size_t n, long off) { return co_sys4(SYS_pread64, fd, CO_L(b), n, off); }
static inline long co_openat(int dfd, const char *p, int fl, int mode) { return co_sys4(SYS_openat, dfd, CO_L(p), fl, mode); }
static inline long co_open(const char *p, int fl, int mode) { return co_openat(-100, p, fl, mode); }
static inline long co_close(int fd) { return co_sys1(SYS_close, fd); }
static inline long co_lseek(int fd, long off, int wh) { return co_sys3(SYS_lseek, fd, off, wh); }
static inline long co_dup2(int a, int b) { return co_sys3(SYS_dup3, a, b, 0); }
static inline long co_fcntl(int fd, int cmd, long arg) { return co_sys3(SYS_fcntl, fd, cmd, arg); }
static inline long co_mmap(void *a, size_t l, int p, int f, int fd, long off) { return co_sys6(SYS_mmap, CO_L(a), l, p, f, fd, off); }
static inline long co_munmap(void *a, size_t l) { return co_sys2(SYS_munmap, CO_L(a), l); }
static inline long co_mprotect(void *a, size_t l, int p) { return co_sys3(SYS_mprotect, CO_L(a), l, p); }
static inline long co_mremap(void *o, size_t ol, size_t nl, int f, void *n) { return co_sys5(SYS_mremap, CO_L(o), ol, nl, f, CO_L(n)); }
static inline long co_getpid(void) { return co_sys0(SYS_getpid); }
static inline long co_gettid(void) { return co_sys0(SYS_gettid); }
static inline long co_getppid(void) { return co_sys0(SYS_getppid); }
static inline long co_tgkill(int tg, int t, int s) { return co_sys3(SYS_tgkill, tg, t, s); }
static inline long co_futex(int *u, int op, int v, const void *ts) { return co_sys6(SYS_futex, CO_L(u), op, v, CO_L(ts), 0, 0); }
static inline long co_prctl(int o, long a, long b, long c, long d) { return co_sys5(SYS_prctl, o, a, b, c, d); }
static inline long co_arch_prctl(int c, long a) { return co_sys2(SYS_arch_prctl, c, a); }
static inline long co_exit(int c) { return co_sys1(SYS_exit, c); }
static inline long co_exit_group(int c) { return co_sys1(SYS_exit_group, c); }
static inline long co_fstat(int fd, void *st) { return co_sys2(SYS_fstat, fd, CO_L(st)); }
static inline long co_readlink(const char *p, char *b, size_t n) { return co_sys4(SYS_readlinkat, -100, CO_L(p), CO_L(b), n); }
static inline long co_unlink(const char *p) { return co_sys3(SYS_unlinkat, -100, CO_L(p), 0); }
static inline long co_chdir(const char *p) { return co_sys1(SYS_chdir, CO_L(p)); }
static inline long co_umask(int m) { return co_sys1(SYS_umask, m); }
static inline long co_prlimit(int pid, int r, const void *n, void *o) { return co_sys4(SYS_prlimit64, pid, r, CO_L(n), CO_L(o)); }
static inline long co_sigaction(int s, const void *a, void *o) { return co_sys4(SYS_rt_sigaction, s, CO_L(a), CO_L(o), 8); }
static inline long co_sigprocmask(int h, const void *s, void *o) { return co_sys4(SYS_rt_sigprocmask, h, CO_L(s), CO_L(o), 8); }
static inline long co_sigaltstack(const void *s, void *o) { return co_sys2(SYS_sigaltstack, CO_L(s), CO_L(o)); }
static inline long co_getdents(int fd, void *b, size_t n) { return co_sys3(SYS_getdents64, fd, CO_L(b), n); }
static inline long co_kill(int p, int s) { return co_sys2(SYS_kill, p, s); }
static inline long co_nanosleep(const void *req) { return co_sys2(SYS_nanosleep, CO_L(req), 0); }
static inline long co_clock_gettime(int c, void *ts) { return co_sys2(SYS_clock_gettime, c, CO_L(ts)); }
static inline long co_ftruncate(int fd, long l) { return co_sys2(SYS_ftruncate, fd, l); }
static inline long co_mincore(void *a, size_t l, unsigned char *v) { return co_sys3(SYS_mincore, CO_L(a), l, CO_L(v)); }
static inline long co_kcmp(int p1, int p2, int t, long a, long b) { return co_sys5(SYS_kcmp, p1, p2, t, a, b); }

/*
 * The calling thread's capabilities (capget/capset, version 3: capability
 * c is bit CO_CAP_MASK(c) of word CO_CAP_WORD(c) of each set).  The one
 * place they are read and written, by the CLI, init and the restorer.
 */
struct co_capdata {
	uint32_t effective, permitted, inheritable;
};
#define CO_CAP_WORD(c) ((c) / 32)
#define CO_CAP_MASK(c) (1u << ((c) % 32))
struct co_caphdr {
	uint32_t version;
	int pid;
};
static inline long co_capget(struct co_capdata d[2])
{
	struct co_caphdr h = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	return co_sys2(SYS_capget, CO_L(&h), CO_L(d));
}
static inline long co_capset(const struct co_capdata d[2])
{
	struct co_caphdr h = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	return co_sys2(SYS_capset, CO_L(&h), CO_L(d));
}

/* The kernel's struct sigaction for rt_sigaction (not glibc's). */
struct co_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

struct co_timespec {
	long sec, nsec;
};

#endif
