// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * credtrail: record every credential-changing syscall with the caller's full
 * credentials before and after.
 *
 * Only per-syscall tracepoints are used: on the target kernels kprobes,
 * fentry/fexit and BPF LSM are unavailable, and a raw sys_enter hook would
 * tax every syscall (~88 ns vs ~48 ns measured).
 *
 * At sys_enter we remember the arguments and the credentials per thread; at
 * sys_exit we emit one event with the return value and the new credentials.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "credtrail.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps the ABI types in BTF so the skeleton generates them for Rust. */
struct ct_event _ct_event = {};
struct ct_proc_event _ct_proc_event = {};
enum ct_proc_kind _ct_proc_kind = CT_PROC_EXEC;
enum ct_proc_flag _ct_proc_flag = CT_PF_ARGS_TRUNC;
enum ct_syscall _ct_syscall = CT_SYS_NONE;
enum ct_flag _ct_flag = CT_FLAG_ARGS_FAULT;
enum ct_counter _ct_counter = CT_CNT_EXITS;

/* Read by userspace to refuse a mismatched object. */
const volatile __u32 abi_version = CT_ABI_VERSION;
/* Set by the loader: 1 when cgroup v1 controllers hold the container
 * cgroups (hybrid hosts), so names come from the memory hierarchy; 0 for
 * the unified (v2) hierarchy. */
const volatile __u32 cgroup_v1 = 0;

#define MAX_PID_NS_LEVEL 32
#define LINUX_CAPABILITY_VERSION_1 0x19980330

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Resized by the loader (--ring-buffer-mib) before load. */
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

/* Records never wake the consumer: it polls on a short timer (20 ms, and
 * without pause while records wait). A wakeup costs the traced syscall an
 * irq_work and the recorder a context switch; by default the kernel sends
 * one whenever the consumer has caught up, i.e. for nearly every record at
 * moderate rates, and forcing one only past a fill level wakes on every
 * record once the consumer lags, which slowed flat-out callers 2x. */
#define CT_SUBMIT_FLAGS BPF_RB_NO_WAKEUP

/*
 * The call in flight on each thread, between its enter and exit hooks, in
 * the thread's own storage: no hash lookup, copy or delete per call (the
 * hash map this replaced cost ~100 ns per syscall), and it goes with the
 * thread.
 */
struct ct_inflight {
	__u32 pending;
	__u32 pad;
	struct ct_event e;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ct_inflight);
} inflight SEC(".maps");

/* struct ct_event is larger than the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_event);
} scratch SEC(".maps");

/* Lifecycle records are built here (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_proc_event);
} proc_scratch SEC(".maps");

/* Credentials before exec, keyed by the exec'ing thread's tid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct ct_creds);
} exec_creds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
}

/*
 * Bytes of n (1..CT_MAX_GROUPS) gids, computed so the verifier can see the
 * bound [4, 4 * CT_MAX_GROUPS] without relying on a branch clang may reorder.
 */
static __always_inline __u64 groups_bytes(int n)
{
	return ((((__u64)n - 1) & (CT_MAX_GROUPS - 1)) + 1) * sizeof(__u32);
}

/*
 * The readers below dereference BTF pointers (bpf_get_current_task_btf, or
 * tp_btf arguments) directly: the verifier turns each load into an inline
 * fault-safe load, where BPF_CORE_READ costs a helper call per field. On
 * this path (every hooked syscall, twice) that was most of the overhead.
 */
static __always_inline void read_groups(const struct cred *cred, struct ct_creds *out,
					__u32 *flags, __u32 trunc_flag)
{
	struct group_info *gi = cred->group_info;
	int n;

	out->ngroups = 0;
	if (!gi)
		return;
	n = gi->ngroups;
	if (n <= 0)
		return;
	out->ngroups = n;
	if (n > CT_MAX_GROUPS) {
		*flags |= trunc_flag;
		n = CT_MAX_GROUPS;
	}
	bpf_core_read(out->groups, groups_bytes(n), &gi->gid);
}

static __always_inline void read_creds(struct task_struct *task, struct ct_creds *out,
				       __u32 *flags, __u32 trunc_flag)
{
	/* The objective credentials: what others see and what set*id changes. */
	const struct cred *cred = task->real_cred;

	out->uid = cred->uid.val;
	out->euid = cred->euid.val;
	out->suid = cred->suid.val;
	out->fsuid = cred->fsuid.val;
	out->gid = cred->gid.val;
	out->egid = cred->egid.val;
	out->sgid = cred->sgid.val;
	out->fsgid = cred->fsgid.val;
	out->cap_effective = cred->cap_effective.val;
	out->cap_permitted = cred->cap_permitted.val;
	out->cap_inheritable = cred->cap_inheritable.val;
	out->cap_bounding = cred->cap_bset.val;
	out->cap_ambient = cred->cap_ambient.val;
	out->securebits = cred->securebits;
	read_groups(cred, out, flags, trunc_flag);
}

/* Who a task is, beyond its pid: one reader for both record types. */
struct ct_ids {
	__u64 cgroup_id;
	__u32 ppid;
	__u32 auid;
	__u32 sessionid;
	__u32 ns_pid;
	__u32 pidns_inum;
};

static __always_inline void read_ids(struct task_struct *task, struct ct_ids *ids)
{
	struct pid *tp;
	struct upid up = {};
	unsigned int level;

	ids->ppid = task->real_parent->tgid;
	if (bpf_core_field_exists(task->loginuid)) {
		ids->auid = task->loginuid.val;
		ids->sessionid = task->sessionid;
	} else {
		ids->auid = (__u32)-1;
		ids->sessionid = (__u32)-1;
	}
	/* The task's cgroup v2 id (what bpf_get_current_cgroup_id returns for current). */
	ids->cgroup_id = task->cgroups->dfl_cgrp->kn->id;

	/* The thread group's pid as seen from its own (innermost) pid namespace. */
	tp = task->group_leader->thread_pid;
	level = tp->level;
	ids->ns_pid = 0;
	ids->pidns_inum = 0;
	if (level <= MAX_PID_NS_LEVEL) {
		/* A variable index: one helper read rather than a variable-offset load. */
		bpf_core_read(&up, sizeof(up), &tp->numbers[level]);
		ids->ns_pid = up.nr;
		ids->pidns_inum = BPF_CORE_READ(up.ns, ns.inum);
	}
}

/* Fills the identity fields of either record type (they share the names). */
#define read_identity(task, e)                                                 \
	do {                                                                   \
		struct ct_ids ids_;                                            \
		read_ids(task, &ids_);                                         \
		(e)->ppid = ids_.ppid;                                         \
		(e)->auid = ids_.auid;                                         \
		(e)->sessionid = ids_.sessionid;                               \
		(e)->cgroup_id = ids_.cgroup_id;                               \
		(e)->ns_pid = ids_.ns_pid;                                     \
		(e)->pidns_inum = ids_.pidns_inum;                             \
	} while (0)

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
						unsigned long listp)
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
	if (bpf_probe_read_user(e->req_groups, groups_bytes(n), (void *)listp))
		e->flags |= CT_FLAG_ARGS_FAULT;
}

static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx, __u32 sys,
				    const int nargs)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_inflight *f;
	struct ct_event *e;

	f = bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!f) {
		count(CT_CNT_ENTER_STORE_FAIL);
		return 0;
	}
	e = &f->e;
	__builtin_memset(e, 0, sizeof(*e));
	e->syscall = sys;
	e->pid = id >> 32;
	e->tid = (__u32)id;

	switch (sys) {
	case CT_SYS_CAPSET:
		read_capset_args(e, ctx->args[0], ctx->args[1]);
		break;
	case CT_SYS_SETGROUPS:
		read_setgroups_args(e, ctx->args[0], ctx->args[1]);
		break;
	default:
		/*
		 * uid_t/gid_t arguments: sign-extend so "unchanged" reads -1.
		 * Each syscall tracepoint's context holds only that call's
		 * arguments, and the kernel refuses to attach a program that
		 * reads past them, so nargs is a compile-time constant here.
		 */
		e->args[0] = sext32(ctx->args[0]);
		if (nargs > 1)
			e->args[1] = sext32(ctx->args[1]);
		if (nargs > 2)
			e->args[2] = sext32(ctx->args[2]);
	}

	read_creds(task, &e->old_creds, &e->flags, CT_FLAG_OLD_GROUPS_TRUNC);
	f->pending = 1;
	return 0;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_inflight *f;
	struct ct_event *e;

	f = bpf_task_storage_get(&inflight, task, 0, 0);
	if (!f || !f->pending) {
		count(CT_CNT_EXIT_NO_ENTER);
		return 0;
	}
	f->pending = 0;
	count(CT_CNT_EXITS);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CT_CNT_RINGBUF_FULL);
		return 0;
	}
	__builtin_memcpy(e, &f->e, sizeof(*e));

	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->ret = ctx->ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	read_identity(task, e);
	read_creds(task, &e->new_creds, &e->flags, CT_FLAG_NEW_GROUPS_TRUNC);
	bpf_ringbuf_submit(e, CT_SUBMIT_FLAGS);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Process lifecycle: exec, fork, exit, and credential changes made by exec.
 */

/* kernfs_node.parent was renamed __parent in 6.15. */
struct kernfs_node___old {
	struct kernfs_node *parent;
};

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

/* Names of the task's cgroup and its ancestors, leaf first. */
static __always_inline void read_cgroup_names(struct task_struct *task, struct ct_proc_event *e)
{
	struct css_set *cs = BPF_CORE_READ(task, cgroups);
	struct cgroup *cg;
	struct kernfs_node *kn;

	if (cgroup_v1) {
		int idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);

		cg = BPF_CORE_READ(cs, subsys[idx], cgroup);
	} else {
		cg = BPF_CORE_READ(cs, dfl_cgrp);
	}
	kn = BPF_CORE_READ(cg, kn);
	for (int i = 0; i < CT_CGROUP_LEVELS; i++) {
		if (!kn)
			break;
		bpf_probe_read_kernel_str(e->cgroup[i], CT_CGROUP_NAME_MAX, BPF_CORE_READ(kn, name));
		kn = kn_parent(kn);
	}
}

struct cwd_walk {
	struct ct_proc_event *e;
	struct dentry *d;
	struct vfsmount *vmnt;
	struct mount *mnt;
	struct dentry *root_d;
	struct vfsmount *root_mnt;
	__u32 off;
	__u32 done;
};

/* One step up the tree; returns 1 to stop. */
static long cwd_step(__u64 i, struct cwd_walk *w)
{
	/* Copies to locals: CO-RE relocations apply to kernel types only. */
	struct ct_proc_event *e = w->e;
	struct dentry *d = w->d, *parent, *mnt_root;
	struct vfsmount *vmnt = w->vmnt;
	struct mount *mnt = w->mnt;
	struct qstr name;
	__u32 len, off = w->off;

	if (d == w->root_d && vmnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	mnt_root = BPF_CORE_READ(vmnt, mnt_root);
	parent = BPF_CORE_READ(d, d_parent);
	if (d == mnt_root || d == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (up == mnt) {
			/* The global root: the task's root is not above us. */
			w->done = 1;
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vmnt = &up->mnt;
		return 0;
	}
	if (bpf_core_read(&name, sizeof(name), &d->d_name)) {
		e->flags |= CT_PF_CWD_FAULT;
		w->done = 1;
		return 1;
	}
	len = name.len;
	if (len + 1 > off) {
		e->flags |= CT_PF_CWD_TRUNC;
		w->done = 1;
		return 1;
	}
	off -= len + 1;
	e->cwd[off & (CT_CWD_MAX - 1)] = '/';
	if (len)
		bpf_probe_read_kernel(&e->cwd[(off + 1) & (CT_CWD_MAX - 1)], len & (CT_NAME_MAX - 1),
				      name.name);
	w->off = off;
	w->d = parent;
	return 0;
}

/*
 * The current working directory as the task sees it: dentries are walked up
 * to the task's own root (so a container's cwd reads /etc, not an overlay
 * path on the host), crossing mount points. Components are written right to
 * left ending at CT_CWD_MAX, with masked offsets the verifier can bound;
 * bpf_loop keeps verification to one pass over the step.
 */
static __always_inline void read_cwd(struct task_struct *task, struct ct_proc_event *e)
{
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct path pwd, root;
	struct cwd_walk w = {};

	e->cwd_off = CT_CWD_MAX;
	if (!fs || bpf_core_read(&pwd, sizeof(pwd), &fs->pwd) ||
	    bpf_core_read(&root, sizeof(root), &fs->root)) {
		e->flags |= CT_PF_CWD_FAULT;
		return;
	}
	w.e = e;
	w.d = pwd.dentry;
	w.vmnt = pwd.mnt;
	w.mnt = container_of(pwd.mnt, struct mount, mnt);
	w.root_d = root.dentry;
	w.root_mnt = root.mnt;
	w.off = CT_CWD_MAX;
	bpf_loop(CT_CWD_DEPTH, cwd_step, &w, 0);
	if (!w.done)
		e->flags |= CT_PF_CWD_TRUNC;
	e->cwd_off = w.off;
}

/* argv of the new image, NUL-separated, from the process's own memory. */
static __always_inline void read_args(struct task_struct *task, struct ct_proc_event *e)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start, end;
	__u64 len;

	if (!mm)
		return;
	start = BPF_CORE_READ(mm, arg_start);
	end = BPF_CORE_READ(mm, arg_end);
	if (end <= start)
		return;
	len = end - start;
	if (len > CT_ARGS_MAX) {
		e->flags |= CT_PF_ARGS_TRUNC;
		len = CT_ARGS_MAX;
	}
	/* In [1, CT_ARGS_MAX], visibly to the verifier. */
	len = ((len - 1) & (CT_ARGS_MAX - 1)) + 1;
	if (bpf_probe_read_user(e->args, len, (void *)start)) {
		e->flags |= CT_PF_ARGS_FAULT;
		return;
	}
	e->args_len = len;
}

static __always_inline struct ct_proc_event *proc_begin(__u32 kind, struct task_struct *task)
{
	__u32 zero = 0;
	struct ct_proc_event *e = bpf_map_lookup_elem(&proc_scratch, &zero);

	if (!e)
		return NULL;
	/* Only the fixed part: the variable tail is written before it is sent. */
	__builtin_memset(e, 0, CT_PROC_SHORT_SIZE);
	e->kind = kind;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	read_identity(task, e);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	read_creds(task, &e->creds, &e->flags, CT_PF_GROUPS_TRUNC);
	read_cgroup_names(task, e);
	return e;
}

static __always_inline void proc_send(struct ct_proc_event *e, __u64 size)
{
	count(CT_CNT_PROC_EVENTS);
	if (bpf_ringbuf_output(&events, e, size, CT_SUBMIT_FLAGS))
		count(CT_CNT_PROC_RINGBUF_FULL);
}

static __always_inline int creds_differ(const struct ct_creds *a, const struct ct_creds *b)
{
	return a->uid != b->uid || a->euid != b->euid || a->suid != b->suid ||
	       a->fsuid != b->fsuid || a->gid != b->gid || a->egid != b->egid ||
	       a->sgid != b->sgid || a->fsgid != b->fsgid ||
	       a->cap_effective != b->cap_effective || a->cap_permitted != b->cap_permitted ||
	       a->cap_inheritable != b->cap_inheritable || a->cap_bounding != b->cap_bounding ||
	       a->cap_ambient != b->cap_ambient || a->securebits != b->securebits;
}

/* Runs before exec commits the new image's credentials: remember the old. */
SEC("tp_btf/sched_prepare_exec")
int BPF_PROG(prepare_exec, struct task_struct *task, struct linux_binprm *bprm)
{
	__u32 tid = BPF_CORE_READ(task, pid);
	__u32 zero = 0;
	struct ct_event *scr = bpf_map_lookup_elem(&scratch, &zero);
	__u32 flags = 0;

	if (!scr)
		return 0;
	read_creds(task, &scr->old_creds, &flags, 0);
	bpf_map_update_elem(&exec_creds, &tid, &scr->old_creds, BPF_ANY);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 old_tid = ctx->old_pid;
	struct ct_proc_event *e = proc_begin(CT_PROC_EXEC, task);
	struct ct_creds *before;
	struct ct_event *ce;
	__u32 zero = 0;
	long n;

	if (!e)
		return 0;
	e->old_tid = old_tid;
	n = bpf_probe_read_kernel_str(e->filename, CT_FILENAME_MAX,
				      (void *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	if (n > 0) {
		e->filename_len = n - 1;
		if (n == CT_FILENAME_MAX)
			e->flags |= CT_PF_FILENAME_TRUNC;
	}
	read_args(task, e);
	read_cwd(task, e);
	proc_send(e, sizeof(*e));

	/* A credential event when exec changed the credentials (setuid or
	 * setgid bit, file capabilities), after the exec record so that it is
	 * attributed to the new image. */
	before = bpf_map_lookup_elem(&exec_creds, &old_tid);
	if (!before) {
		count(CT_CNT_EXEC_NO_STASH);
		return 0;
	}
	ce = bpf_map_lookup_elem(&scratch, &zero);
	if (ce && creds_differ(before, &e->creds)) {
		__builtin_memset(ce, 0, sizeof(*ce));
		ce->syscall = CT_SYS_EXECVE;
		ce->pid = e->pid;
		ce->tid = e->tid;
		bpf_probe_read_kernel(&ce->old_creds, sizeof(ce->old_creds), before);
		count(CT_CNT_EXITS);
		ce->ktime_ns = bpf_ktime_get_boot_ns();
		bpf_get_current_comm(ce->comm, sizeof(ce->comm));
		read_identity(task, ce);
		read_creds(task, &ce->new_creds, &ce->flags, CT_FLAG_NEW_GROUPS_TRUNC);
		if (bpf_ringbuf_output(&events, ce, sizeof(*ce), CT_SUBMIT_FLAGS))
			count(CT_CNT_RINGBUF_FULL);
	}
	bpf_map_delete_elem(&exec_creds, &old_tid);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_fork, struct task_struct *parent, struct task_struct *child)
{
	struct ct_proc_event *e;

	/* Threads are not processes. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	e = proc_begin(CT_PROC_FORK, child);
	if (!e)
		return 0;
	/* real_parent of a CLONE_PARENT child is the parent's parent. */
	e->ppid = BPF_CORE_READ(child, real_parent, tgid);
	proc_send(e, CT_PROC_SHORT_SIZE);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int sched_exit(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_proc_event *e;

	/* Only when the whole thread group is gone. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	e = proc_begin(CT_PROC_EXIT, task);
	if (!e)
		return 0;
	e->exit_code = BPF_CORE_READ(task, exit_code);
	proc_send(e, CT_PROC_SHORT_SIZE);
	return 0;
}

#define CT_HOOK(name, sys, nargs)                                              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                            \
	int enter_##name(struct trace_event_raw_sys_enter *ctx)                \
	{                                                                      \
		return on_enter(ctx, sys, nargs);                              \
	}                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #name)                             \
	int exit_##name(struct trace_event_raw_sys_exit *ctx)                  \
	{                                                                      \
		return on_exit(ctx);                                           \
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
