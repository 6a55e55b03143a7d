/*
 * Entry points of the restorer, which runs without libc.
 */
	.text
/* _start: the kernel's initial stack holds argc, argv, envp. */
	.globl	_start
	.type	_start, @function
_start:
	xorl	%ebp, %ebp
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	co_restorer_main
	hlt

/* co_switch_stack(new_sp, fn, arg): continue in fn(arg) on another stack. */
	.globl	co_switch_stack
	.type	co_switch_stack, @function
co_switch_stack:
	movq	%rdi, %rsp
	xorl	%ebp, %ebp
	movq	%rdx, %rdi
	call	*%rsi
	hlt

/*
 * co_ctx_jump(ctx): load the registers co_ctx_save() recorded and return 1
 * from that call, in the thread that now runs this.
 */
	.globl	co_ctx_jump
	.type	co_ctx_jump, @function
co_ctx_jump:
	ldmxcsr	64(%rdi)
	fldcw	68(%rdi)
	movq	0(%rdi), %rbx
	movq	8(%rdi), %rbp
	movq	16(%rdi), %r12
	movq	24(%rdi), %r13
	movq	32(%rdi), %r14
	movq	40(%rdi), %r15
	movq	48(%rdi), %rsp
	movl	$1, %eax
	jmpq	*56(%rdi)

	.section .note.GNU-stack,"",@progbits
