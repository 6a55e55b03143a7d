/*
 * wrap_exec.c - the agent stays in every program the group starts: exec,
 * posix_spawn and clone keep LD_PRELOAD and the group's socket and signal
 * in the new program's environment (whatever environment the program
 * passes), and an exec is made with the checkpoint signal held off, so
 * that a checkpoint never meets a process half-way through one.
 * (Split from wrap.c, which hides the checkpoint's effects on calls.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "agent.h"
#include "res.h"
#include "sys.h"

/* ---- keeping the agent in every program the group execs ---- */


static char env_preload[4200], env_sock[300], env_sig[32], env_undo[CO_SEMUNDO_ENV_MAX], env_dn[CO_DNOTIFY_ENV_MAX];
#define ENV_EXTRA 6 /* with_agent's entries at most, and the NULL */

/* Remember what the group's processes must carry across exec. */
void co_wrap_env_init(void)
{
	const char *p = getenv("LD_PRELOAD"), *s = getenv("COHORT_SOCK"), *g = getenv("COHORT_SIG");
	if (p)
		snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", p);
	if (s)
		snprintf(env_sock, sizeof(env_sock), "COHORT_SOCK=%s", s);
	if (g)
		snprintf(env_sig, sizeof(env_sig), "COHORT_SIG=%s", g);
}

static int env_is(const char *entry, const char *name)
{
	size_t kl = strlen(name);
	return strncmp(entry, name, kl) == 0 && entry[kl] == '=';
}

static int env_has(char *const env[], const char *entry)
{
	size_t kl = strchr(entry, '=') - entry + 1;
	for (; env && *env; env++)
		if (strncmp(*env, entry, kl) == 0)
			return 1;
	return 0;
}

static size_t env_count(char *const env[])
{
	size_t n = 0;
	while (env && env[n])
		n++;
	return n;
}

/*
 * out (n + ENV_EXTRA slots) gets env plus our variables where env lacks
 * them (an emptied environment, or one rebuilt by the program).  The
 * socket and signal always come from the agent, not from env: after a
 * restart the environment in memory still names the old coordinator's
 * socket.  An exec of this process (same) carries its SEM_UNDO
 * adjustments (semundo.c) and dnotify watches (dnotify.c), a new process
 * none.  No malloc: this also runs in vfork children.
 */
static char **with_agent(char *const env[], char **out, int same)
{
	size_t n = 0;
	int ours = co_agent.active || env_preload[0];
	if (co_agent.active) {
		co_fmt(env_sock, sizeof(env_sock), "COHORT_SOCK=%s", co_agent.sock_path);
		co_fmt(env_sig, sizeof(env_sig), "COHORT_SIG=%d", co_agent.sig);
	}
	for (; env && *env; env++)
		if (!ours || !(env_is(*env, "COHORT_SOCK") || env_is(*env, "COHORT_SIG") || env_is(*env, "COHORT_SEMUNDO") ||
			       env_is(*env, "COHORT_DNOTIFY")))
			out[n++] = *env;
	if (ours) {
		if (env_preload[0] && !env_has(env, env_preload))
			out[n++] = env_preload;
		if (env_sock[0])
			out[n++] = env_sock;
		if (env_sig[0])
			out[n++] = env_sig;
		if (same && co_semundo_env(env_undo, sizeof(env_undo)))
			out[n++] = env_undo;
		if (same && co_dnotify_env(env_dn, sizeof(env_dn)))
			out[n++] = env_dn;
	}
	out[n] = NULL;
	return out;
}

/*
 * The checkpoint signal must not arrive while a thread is inside execve:
 * the new program starts with default handlers but keeps pending signals,
 * and the real-time default kills it.  So it is blocked across the call
 * (a signal mask survives exec) and the new image's agent unblocks it once
 * its handler is in place; a failed exec gets its mask back and takes the
 * signal then.  The mask is per thread, so this is right in vfork children.
 */
static uint64_t exec_guard(void)
{
	uint64_t set = 0, old = 0;
	int sig = co_wrap_sig();
	if (sig > 0) {
		set = 1ULL << (sig - 1);
		co_sigprocmask(SIG_BLOCK, &set, &old);
	}
	return old;
}

static int exec_unguard(int r, uint64_t old)
{
	int e = errno;
	if (co_wrap_sig() > 0)
		co_sigprocmask(SIG_SETMASK, &old, 0);
	errno = e;
	return r;
}

/*
 * clone(3) of a new process (no CLONE_VM) runs no atfork handlers: the
 * child would run without registering, and the next checkpoint would wait
 * for it.  The child first does what a forked child does, then fn.
 */
#include <sched.h>
DECL(int, clone, int (*)(void *), void *, int, void *, ...);

struct clone_call {
	int (*fn)(void *);
	void *arg;
};

static int clone_child(void *p)
{
	struct clone_call c = *(struct clone_call *)p; /* our copy of the parent's memory */
	co_agent_forked();
	/* glibc ends the child as without us (the agent has no thread that could keep it alive) */
	return c.fn(c.arg);
}

EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	/* the optional arguments, passed on as they are: clone looks at them only as flags say */
	pid_t *ptid = va_arg(ap, pid_t *);
	void *tls = va_arg(ap, void *);
	pid_t *ctid = va_arg(ap, pid_t *);
	va_end(ap);
	ENSURE(clone);
	/* no fn or no stack: glibc's EINVAL; a thread (CLONE_VM): nothing to register */
	struct clone_call *c = !fn || !stack || (flags & CLONE_VM) || !co_agent.active ? NULL : malloc(sizeof(*c));
	if (!c) {
		int r = REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);
		if (r > 0 && (flags & CLONE_THREAD))
			co_cpuclock_forget(r); /* a new thread: a gone one's CPU-clock offsets are not its own */
		return r;
	}
	c->fn = fn;
	c->arg = arg;
	co_agent_fork_lock(); /* the child runs co_agent_forked, which sets it free again */
	int r = REAL(clone)(clone_child, stack, flags, c, ptid, tls, ctid);
	int e = errno;
	co_agent_fork_unlock();
	free(c);
	errno = e;
	return r;
}

DECL(int, execve, const char *, char *const[], char *const[]);
DECL(int, execvpe, const char *, char *const[], char *const[]);
DECL(int, fexecve, int, char *const[], char *const[]);
DECL(int, posix_spawn, pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
     char *const[], char *const[]);
DECL(int, posix_spawnp, pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
     char *const[], char *const[]);

extern char **environ;

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	ENSURE(execve);
	char *env[env_count(envp) + ENV_EXTRA];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execve)(path, argv, with_agent(envp, env, 1)), old);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ENSURE(execvpe);
	char *env[env_count(envp) + ENV_EXTRA];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(execvpe)(file, argv, with_agent(envp, env, 1)), old);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	ENSURE(fexecve);
	char *env[env_count(envp) + ENV_EXTRA];
	uint64_t old = exec_guard();
	return exec_unguard(REAL(fexecve)(fd, argv, with_agent(envp, env, 1)), old);
}

/* The execl family: gather the arguments, then the matching execv. */
#define GATHER(first, ap, argv, extra)                                      \
	size_t argc_ = 1;                                                  \
	va_start(ap, first);                                               \
	while (va_arg(ap, char *))                                         \
		argc_++;                                                   \
	va_end(ap);                                                        \
	char *argv[argc_ + 1];                                             \
	va_start(ap, first);                                               \
	argv[0] = (char *)first;                                           \
	for (size_t i_ = 1; i_ <= argc_; i_++)                             \
		argv[i_] = va_arg(ap, char *);                             \
	extra;                                                             \
	va_end(ap)

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	GATHER(arg, ap, argv, (void)0);
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	GATHER(arg, ap, argv, (void)0);
	return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	char **envp;
	GATHER(arg, ap, argv, envp = va_arg(ap, char **));
	return execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ENSURE(posix_spawn);
	char *env[env_count(envp) + ENV_EXTRA];
	return REAL(posix_spawn)(pid, path, fa, attr, argv, with_agent(envp, env, 0));
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ENSURE(posix_spawnp);
	char *env[env_count(envp) + ENV_EXTRA];
	return REAL(posix_spawnp)(pid, file, fa, attr, argv, with_agent(envp, env, 0));
}
