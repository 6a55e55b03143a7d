/*
 * co_clone3_thread(args, size, fn, arg): clone3 a thread that runs fn(arg)
 * on the stack given in args and then exits.  Returns the tid (or -errno)
 * in the caller.  Used by the restorer for the program's threads and by
 * both the agent and the restorer for their short-lived page-stream helper.
 */
	.text
	.globl	co_clone3_thread
	.hidden	co_clone3_thread
	.type	co_clone3_thread, @function
co_clone3_thread:
	movq	%rdx, %r8
	movq	%rcx, %r9
	movl	$435, %eax
	syscall
	testq	%rax, %rax
	jnz	1f
	xorl	%ebp, %ebp
	movq	%r9, %rdi
	call	*%r8
	movl	$60, %eax	/* exit this thread only */
	xorl	%edi, %edi
	syscall
	hlt
1:	ret
	.size	co_clone3_thread, .-co_clone3_thread
	.section .note.GNU-stack,"",@progbits
