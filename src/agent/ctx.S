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

/*
 * long co_syscall_noted(long *res, long nr, const long a[6]): system call
 * nr with arguments a, whose result is also stored in *res by the
 * instruction right after it (co_syscall_noted_done).  For calls whose
 * effect the agent must note (a SEM_UNDO semop: semundo.c; aio calls:
 * aio.c): the checkpoint handler tells from these two whether the kernel
 * has done the call it interrupted (co_noted_result): *res still unset
 * and the thread stopped at co_syscall_noted_done means the kernel
 * returned rax just now.  rbx (callee-saved, kept by the system call)
 * holds res.
 */
	.text
	.globl	co_syscall_noted
	.hidden	co_syscall_noted
	.globl	co_syscall_noted_done
	.hidden	co_syscall_noted_done
	.type	co_syscall_noted, @function
co_syscall_noted:
	pushq	%rbx
	movq	%rdi, %rbx
	movq	%rsi, %rax
	movq	%rdx, %r11
	movq	(%r11), %rdi
	movq	8(%r11), %rsi
	movq	16(%r11), %rdx
	movq	24(%r11), %r10
	movq	32(%r11), %r8
	movq	40(%r11), %r9
	syscall
co_syscall_noted_done:
	movq	%rax, (%rbx)
	popq	%rbx
	ret
	.size	co_syscall_noted, .-co_syscall_noted
	.section .note.GNU-stack,"",@progbits
