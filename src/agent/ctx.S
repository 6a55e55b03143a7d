/*
 * co_ctx_save(struct co_ctx *ctx): like setjmp, records the callee-saved
 * registers, the stack pointer and the return address, and returns 0.
 * The restorer later loads them in a new process (co_ctx_jump, restore/entry.S) and
 * "returns" 1 from the same call.  Layout: struct co_ctx in image.h.
 */
	.text
	.globl	co_ctx_save
	.hidden	co_ctx_save
	.type	co_ctx_save, @function
co_ctx_save:
	movq	%rbx, 0(%rdi)
	movq	%rbp, 8(%rdi)
	movq	%r12, 16(%rdi)
	movq	%r13, 24(%rdi)
	movq	%r14, 32(%rdi)
	movq	%r15, 40(%rdi)
	leaq	8(%rsp), %rax
	movq	%rax, 48(%rdi)
	movq	(%rsp), %rax
	movq	%rax, 56(%rdi)
	stmxcsr	64(%rdi)
	fnstcw	68(%rdi)
	xorl	%eax, %eax
	ret
	.size	co_ctx_save, .-co_ctx_save
	.section .note.GNU-stack,"",@progbits

/* Return from the checkpoint handler (installed with SA_RESTORER). */
	.text
	.globl	co_sigreturn
	.hidden	co_sigreturn
	.type	co_sigreturn, @function
co_sigreturn:
	movq	$15, %rax	/* rt_sigreturn */
	syscall
	hlt
	.size	co_sigreturn, .-co_sigreturn
	.section .note.GNU-stack,"",@progbits
