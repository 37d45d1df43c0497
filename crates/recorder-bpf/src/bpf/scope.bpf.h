/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Recording one command (`credtrail-record -- COMMAND`): only its process
 * tree, filtered here so the rest of the host costs no ring space. A
 * process is in the tree when its creator was at the moment it was forked
 * (thread-group ancestry, kept in a hash by tgid): daemons that reparent
 * themselves (podman's conmon) and container processes stay in. The
 * recorder puts the command's first process in the map itself, before
 * letting it exec.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_SCOPE_BPF_H
#define CREDTRAIL_SCOPE_BPF_H

/* Set by the loader: 1 records the tree only. */
const volatile __u32 scope_enabled = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CT_SCOPE_MAX);
	__type(key, __u32);
	__type(value, __u8);
} scope SEC(".maps");

/* Whether `task`'s events are recorded. */
static __always_inline bool in_scope(struct task_struct *task)
{
	__u32 tgid;

	if (!scope_enabled)
		return true;
	tgid = task->tgid;
	return bpf_map_lookup_elem(&scope, &tgid) != NULL;
}

/* A new process joins the tree when its creator is in it. */
static __always_inline void scope_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid, tgid;
	__u8 one = 1;

	if (!scope_enabled || child->pid != child->tgid)
		return;
	ptgid = parent->tgid;
	if (!bpf_map_lookup_elem(&scope, &ptgid))
		return;
	tgid = child->tgid;
	if (bpf_map_update_elem(&scope, &tgid, &one, BPF_ANY))
		count(CT_CNT_SCOPE_FULL);
}

/* The whole thread group is gone: its tgid may be reused by anyone. */
static __always_inline void scope_exit(struct task_struct *task)
{
	__u32 tgid = task->tgid;

	if (scope_enabled)
		bpf_map_delete_elem(&scope, &tgid);
}

#endif /* CREDTRAIL_SCOPE_BPF_H */
