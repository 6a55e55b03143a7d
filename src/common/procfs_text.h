/*
 * procfs_text.h - the text helpers the procfs*.c files share, and no other
 * file: /proc is parsed only there (procfs.h).
 */
#ifndef COHORT_PROCFS_TEXT_H
#define COHORT_PROCFS_TEXT_H

/* The value of the "Key:" line of a status-style text, past its blanks; NULL when absent. */
const char *co_status_value(const char *buf, const char *key);
/* The next space-separated word at p: its start; *end past it. */
const char *co_word(const char *p, const char **end);

#endif
