/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Process lifecycle: exec, fork, exit (with the cgroup path, argv and cwd
 * taken in the kernel), and credential changes made by exec.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_LIFECYCLE_BPF_H
#define CREDTRAIL_LIFECYCLE_BPF_H

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

/* A path walk's state, for bpf_loop. `buf` is a CT_CWD_MAX + CT_NAME_MAX
 * array of the record (cwd or exe). */
struct path_walk {
	char *buf;
	struct dentry *d;
	struct vfsmount *vmnt;
	struct mount *mnt;
	struct dentry *root_d;
	struct vfsmount *root_mnt;
	__u32 off;
	__u32 done;
	__u32 fault;
	__u32 trunc;
};

/* One step up the tree; returns 1 to stop. */
static long path_step(__u64 i, struct path_walk *w)
{
	/* Copies to locals: CO-RE relocations apply to kernel types only. */
	char *buf = w->buf;
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
		w->fault = 1;
		w->done = 1;
		return 1;
	}
	len = name.len;
	if (len + 1 > off) {
		w->trunc = 1;
		w->done = 1;
		return 1;
	}
	off -= len + 1;
	buf[off & (CT_CWD_MAX - 1)] = '/';
	if (len)
		bpf_probe_read_kernel(&buf[(off + 1) & (CT_CWD_MAX - 1)], len & (CT_NAME_MAX - 1),
				      name.name);
	w->off = off;
	w->d = parent;
	return 0;
}

/*
 * A path as the task sees it: dentries are walked up to the task's own
 * root (so a container's cwd reads /etc, not an overlay path on the host),
 * crossing mount points. Components are written right to left ending at
 * CT_CWD_MAX, with masked offsets the verifier can bound; bpf_loop keeps
 * verification to one pass over the step. Returns where the path starts
 * in `buf`; sets `trunc_flag` or `fault_flag` in `flags`.
 */
static __always_inline __u32 read_path(struct path *p, struct path *root, char *buf,
				       __u32 *flags, __u32 trunc_flag, __u32 fault_flag)
{
	struct path_walk w = {};

	w.buf = buf;
	w.d = p->dentry;
	w.vmnt = p->mnt;
	w.mnt = container_of(p->mnt, struct mount, mnt);
	w.root_d = root->dentry;
	w.root_mnt = root->mnt;
	w.off = CT_CWD_MAX;
	bpf_loop(CT_CWD_DEPTH, path_step, &w, 0);
	if (w.fault)
		*flags |= fault_flag;
	else if (!w.done || w.trunc)
		*flags |= trunc_flag;
	return w.off;
}

/* The current working directory and, on exec, the executed file (the
 * image's exe_file: for a script, its interpreter, as /proc/PID/exe). */
static __always_inline void read_paths(struct task_struct *task, struct ct_proc_event *e,
				       bool exe)
{
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct file *file;
	struct path pwd, root, exe_path;

	e->cwd_off = CT_CWD_MAX;
	e->exe_off = CT_CWD_MAX;
	if (!fs || bpf_core_read(&pwd, sizeof(pwd), &fs->pwd) ||
	    bpf_core_read(&root, sizeof(root), &fs->root)) {
		e->flags |= CT_PF_CWD_FAULT | (exe ? CT_PF_EXE_FAULT : 0);
		return;
	}
	e->cwd_off = read_path(&pwd, &root, e->cwd, &e->flags, CT_PF_CWD_TRUNC, CT_PF_CWD_FAULT);
	if (!exe)
		return;
	file = BPF_CORE_READ(task, mm, exe_file);
	if (!file || bpf_core_read(&exe_path, sizeof(exe_path), &file->f_path)) {
		e->flags |= CT_PF_EXE_FAULT;
		return;
	}
	e->exe_off = read_path(&exe_path, &root, e->exe, &e->flags, CT_PF_EXE_TRUNC,
			       CT_PF_EXE_FAULT);
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
	e->type = CT_REC_PROC;
	e->kind = kind;
	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	read_identity(task, e);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	read_creds(task, &e->creds, e->groups, &e->flags, CT_PF_GROUPS_TRUNC);
	read_cgroup_names(task, e);
	note_userns(task->real_cred);
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

/* The exec's credentials are known; checks resume. */
static __always_inline void exec_done(struct task_struct *task)
{
	struct ct_known *k = bpf_task_storage_get(&known, task, 0, 0);

	if (!k)
		return;
	know(task, k);
	barrier();
	k->exec_ns = 0;
}

/* Runs before exec commits the new image's credentials: remember the old. */
SEC("tp_btf/sched_prepare_exec")
int BPF_PROG(prepare_exec, struct task_struct *task, struct linux_binprm *bprm)
{
	__u32 tid = BPF_CORE_READ(task, pid);
	struct ct_stash before;
	__u32 flags = 0;
	struct ct_known *k;
	bool adopted;

	if (!in_scope(task))
		return 0;
	/* A change before this exec is not the exec's; from here until
	 * sched_process_exec the exec changes them itself. */
	check(task, CT_CHECK_EXEC, false);
	/* The new image's credentials are prepared from the subjective ones. */
	check_subjective(task, CT_CHECK_EXEC, -1);
	k = known_of(task, &adopted);
	if (k)
		k->exec_ns = bpf_ktime_get_boot_ns();
	read_creds(task, &before.creds, before.groups, &flags, 0);
	bpf_map_update_elem(&exec_creds, &tid, &before, BPF_ANY);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 old_tid = ctx->old_pid;
	struct ct_proc_event *e;
	struct ct_stash *before;
	struct ct_event *ce;
	__u32 zero = 0;
	long n;

	if (!in_scope(task))
		return 0;
	e = proc_begin(CT_PROC_EXEC, task);
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
	read_paths(task, e, true);
	proc_send(e, sizeof(*e));
	exec_done(task);

	/* A credential event when exec changed the credentials (setuid or
	 * setgid bit, file capabilities), after the exec record so that it is
	 * attributed to the new image. */
	before = bpf_map_lookup_elem(&exec_creds, &old_tid);
	if (!before) {
		count(CT_CNT_EXEC_NO_STASH);
		return 0;
	}
	ce = bpf_map_lookup_elem(&scratch, &zero);
	if (ce && creds_differ(&before->creds, &e->creds)) {
		__builtin_memset(ce, 0, CT_EVENT_HEAD_SIZE);
		ce->type = CT_REC_EVENT;
		ce->syscall = CT_SYS_EXECVE;
		ce->pid = e->pid;
		ce->tid = e->tid;
		__builtin_memcpy(&ce->old_creds, &before->creds, sizeof(ce->old_creds));
		__builtin_memcpy(ce->groups, before->groups, sizeof(before->groups));
		ce->old_kept = group_count(&before->creds);
		if (before->creds.ngroups > CT_MAX_GROUPS)
			ce->flags |= CT_FLAG_OLD_GROUPS_TRUNC;
		count(CT_CNT_EXITS);
		ce->ktime_ns = bpf_ktime_get_boot_ns();
		bpf_get_current_comm(ce->comm, sizeof(ce->comm));
		read_identity(task, ce);
		ce->new_creds.no_new_privs = (task->atomic_flags >> PFA_NO_NEW_PRIVS) & 1;
		event_new_cred_set(ce, task->real_cred);
		emit_event(ce);
	}
	bpf_map_delete_elem(&exec_creds, &old_tid);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_fork, struct task_struct *parent, struct task_struct *child)
{
	struct ct_proc_event *e;

	scope_fork(parent, child);
	check(parent, CT_CHECK_FORK, false);
	if (!in_scope(child))
		return 0;
	know_child(child);
	/* Threads are not processes. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	e = proc_begin(CT_PROC_FORK, child);
	if (!e)
		return 0;
	/* real_parent of a CLONE_PARENT child is the parent's parent. */
	e->ppid = BPF_CORE_READ(child, real_parent, tgid);
	proc_send(e, CT_PROC_SHORT_SIZE);
	if (child->real_cred->user_ns != parent->real_cred->user_ns)
		clone_userns_event(parent, child);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int sched_exit(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct ct_proc_event *e;

	if (!in_scope(task))
		return 0;
	/* Every thread's last chance to be checked. */
	check(task, CT_CHECK_EXIT, false);
	/* Only when the whole thread group is gone. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	e = proc_begin(CT_PROC_EXIT, task);
	if (e) {
		e->exit_code = BPF_CORE_READ(task, exit_code);
		if (take_folded_mark(task->tgid))
			e->flags |= CT_PF_FOLDED;
		proc_send(e, CT_PROC_SHORT_SIZE);
	}
	scope_exit(task);
	return 0;
}

#endif /* CREDTRAIL_LIFECYCLE_BPF_H */
