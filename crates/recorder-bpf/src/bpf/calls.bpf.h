/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Credential calls: the x86-64 tracepoints of every credential syscall
 * (enter remembers arguments and credentials, exit emits the event), the
 * in-kernel filter of options that change nothing, children created in a
 * new user namespace, and io_uring requests run under a personality.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_CALLS_BPF_H
#define CREDTRAIL_CALLS_BPF_H

static __always_inline __s64 sext32(unsigned long v)
{
	return (__s64)(__s32)(__u32)v;
}

/* Reads the requested capability masks (v2/v3: two 32-bit halves). */
static __always_inline void read_capset_args(struct ct_event *e, unsigned long hdrp,
					     unsigned long datap)
{
	struct __user_cap_header_struct hdr = {};
	struct __user_cap_data_struct d[2] = {};
	int err;

	err = bpf_probe_read_user(&hdr, sizeof(hdr), (void *)hdrp);
	if (!err) {
		if (hdr.version == LINUX_CAPABILITY_VERSION_1)
			err = bpf_probe_read_user(&d[0], sizeof(d[0]), (void *)datap);
		else
			err = bpf_probe_read_user(d, sizeof(d), (void *)datap);
	}
	if (err) {
		e->flags |= CT_FLAG_ARGS_FAULT;
		return;
	}
	e->args[0] = (__s64)(((__u64)d[1].effective << 32) | d[0].effective);
	e->args[1] = (__s64)(((__u64)d[1].permitted << 32) | d[0].permitted);
	e->args[2] = (__s64)(((__u64)d[1].inheritable << 32) | d[0].inheritable);
}

static __always_inline void read_setgroups_args(struct ct_event *e, unsigned long count,
						unsigned long listp, bool uid16)
{
	int n = (int)count;

	e->args[0] = n;
	if (n <= 0)
		return;
	e->req_ngroups = n;
	if (n > CT_MAX_GROUPS) {
		e->flags |= CT_FLAG_REQ_GROUPS_TRUNC;
		n = CT_MAX_GROUPS;
	}
	/* The requested groups open the event's tail. */
	e->req_kept = n;
	if (!uid16) {
		if (bpf_probe_read_user(e->groups, groups_bytes(n), (void *)listp))
			e->flags |= CT_FLAG_ARGS_FAULT;
		return;
	}
	/* setgroups16: 16-bit gids, widened in place from the top down. */
	__u16 *half = (__u16 *)e->groups;

	if (bpf_probe_read_user(half, groups_bytes(n) / 2, (void *)listp)) {
		e->flags |= CT_FLAG_ARGS_FAULT;
		return;
	}
	for (int i = CT_MAX_GROUPS - 1; i >= 0; i--) {
		__u16 g = i < n ? half[i] : 0;

		e->groups[i] = g == 0xffff ? (__u32)-1 : g;
	}
}

/* One call as its hook saw it, whatever the entry. */
struct ct_call {
	__u32 sys;       /* enum ct_syscall */
	__u32 abi;       /* enum ct_abi */
	bool uid16;      /* ia32 16-bit id arguments */
	bool only_if_userns_changed;
	int nargs;       /* id arguments to take from raw[] */
	unsigned long raw[4];
};

/* An id argument: -1 means "leave unchanged" in both widths. */
static __always_inline __s64 id_arg(unsigned long v, bool uid16)
{
	if (uid16)
		return (__u16)v == 0xffff ? -1 : (__s64)(__u16)v;
	return sext32(v);
}

/*
 * The caller's identity at exit; its pid namespace and the pid in it are
 * read once per thread (two helper reads) and kept with its calls.
 */
static __always_inline void read_call_identity(struct task_struct *task, struct ct_inflight *f,
					       struct ct_event *e)
{
	struct ct_ids ids;

	read_ids_but_ns(task, &ids);
	e->ppid = ids.ppid;
	e->auid = ids.auid;
	e->sessionid = ids.sessionid;
	e->cgroup_id = ids.cgroup_id;
	if (!f->pid_ns_known) {
		read_pid_ns(task, &f->ns_pid, &f->pidns_inum);
		f->pid_ns_known = 1;
	}
	e->ns_pid = f->ns_pid;
	e->pidns_inum = f->pidns_inum;
}

/*
 * The credentials before a call. The check at enter has just confirmed the
 * task's known set, so it is copied from there (no helper read of the
 * groups) unless it is being rewritten; the pointer read again after the
 * copy proves the contents were not.
 */
static __always_inline void old_creds_at_enter(struct task_struct *task, struct ct_known *k,
					       struct ct_event *e)
{
	__u64 cred = (__u64)task->real_cred;

	if (k && k->cred == cred) {
		__builtin_memcpy(&e->old_creds, &k->creds, sizeof(e->old_creds));
		__builtin_memcpy(event_groups(e, e->req_kept), k->groups, sizeof(k->groups));
		barrier();
		if (k->cred == cred) {
			e->old_creds.no_new_privs = (task->atomic_flags >> PFA_NO_NEW_PRIVS) & 1;
			e->old_kept = group_count(&e->old_creds);
			if (e->old_creds.ngroups > CT_MAX_GROUPS)
				e->flags |= CT_FLAG_OLD_GROUPS_TRUNC;
			return;
		}
	}
	event_old_creds(e, task);
}

static __always_inline int enter_call(const struct ct_call *c)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_inflight *f;
	struct ct_known *k;
	struct ct_event *e;

	if (!in_scope(task)) {
		count(CT_CNT_OUT_OF_SCOPE);
		return 0;
	}
	/* Anything that changed before this call is not this call's. */
	k = check(task, CT_CHECK_CALL, false);
	f = bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!f) {
		count(CT_CNT_ENTER_STORE_FAIL);
		return 0;
	}
	e = &f->e;
	/* Up to the credentials, which are written whole, as the tail's
	 * groups are before they are sent. */
	__builtin_memset(e, 0, __builtin_offsetof(struct ct_event, old_creds));
	e->type = CT_REC_EVENT;
	e->syscall = c->sys;
	e->abi = c->abi;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	if (c->uid16)
		e->flags |= CT_FLAG_UID16;

	switch (c->sys) {
	case CT_SYS_CAPSET:
		read_capset_args(e, c->raw[0], c->raw[1]);
		break;
	case CT_SYS_SETGROUPS:
		read_setgroups_args(e, c->raw[0], c->raw[1], c->uid16);
		break;
	case CT_SYS_PRCTL:
	case CT_SYS_UNSHARE:
	case CT_SYS_SETNS:
	case CT_SYS_IO_URING_REGISTER:
		/* Options, flags and file descriptors, not ids: as given. */
		e->args[0] = (__s64)c->raw[0];
		e->args[1] = (__s64)c->raw[1];
		e->args[2] = (__s64)c->raw[2];
		break;
	default:
		/*
		 * uid_t/gid_t arguments: sign-extend so "unchanged" reads -1.
		 * Each syscall tracepoint's context holds only that call's
		 * arguments, and the kernel refuses to attach a program that
		 * reads past them, so the hooks fill only nargs of raw[].
		 */
		e->args[0] = id_arg(c->raw[0], c->uid16);
		if (c->nargs > 1)
			e->args[1] = id_arg(c->raw[1], c->uid16);
		if (c->nargs > 2)
			e->args[2] = id_arg(c->raw[2], c->uid16);
	}

	old_creds_at_enter(task, k, e);
	f->old_group_info = (__u64)task->real_cred->group_info;
	f->only_if_userns_changed = c->only_if_userns_changed;
	f->pending = 1;
	return 0;
}

/*
 * Fills in what the call's exit knows (time, result, identity, the new
 * credentials) and makes them the thread's known credentials: the call is
 * no longer in flight.
 */
static __always_inline void complete_call(struct task_struct *task, struct ct_inflight *f,
					  struct ct_known *k, struct ct_event *e, long ret)
{
	const struct cred *cred = task->real_cred;
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 *groups;

	e->ktime_ns = now;
	e->ret = ret;
	__builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
	read_call_identity(task, f, e);
	e->new_creds.no_new_privs = (task->atomic_flags >> PFA_NO_NEW_PRIVS) & 1;
	if ((__u64)cred->group_info == f->old_group_info) {
		/* group_info is never changed in place: the same list. */
		read_cred_ids(cred, &e->new_creds);
		e->new_creds.ngroups = e->old_creds.ngroups;
		e->flags |= CT_FLAG_NEW_GROUPS_SAME;
		if (e->flags & CT_FLAG_OLD_GROUPS_TRUNC)
			e->flags |= CT_FLAG_NEW_GROUPS_TRUNC;
		groups = event_groups(e, e->req_kept);
	} else {
		event_new_cred_set(e, cred);
		groups = event_groups(e, e->req_kept + e->old_kept);
	}
	if (k)
		know_from(task, k, &e->new_creds, groups, now);
	else
		count(CT_CNT_KNOWN_STORE_FAIL);
	f->pending = 0;
}

/*
 * Emits the call in flight on this thread. `filtered`: the enter hook drops
 * calls that change nothing we record, so an exit without an enter is not
 * a miss worth counting.
 */
static __always_inline int exit_call(long ret, bool filtered)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_inflight *f;
	struct ct_known *k;

	f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!f || !f->pending) {
		if (!filtered && in_scope(task))
			count(CT_CNT_EXIT_NO_ENTER);
		return 0;
	}
	/* The call's result becomes the known credentials before the call
	 * stops being in flight: a check in between must not call it
	 * unexplained. */
	k = bpf_task_storage_get(&known, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (f->only_if_userns_changed &&
	    task->real_cred->user_ns->ns.inum == f->e.old_creds.userns_inum) {
		if (k)
			know(task, k);
		f->pending = 0;
		return 0;
	}
	/* The namespace reaches userspace before the first event in it. */
	note_userns(task->real_cred);
	count(CT_CNT_EXITS);
	/* Completed where it was begun, then copied once into the ring, only
	 * as long as its groups need. */
	complete_call(task, f, k, &f->e, ret);
	emit_event(&f->e);
	/* Any override the call made is reverted by now. */
	check_subjective(task, CT_CHECK_CALL, -1);
	return 0;
}

/* prctl options that change capabilities, securebits or no_new_privs. */
static __always_inline bool prctl_changes_creds(unsigned long option)
{
	return option == PR_CAP_AMBIENT || option == PR_CAPBSET_DROP ||
	       option == PR_SET_SECUREBITS || option == PR_SET_KEEPCAPS ||
	       option == PR_SET_NO_NEW_PRIVS;
}

/* Calls whose enter hook drops some: an exit without an enter is then no miss. */
static __always_inline bool is_filtered(__u32 sys)
{
	return sys == CT_SYS_PRCTL || sys == CT_SYS_UNSHARE || sys == CT_SYS_SETNS ||
	       sys == CT_SYS_IO_URING_REGISTER;
}

/* The call worth an event, or sys 0 when this one changes no credentials.
 * Shared by the x86-64 tracepoints and the ia32 raw hook. */
static __always_inline void filter_call(struct ct_call *c)
{
	switch (c->sys) {
	case CT_SYS_PRCTL:
		/* PR_CAP_AMBIENT_IS_SET only asks. */
		if (!prctl_changes_creds(c->raw[0]) ||
		    (c->raw[0] == PR_CAP_AMBIENT && c->raw[1] == PR_CAP_AMBIENT_IS_SET))
			c->sys = 0;
		break;
	case CT_SYS_UNSHARE:
		if (!(c->raw[0] & CLONE_NEWUSER))
			c->sys = 0;
		break;
	case CT_SYS_SETNS:
		/* nstype 0: whatever namespace the fd is; an event only if it
		 * was a user namespace (the credentials' namespace changed). */
		if (c->raw[1] == 0)
			c->only_if_userns_changed = true;
		else if (!(c->raw[1] & CLONE_NEWUSER))
			c->sys = 0;
		break;
	case CT_SYS_IO_URING_REGISTER:
		if (c->raw[1] != IORING_REGISTER_PERSONALITY &&
		    c->raw[1] != IORING_UNREGISTER_PERSONALITY)
			c->sys = 0;
		/* unregister names the personality in nr_args. */
		c->raw[2] = c->raw[3];
		break;
	}
}

/*
 * enter/exit of a credential call on the x86-64 entry, reading its first n
 * (1..4) arguments: each syscall tracepoint's context holds only that
 * call's arguments, and the kernel refuses to attach a program that reads
 * past them. filter_call drops the options that change no credentials.
 */
#define CT_HOOK(name, sys_, n)                                                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                            \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                \
	{                                                                      \
		struct ct_call c = { .sys = sys_, .nargs = n };                \
		c.raw[0] = ctx->args[0];                                       \
		if (n > 1)                                                     \
			c.raw[1] = ctx->args[1];                               \
		if (n > 2)                                                     \
			c.raw[2] = ctx->args[2];                               \
		if (n > 3)                                                     \
			c.raw[3] = ctx->args[3];                               \
		filter_call(&c);                                               \
		return c.sys ? enter_call(&c) : 0;                             \
	}                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #name)                             \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                  \
	{                                                                      \
		return exit_call(ctx->ret, is_filtered(sys_));                 \
	}

CT_HOOK(setuid, CT_SYS_SETUID, 1)
CT_HOOK(setgid, CT_SYS_SETGID, 1)
CT_HOOK(setfsuid, CT_SYS_SETFSUID, 1)
CT_HOOK(setfsgid, CT_SYS_SETFSGID, 1)
CT_HOOK(setreuid, CT_SYS_SETREUID, 2)
CT_HOOK(setregid, CT_SYS_SETREGID, 2)
CT_HOOK(setresuid, CT_SYS_SETRESUID, 3)
CT_HOOK(setresgid, CT_SYS_SETRESGID, 3)
CT_HOOK(setgroups, CT_SYS_SETGROUPS, 2)
CT_HOOK(capset, CT_SYS_CAPSET, 2)
CT_HOOK(prctl, CT_SYS_PRCTL, 3)
CT_HOOK(unshare, CT_SYS_UNSHARE, 1)
CT_HOOK(setns, CT_SYS_SETNS, 2)
CT_HOOK(io_uring_register, CT_SYS_IO_URING_REGISTER, 4)

/*
 * A child created in a new user namespace (clone or clone3 with
 * CLONE_NEWUSER, from either entry): one event from the caller, whose
 * credentials do not change, with the child's credentials as `new` and its
 * pid as the return value, the call's flags as args[0].
 */
static __always_inline void clone_userns_event(struct task_struct *parent,
					       struct task_struct *child)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u32 zero = 0, compat = task->thread_info.status & TS_COMPAT;
	struct ct_event *e = bpf_map_lookup_elem(&scratch, &zero);
	struct clone_args args = {};
	long nr;

	if (!e || !regs)
		return;
	__builtin_memset(e, 0, CT_EVENT_HEAD_SIZE);
	e->type = CT_REC_EVENT;
	nr = BPF_CORE_READ(regs, orig_ax);
	e->abi = compat ? CT_ABI_IA32 : CT_ABI_X64;
	if (nr == 435) { /* clone3, in both tables */
		e->syscall = CT_SYS_CLONE3;
		if (bpf_probe_read_user(&args, sizeof(args.flags),
					(void *)(compat ? BPF_CORE_READ(regs, bx) : BPF_CORE_READ(regs, di))))
			e->flags |= CT_FLAG_ARGS_FAULT;
		e->args[0] = args.flags;
	} else {
		e->syscall = CT_SYS_CLONE;
		e->args[0] = compat ? BPF_CORE_READ(regs, bx) : BPF_CORE_READ(regs, di);
	}
	e->pid = parent->tgid;
	e->tid = parent->pid;
	e->ret = child->tgid;
	event_old_creds(e, parent);
	note_userns(child->real_cred);
	count(CT_CNT_EXITS);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	__builtin_memcpy(e->comm, parent->comm, sizeof(e->comm));
	read_identity(parent, e);
	e->new_creds.no_new_privs = (child->atomic_flags >> PFA_NO_NEW_PRIVS) & 1;
	event_new_cred_set(e, child->real_cred);
	emit_event(e);
}

/*
 * A request run under a registered io_uring personality: the credentials
 * it acts with are the personality's, not the submitter's. One event per
 * such request, args[0] the opcode, args[1] the request's user_data.
 */
SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(io_uring_submit, struct io_kiocb *req)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const struct cred *creds;
	struct ct_event *e;
	__u32 zero = 0;

	if (!(req->flags & REQ_F_CREDS) || !in_scope(task))
		return 0;
	creds = req->creds;
	if (!creds)
		return 0;
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, CT_EVENT_HEAD_SIZE);
	e->type = CT_REC_EVENT;
	e->syscall = CT_SYS_IO_URING_SUBMIT;
	e->pid = task->tgid;
	e->tid = task->pid;
	e->args[0] = req->opcode;
	e->args[1] = (__s64)req->cqe.user_data;
	event_old_creds(e, task);
	/* The personality's credentials, with the task's no_new_privs. */
	event_new_cred_set(e, creds);
	e->new_creds.no_new_privs = e->old_creds.no_new_privs;
	note_userns(creds);
	count(CT_CNT_EXITS);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	read_identity(task, e);
	emit_event(e);
	return 0;
}

#endif /* CREDTRAIL_CALLS_BPF_H */
