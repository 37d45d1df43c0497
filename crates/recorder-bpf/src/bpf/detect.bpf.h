/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Unexplained credential changes: every task's last known credentials, kept
 * in its own storage, and checks that compare them with the task's current
 * objective credentials (real_cred) wherever the task shows up: at every
 * recorded call, exec, fork and exit, at every switch-out, and in a periodic
 * sweep over all tasks (a task iterator run by userspace). A difference no
 * recorded call explains is an event of its own (CT_SYS_UNEXPLAINED).
 *
 * Credentials are immutable, so a new struct cred pointer is the only sign
 * a hook needs to look closer; the sweep compares contents as well, which
 * also catches a struct cred overwritten in place (DirtyCred) or a freed
 * one whose address was reused.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_DETECT_BPF_H
#define CREDTRAIL_DETECT_BPF_H

/* An exec commits its credentials well before sched_process_exec fires:
 * checks leave an exec under way alone for this long (one that fails after
 * sched_prepare_exec never clears the mark). */
#define CT_EXEC_GRACE_NS (2ULL * 1000 * 1000 * 1000)

struct ct_known {
	/* The struct cred last confirmed; 0 while the entry is being made. */
	__u64 cred;
	/* When the credentials were last confirmed (CLOCK_BOOTTIME) by a hook
	 * or a sweep, and in jiffies by a switch-out (a clock read there
	 * cost more than the rest of the check). */
	__u64 seen_ns;
	__u64 seen_jiffies;
	/* sched_prepare_exec time of an exec under way, else 0. */
	__u64 exec_ns;
	/* The subjective struct cred last reported (check_subjective): one
	 * record per task and override, not one per syscall. */
	__u64 subjective_cred;
	struct ct_creds creds;
	__u32 groups[CT_MAX_GROUPS];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ct_known);
} known SEC(".maps");

/* From the kernel's config (0 when libbpf cannot read it: switch-outs
 * then do not narrow the window). */
extern unsigned int CONFIG_HZ __kconfig __weak;

/* When the known credentials were last confirmed, at most one jiffy early. */
static __always_inline __u64 last_seen_ns(const struct ct_known *k, __u64 now)
{
	__u64 seen = k->seen_ns, ago;

	if (!CONFIG_HZ || !k->seen_jiffies)
		return seen;
	ago = (bpf_jiffies64() - k->seen_jiffies + 1) * (1000000000ULL / CONFIG_HZ);
	if (ago < now - seen)
		seen = now - ago;
	return seen;
}

/* Groups of a credential set kept in its list. */
static __always_inline __u32 group_count(const struct ct_creds *c)
{
	return c->ngroups > CT_MAX_GROUPS ? CT_MAX_GROUPS : c->ngroups;
}

/* Whether the ids, capabilities, securebits, user namespace and groups of
 * `cred` are those of `k` (no_new_privs is not a credential: prctl only). */
static __always_inline bool cred_matches(const struct cred *cred, const struct ct_known *known)
{
	const struct ct_creds *k = &known->creds;
	struct group_info *gi;
	__u32 groups[CT_MAX_GROUPS];
	int n;

	if (cred->uid.val != k->uid || cred->euid.val != k->euid || cred->suid.val != k->suid ||
	    cred->fsuid.val != k->fsuid || cred->gid.val != k->gid || cred->egid.val != k->egid ||
	    cred->sgid.val != k->sgid || cred->fsgid.val != k->fsgid ||
	    cred->cap_effective.val != k->cap_effective ||
	    cred->cap_permitted.val != k->cap_permitted ||
	    cred->cap_inheritable.val != k->cap_inheritable ||
	    cred->cap_bset.val != k->cap_bounding || cred->cap_ambient.val != k->cap_ambient ||
	    cred->securebits != k->securebits || cred->user_ns->ns.inum != k->userns_inum)
		return false;
	gi = cred->group_info;
	n = gi ? gi->ngroups : 0;
	if (n < 0)
		n = 0;
	if ((__u32)n != k->ngroups)
		return false;
	if (n == 0)
		return true;
	if (n > CT_MAX_GROUPS)
		n = CT_MAX_GROUPS;
	if (bpf_core_read(groups, groups_bytes(n), &gi->gid))
		return true; /* unreadable: not evidence of a change */
	for (int i = 0; i < CT_MAX_GROUPS; i++)
		if (i < n && groups[i] != known->groups[i])
			return false;
	return true;
}

/* Records `task`'s current credentials as known: contents first, the
 * pointer last, so a check that interrupts this sees the old pointer with
 * the old contents or 0 ("being made"). */
static __always_inline void know(struct task_struct *task, struct ct_known *k)
{
	__u32 flags = 0;

	k->cred = 0;
	barrier();
	read_creds(task, &k->creds, k->groups, &flags, 0);
	k->seen_ns = bpf_ktime_get_boot_ns();
	barrier();
	k->cred = (__u64)task->real_cred;
}

/* As know(), from credentials the caller has just read at `now`. */
static __always_inline void know_from(struct task_struct *task, struct ct_known *k,
				      const struct ct_creds *c, const __u32 *groups, __u64 now)
{
	k->cred = 0;
	barrier();
	__builtin_memcpy(&k->creds, c, sizeof(k->creds));
	__builtin_memcpy(k->groups, groups, sizeof(k->groups));
	k->seen_ns = now;
	barrier();
	k->cred = (__u64)task->real_cred;
}

/* The task's entry, made from its current credentials when it has none
 * (tasks older than the recorder, or whose fork was not seen). */
static __always_inline struct ct_known *known_of(struct task_struct *task, bool *adopted)
{
	struct ct_known *k = bpf_task_storage_get(&known, task, 0, 0);

	*adopted = false;
	if (k && k->cred)
		return k;
	if (k) {
		/*
		 * Being written right now, by the task's own hook or another
		 * check: writing it here too could leave one call's pointer
		 * with the other's contents, and a later full check would call
		 * that a change. This check is skipped; the writer's result
		 * stands.
		 */
		*adopted = true;
		return k;
	}
	k = bpf_task_storage_get(&known, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!k) {
		count(CT_CNT_KNOWN_STORE_FAIL);
		return NULL;
	}
	know(task, k);
	*adopted = true;
	return k;
}

/* An unexplained record the ring had no room for: an event like any other
 * (EXITS, RINGBUF_FULL), and counted apart as unexplained. */
static __always_inline void unexplained_lost(void)
{
	count(CT_CNT_EXITS);
	count(CT_CNT_RINGBUF_FULL);
	count(CT_CNT_UNEXPLAINED);
	count(CT_CNT_UNEXPLAINED_RINGBUF_FULL);
}

/* Sends an unexplained record built in the ring: its identity, the
 * counters, and a --policy's decision. */
static __always_inline void unexplained_send(struct task_struct *task, struct ct_event *e)
{
	e->syscall = CT_SYS_UNEXPLAINED;
	e->pid = task->tgid;
	e->tid = task->pid;
	__builtin_memcpy(e->comm, task->comm, sizeof(e->comm));
	read_identity(task, e);
	count(CT_CNT_EXITS);
	count(CT_CNT_UNEXPLAINED);
	if (policy_selectors) {
		__u64 d = policy_decide(e);

		if (!(__u32)d) {
			bpf_ringbuf_discard(e, 0);
			return;
		}
		policy_posted(e, d >> 32);
	}
	bpf_ringbuf_submit(e, CT_SUBMIT_FLAGS);
}

/* A recorded call is in flight on the task: a change now is that call's. */
static __always_inline bool call_in_flight(struct task_struct *task)
{
	struct ct_inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);

	return f && f->pending;
}

/*
 * Compares `task`'s credentials with its last known ones (`full`: contents
 * too, even when the pointer is the same) and sends an unexplained event
 * when they differ. The event is built in the ring buffer itself: a
 * per-CPU scratch could be in use by a program this one interrupted.
 * Returns the task's known entry when it holds these credentials, else NULL.
 */
static __always_inline struct ct_known *check(struct task_struct *task, __u32 where, bool full)
{
	const struct cred *cred;
	struct ct_known *k;
	struct ct_event *e;
	bool adopted;
	__u64 seen, now;

	if (!in_scope(task))
		return NULL;
	count(CT_CNT_CHECKS);
	k = known_of(task, &adopted);
	if (!k || adopted)
		return NULL;
	seen = k->cred;
	/*
	 * The credentials after the known pointer, never before: read first,
	 * they could predate a call the task has completed since, whose exit
	 * has made its result known (with `seen` its pointer and no call in
	 * flight any more), and that legitimate change would look
	 * unexplained. (Found by a flat-out storm under a sweep.)
	 */
	barrier();
	cred = task->real_cred;
	/* The sweep forgets an override that ended, so the same struct cred
	 * swapped in again (&init_cred, say) is reported again. */
	if (full && k->subjective_cred && task->cred == cred)
		k->subjective_cred = 0;
	if (seen == (__u64)cred && !full) {
		/* The hot path (every switch-out): jiffies, not a clock read. */
		if (where == CT_CHECK_SWITCH)
			k->seen_jiffies = bpf_jiffies64();
		return k;
	}
	now = bpf_ktime_get_boot_ns();
	if (cred_matches(cred, k)) {
		if (seen != (__u64)cred) {
			/* A new struct cred with the same contents (keyrings,
			 * LSM labels): nothing to report. */
			count(CT_CNT_CRED_SWAPS);
			__sync_val_compare_and_swap(&k->cred, seen, (__u64)cred);
		}
		k->seen_ns = now;
		return k;
	}
	/* Different: not ours to report while an exec or a recorded call
	 * is changing them (their hooks update the known set). */
	if (k->exec_ns && now - k->exec_ns < CT_EXEC_GRACE_NS)
		return NULL;
	if (call_in_flight(task))
		return NULL;
	count(CT_CNT_CRED_SWAPS);
	/*
	 * Claim the entry before anything is counted or sent: the task's own
	 * exit hook (on another CPU) may have made these credentials known
	 * since `seen` was read, and this check then lost the race and has
	 * nothing to report. (Claiming after the reservation counted such a
	 * race as a lost unexplained change whenever the ring was full.)
	 */
	if (__sync_val_compare_and_swap(&k->cred, seen, 0) != seen)
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		unexplained_lost();
		/* Known from now on: one loss, not one per check. */
		know(task, k);
		return NULL;
	}
	/* Reserved whole (a constant size): the record says how many of its
	 * groups count. */
	__builtin_memset(e, 0, CT_EVENT_HEAD_SIZE);
	e->type = CT_REC_EVENT;
	__builtin_memcpy(&e->old_creds, &k->creds, sizeof(e->old_creds));
	__builtin_memcpy(e->groups, k->groups, sizeof(k->groups));
	e->old_kept = group_count(&k->creds);
	if (k->creds.ngroups > CT_MAX_GROUPS)
		e->flags |= CT_FLAG_OLD_GROUPS_TRUNC;
	/* The window: unchanged at last_seen, changed at now. */
	e->args[1] = (__s64)last_seen_ns(k, now);
	know(task, k);
	__builtin_memcpy(&e->new_creds, &k->creds, sizeof(e->new_creds));
	__builtin_memcpy(event_groups(e, e->old_kept), k->groups, sizeof(k->groups));
	e->new_kept = group_count(&k->creds);
	if (k->creds.ngroups > CT_MAX_GROUPS)
		e->flags |= CT_FLAG_NEW_GROUPS_TRUNC;
	e->old_creds.no_new_privs = e->new_creds.no_new_privs;
	note_userns(cred);
	e->args[0] = where;
	e->ktime_ns = now;
	unexplained_send(task, e);
	return NULL;
}

/* A child starts with the credentials it was created with (threads too:
 * each thread has its own). */
static __always_inline void know_child(struct task_struct *child)
{
	struct ct_known *k = bpf_task_storage_get(&known, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (k)
		know(child, k);
	else
		count(CT_CNT_KNOWN_STORE_FAIL);
}

#define PF_IO_WORKER 0x00000010
#define PF_KTHREAD 0x00200000

/*
 * Subjective credentials (task->cred), which the kernel checks for file
 * access, signals and most permissions. override_creds() points them
 * elsewhere for a while (faccessat, io_uring personalities, overlayfs,
 * NFS, coredumps) and revert_creds() points them back before the syscall
 * returns; commit_creds() refuses to run inside such a window. So a task
 * whose cred is not its real_cred at a moment where no window can be
 * open (returning to user space, entering exec, at a recorded call's
 * exit) runs with credentials no call gave it: a kernel exploit's
 * favourite, as it leaves real_cred, and with it /proc and every
 * objective check, untouched.
 * Kernel threads and io_uring workers run no user code and live in such
 * windows (nfsd, io-wq personalities): never reported.
 * The record: old_creds the objective set, new_creds the subjective one,
 * args[0] where, args[2] the syscall returning (or -1).
 */
static __always_inline void check_subjective(struct task_struct *task, __u32 where, long nr)
{
	const struct cred *cred = task->cred;
	struct ct_known *k;
	struct ct_event *e;
	__u32 old_kept;
	bool adopted;
	__u64 now;

	if (cred == task->real_cred || (task->flags & (PF_KTHREAD | PF_IO_WORKER)) ||
	    !in_scope(task))
		return;
	k = known_of(task, &adopted);
	if (!k)
		return;
	/* Claimed before anything is sent: one record per override, even
	 * when two hooks on this exit both look. */
	if (__sync_lock_test_and_set(&k->subjective_cred, (__u64)cred) == (__u64)cred)
		return;
	count(CT_CNT_SUBJECTIVE);
	now = bpf_ktime_get_boot_ns();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		unexplained_lost();
		return;
	}
	__builtin_memset(e, 0, CT_EVENT_HEAD_SIZE);
	e->type = CT_REC_EVENT;
	e->flags = CT_FLAG_SUBJECTIVE;
	old_kept = read_creds(task, &e->old_creds, event_groups(e, 0), &e->flags,
			      CT_FLAG_OLD_GROUPS_TRUNC);
	e->old_kept = old_kept;
	/* clang knows old_kept <= CT_MAX_GROUPS and drops event_groups' mask;
	 * the verifier does not know it and needs the mask. */
	barrier_var(old_kept);
	e->new_kept = read_cred_set(cred, &e->new_creds, event_groups(e, old_kept), &e->flags,
				    CT_FLAG_NEW_GROUPS_TRUNC);
	e->new_creds.no_new_privs = e->old_creds.no_new_privs;
	note_userns(cred);
	e->args[0] = where;
	/* No window: the override began at an unknown time. */
	e->args[1] = (__s64)now;
	e->args[2] = nr;
	e->ktime_ns = now;
	unexplained_send(task, e);
}

/* Every return to user space from a syscall, native or ia32: two pointer
 * loads and a compare on the way out, but a raw tracepoint program on
 * every syscall of the host (+45 ns measured), so loaded only with
 * --subjective-check; recorded calls and execs are checked either way. */
SEC("tp_btf/sys_exit")
int BPF_PROG(subjective_check, struct pt_regs *regs, long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();

	count(CT_CNT_RETURN_CHECKS);
	if (task->cred != task->real_cred)
		check_subjective(task, CT_CHECK_RETURN, regs->orig_ax);
	return 0;
}

/* Every task reaches a switch-out soon: a pointer comparison, and the
 * time of confirmation, for the task leaving the CPU. Loaded unless
 * --no-switch-check. */
SEC("tp_btf/sched_switch")
int BPF_PROG(switch_check, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	check(prev, CT_CHECK_SWITCH, false);
	return 0;
}

/* The sweep: userspace runs this task iterator every --sweep-interval, so
 * a task that changed and has not run since (asleep right after an
 * exploit) is still found, and contents are compared in full. */
SEC("iter/task")
int sweep(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (!task)
		return 0;
	count(CT_CNT_SWEEP_TASKS);
	check(task, CT_CHECK_SWEEP, true);
	return 0;
}

#endif /* CREDTRAIL_DETECT_BPF_H */
