/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The ia32 entry (--compat-syscalls): calls made through int $0x80 or by
 * 32-bit programs, which the per-syscall tracepoints never see.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_COMPAT_BPF_H
#define CREDTRAIL_COMPAT_BPF_H

/* One raw hook pair on every syscall, returning at once for 64-bit calls.
 * Numbers from arch/x86/entry/syscalls/syscall_32.tbl. */

static __always_inline bool ia32_call(long nr, struct ct_call *c)
{
	switch (nr) {
	case 213: c->sys = CT_SYS_SETUID; c->nargs = 1; break;    /* setuid32 */
	case 214: c->sys = CT_SYS_SETGID; c->nargs = 1; break;    /* setgid32 */
	case 215: c->sys = CT_SYS_SETFSUID; c->nargs = 1; break;  /* setfsuid32 */
	case 216: c->sys = CT_SYS_SETFSGID; c->nargs = 1; break;  /* setfsgid32 */
	case 203: c->sys = CT_SYS_SETREUID; c->nargs = 2; break;  /* setreuid32 */
	case 204: c->sys = CT_SYS_SETREGID; c->nargs = 2; break;  /* setregid32 */
	case 208: c->sys = CT_SYS_SETRESUID; c->nargs = 3; break; /* setresuid32 */
	case 210: c->sys = CT_SYS_SETRESGID; c->nargs = 3; break; /* setresgid32 */
	case 206: c->sys = CT_SYS_SETGROUPS; c->nargs = 2; break; /* setgroups32 */
	case 23: c->sys = CT_SYS_SETUID; c->nargs = 1; c->uid16 = true; break;
	case 46: c->sys = CT_SYS_SETGID; c->nargs = 1; c->uid16 = true; break;
	case 138: c->sys = CT_SYS_SETFSUID; c->nargs = 1; c->uid16 = true; break;
	case 139: c->sys = CT_SYS_SETFSGID; c->nargs = 1; c->uid16 = true; break;
	case 70: c->sys = CT_SYS_SETREUID; c->nargs = 2; c->uid16 = true; break;
	case 71: c->sys = CT_SYS_SETREGID; c->nargs = 2; c->uid16 = true; break;
	case 164: c->sys = CT_SYS_SETRESUID; c->nargs = 3; c->uid16 = true; break;
	case 170: c->sys = CT_SYS_SETRESGID; c->nargs = 3; c->uid16 = true; break;
	case 81: c->sys = CT_SYS_SETGROUPS; c->nargs = 2; c->uid16 = true; break;
	case 185: c->sys = CT_SYS_CAPSET; c->nargs = 2; break;
	case 172: c->sys = CT_SYS_PRCTL; break;
	case 310: c->sys = CT_SYS_UNSHARE; break;
	case 346: c->sys = CT_SYS_SETNS; break;
	case 427: c->sys = CT_SYS_IO_URING_REGISTER; break;
	default:
		return false;
	}
	return true;
}

static __always_inline bool in_ia32_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(compat_enter, struct pt_regs *regs, long nr)
{
	struct ct_call c = { .abi = CT_ABI_IA32 };

	if (!in_ia32_syscall() || !ia32_call(nr, &c))
		return 0;
	/* The ia32 argument registers: ebx, ecx, edx, esi. */
	c.raw[0] = (__u32)regs->bx;
	c.raw[1] = (__u32)regs->cx;
	c.raw[2] = (__u32)regs->dx;
	c.raw[3] = (__u32)regs->si;
	filter_call(&c);
	return c.sys ? enter_call(&c) : 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(compat_exit, struct pt_regs *regs, long ret)
{
	struct ct_call c = {};

	if (!in_ia32_syscall() || !ia32_call(regs->orig_ax, &c))
		return 0;
	return exit_call(ret, true);
}

#endif /* CREDTRAIL_COMPAT_BPF_H */
