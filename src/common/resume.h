/*
 * resume.h - what the restorer tells the agent of a restored process.
 * The image records where this struct lives in the agent (co_proc.agent_info);
 * the restorer fills it in just before the threads jump back.
 */
#ifndef COHORT_RESUME_H
#define COHORT_RESUME_H

#include <stdint.h>

/* The restorer is linked here, with its working memory right above. */
#define CO_RESTORER_BASE 0x1f0000000000UL

#define CO_RESUME_MAGIC 0x434f524553554d45ULL
struct co_resume {
	uint64_t magic;
	uint64_t zone, zone_len;   /* the restorer's area, unmapped once every thread left it */
	uint64_t generation;
	char sock[256];            /* control socket of the new coordinator */
};

#endif
