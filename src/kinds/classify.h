/*
 * classify.h - what kind of kernel object a descriptor refers to, decided
 * in one place.  The agent (src/res/files.c, its own descriptors) and the
 * coordinator (src/kinds/engine.c, every member's descriptors through
 * /proc) both ask co_fd_classify(), so that what the agent lets through as
 * "captured for the group" is exactly what the coordinator captures.
 * Compiled into the agent, the restorer and the CLI: no libc.
 */
#ifndef COHORT_CLASSIFY_H
#define COHORT_CLASSIFY_H

#include <stdint.h>
#include "image.h"

/* What the caller knows of a descriptor: fstat/stat and the /proc fd link. */
struct co_fdstat {
	uint32_t mode;		/* st_mode */
	uint64_t nlink;		/* st_nlink */
	const char *link;	/* readlink of /proc/PID/fd/N: "pipe:[12]", "anon_inode:[eventfd]", a path */
	int domain;		/* sockets: SO_DOMAIN (AF_UNIX is 1); -1 unknown */
	uint64_t rdev;		/* st_rdev: which character device (a pty master or slave is one) */
};

/* The kind (enum co_obj_kind, image.h) of a descriptor; CO_OBJ_OTHER when cohort has no name for it. */
uint32_t co_fd_classify(const struct co_fdstat *s);

/*
 * 1 when link names a file under a process's /proc directory
 * (/proc/PID/..., self, thread-self, task/TID) whose text the kernel makes
 * when it is read and which a checkpoint changes (maps, smaps, status:
 * the agent's memory and threads are in them, the restorer's are not):
 * one read part-way at the pause would go on in other text after the
 * restart.  The caller checks that the file is on procfs.
 */
int co_proc_text(const char *link);

/*
 * 1 when path is under /proc or /sys (where the kernel mounts procfs,
 * sysfs and what lives in it: cgroups, debugfs, tracefs, securityfs, bpf,
 * efivarfs): files the kernel makes, whose size and mtime say nothing of
 * what they hold (a process's /proc files are new at each restart, sysfs's
 * at each boot).  Their stamps (struct co_fstamp) are not recorded.
 */
int co_path_kernel_made(const char *path);

/*
 * A regular file the descriptor shows as "PATH (deleted)" while it still
 * has links (st_nlink > 0): the other name of inode (dev, ino), looked
 * for in PATH's directory and below, then in each directory above it and
 * below that, on the same filesystem, up to 20,000 entries and 6 levels
 * down (or shown itself, a live name that ends so).  0 with the name in
 * out, -1 not found.  No libc.
 */
int co_find_link(const char *shown, uint64_t dev, uint64_t ino, char *out, size_t n);

/* Kinds whose objects the coordinator captures once for the whole group (shared.img). */
int co_obj_group_wide(uint32_t kind);

/* "pipe", "eventfd", "unix socket", ...: the kind's name in messages and in `cohort inspect`. */
const char *co_obj_name(uint32_t kind);

#endif
