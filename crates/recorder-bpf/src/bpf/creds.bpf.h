/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading who a task is: its credential set (ids, capabilities, groups,
 * user namespace, no_new_privs), its user namespace and id maps (sent to
 * userspace once per change), and its identity (parent, login uid,
 * cgroup, pid namespace).
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_CREDS_BPF_H
#define CREDTRAIL_CREDS_BPF_H

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
/*
 * Reads `cred`'s supplementary groups into `dst` (room for CT_MAX_GROUPS)
 * and their true count into out->ngroups; returns how many were kept.
 */
static __always_inline __u32 read_groups(const struct cred *cred, struct ct_creds *out,
					 __u32 *dst, __u32 *flags, __u32 trunc_flag)
{
	struct group_info *gi = cred->group_info;
	int n;

	out->ngroups = 0;
	if (!gi)
		return 0;
	n = gi->ngroups;
	if (n <= 0)
		return 0;
	out->ngroups = n;
	if (n > CT_MAX_GROUPS) {
		*flags |= trunc_flag;
		n = CT_MAX_GROUPS;
	}
	bpf_core_read(dst, groups_bytes(n), &gi->gid);
	return n;
}

/* Ids, capabilities, securebits and user namespace; groups: read_groups. */
static __always_inline void read_cred_ids(const struct cred *cred, struct ct_creds *out)
{
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
	out->userns_inum = cred->user_ns->ns.inum;
	out->userns_level = cred->user_ns->level;
	out->userns_owner = cred->user_ns->owner.val;
}

/* The whole set, groups into `groups`; returns the groups kept. */
static __always_inline __u32 read_cred_set(const struct cred *cred, struct ct_creds *out,
					   __u32 *groups, __u32 *flags, __u32 trunc_flag)
{
	read_cred_ids(cred, out);
	return read_groups(cred, out, groups, flags, trunc_flag);
}

static __always_inline __u32 read_creds(struct task_struct *task, struct ct_creds *out,
					__u32 *groups, __u32 *flags, __u32 trunc_flag)
{
	/* The objective credentials: what others see and what set*id changes
	 * (a temporary override_creds, as NFS or io_uring use, is not a change). */
	out->no_new_privs = (task->atomic_flags >> PFA_NO_NEW_PRIVS) & 1;
	return read_cred_set(task->real_cred, out, groups, flags, trunc_flag);
}

/*
 * Where a credential event's next group list goes: `at` groups into its
 * tail. The mask lets the verifier bound the offset (at <= 2 *
 * CT_MAX_GROUPS in practice; CT_TAIL_GROUPS leaves room past the mask).
 */
static __always_inline __u32 *event_groups(struct ct_event *e, __u32 at)
{
	return &e->groups[at & (4 * CT_MAX_GROUPS - 1)];
}

/* The event's credentials before: groups after the requested ones. */
static __always_inline void event_old_creds(struct ct_event *e, struct task_struct *task)
{
	e->old_kept = read_creds(task, &e->old_creds, event_groups(e, e->req_kept), &e->flags,
				 CT_FLAG_OLD_GROUPS_TRUNC);
}

/* The event's credentials after, from `cred` (the groups after the ones
 * before). */
static __always_inline void event_new_cred_set(struct ct_event *e, const struct cred *cred)
{
	e->new_kept = read_cred_set(cred, &e->new_creds, event_groups(e, e->req_kept + e->old_kept),
				    &e->flags, CT_FLAG_NEW_GROUPS_TRUNC);
}

/* Bytes of the event's ring record: the head and the groups it carries. */
static __always_inline __u64 event_size(const struct ct_event *e)
{
	return CT_EVENT_HEAD_SIZE + sizeof(__u32) * ((e->req_kept + e->old_kept + e->new_kept) &
						     (4 * CT_MAX_GROUPS - 1));
}

static __always_inline void read_map(const struct uid_gid_map *map, struct ct_extent *out,
				     __u32 *count)
{
	__u32 n = map->nr_extents;
	const void *src = &map->extent;

	*count = n;
	/* Larger maps live in an allocated array: keep its first ones. */
	if (n > CT_MAP_EXTENTS)
		src = map->forward;
	bpf_probe_read_kernel(out, sizeof(struct ct_extent) * CT_MAP_EXTENTS, src);
}

static bool host_userns_sent;

/*
 * Sends the user namespace of `cred` unless it was sent with the same map
 * sizes (maps are written once, after the namespace is created, so a later
 * record sends it again with its maps). The host's namespace is sent once,
 * without a map lookup on the hot path.
 */
static __always_inline void note_userns(const struct cred *cred)
{
	struct user_namespace *ns = cred->user_ns;
	struct ct_userns_event *u;
	__u32 inum = ns->ns.inum;
	__u64 sizes, *seen;

	if (ns->level == 0) {
		if (host_userns_sent)
			return;
		host_userns_sent = true;
	}
	sizes = ((__u64)ns->uid_map.nr_extents << 32) | ns->gid_map.nr_extents;
	seen = bpf_map_lookup_elem(&userns_sent, &inum);
	if (seen && *seen == sizes)
		return;
	bpf_map_update_elem(&userns_sent, &inum, &sizes, BPF_ANY);
	count(CT_CNT_USERNS);
	u = bpf_ringbuf_reserve(&events, sizeof(*u), 0);
	if (!u) {
		count(CT_CNT_USERNS_RINGBUF_FULL);
		return;
	}
	__builtin_memset(u, 0, sizeof(*u));
	u->type = CT_REC_USERNS;
	u->ktime_ns = bpf_ktime_get_boot_ns();
	u->inum = inum;
	u->parent_inum = ns->parent ? ns->parent->ns.inum : 0;
	u->level = ns->level;
	u->owner = ns->owner.val;
	u->group = ns->group.val;
	read_map(&ns->uid_map, u->uid_map, &u->uid_extents);
	read_map(&ns->gid_map, u->gid_map, &u->gid_extents);
	bpf_ringbuf_submit(u, CT_SUBMIT_FLAGS);
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

/* The thread group's pid as seen from its own (innermost) pid namespace,
 * and that namespace: fixed for the life of the process. */
static __always_inline void read_pid_ns(struct task_struct *task, __u32 *ns_pid,
					__u32 *pidns_inum)
{
	struct pid *tp = task->group_leader->thread_pid;
	unsigned int level = tp->level;
	struct upid up = {};

	*ns_pid = 0;
	*pidns_inum = 0;
	if (level <= MAX_PID_NS_LEVEL) {
		/* A variable index: one helper read rather than a variable-offset load. */
		bpf_core_read(&up, sizeof(up), &tp->numbers[level]);
		*ns_pid = up.nr;
		*pidns_inum = BPF_CORE_READ(up.ns, ns.inum);
	}
}

/* Who a task is, but its pid namespace (read_pid_ns): these can change. */
static __always_inline void read_ids_but_ns(struct task_struct *task, struct ct_ids *ids)
{
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
}

static __always_inline void read_ids(struct task_struct *task, struct ct_ids *ids)
{
	read_ids_but_ns(task, ids);
	read_pid_ns(task, &ids->ns_pid, &ids->pidns_inum);
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

#endif /* CREDTRAIL_CREDS_BPF_H */
