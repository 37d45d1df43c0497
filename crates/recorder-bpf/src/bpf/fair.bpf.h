/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A flood hides nothing. While the ring buffer is filling, each process
 * (thread group) may send a share of events per window; past it, its calls
 * are counted by transition (the same thread, call, arguments, result and
 * credentials before and after) in the fold map, and userspace writes each
 * transition once with its count. A process within its share is never
 * crowded out by another's storm: the ring keeps room for it.
 *
 * The share shrinks as the ring fills, so a flood cannot take the last of
 * it; a process that varies every call (nothing to fold) loses what the
 * fold map cannot hold, counted against it in lost_by_tgid.
 */
#ifndef CREDTRAIL_FAIR_BPF_H
#define CREDTRAIL_FAIR_BPF_H

/* Share windows of 2^27 ns (~134 ms). */
#define CT_SHARE_WINDOW_SHIFT 27

struct ct_share {
	__u64 window;
	__u64 used;
	/* Some of its calls were folded: its exit record says so. */
	__u64 folded;
};

/* Events each process sent in the current window while the ring filled.
 * LRU: forgetting a quiet process only gives it a fresh share. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_SHARE_TGIDS);
	__type(key, __u32);
	__type(value, struct ct_share);
} shares SEC(".maps");

/* Transitions folded, by generation. Preallocated: no allocation in the
 * hooks, and a full map is a counted loss, never an eviction. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CT_FOLD_ENTRIES);
	__type(key, struct ct_fold_key);
	__type(value, struct ct_fold);
} folds SEC(".maps");

/* Events lost (ring buffer full, or not foldable), by process. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CT_LOST_TGIDS);
	__type(key, __u32);
	__type(value, __u64);
} lost_by_tgid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_fold_key);
} fold_scratch SEC(".maps");

/* The generation the hooks fold into; userspace flips it, waits until no
 * hook is still folding into the old one (fold_active), then drains it. */
__u32 fold_gen;
__u64 fold_active[2];

/* How far behind the recorder's encoder is (0..3), set by userspace from
 * its spool: a drain that keeps the ring empty by spooling a flood to disk
 * is pressure too, and folding then spares it the writing. */
__u32 backlog_level;

/* Events a process may send per window at the pressure level: the ring's
 * fill (a quarter, half, three quarters) or the backlog, whichever is
 * higher; 0 without pressure (no limit). */
static __always_inline __u64 share_limit(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	__u64 used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u32 level = *(volatile __u32 *)&backlog_level;
	__u32 ring = used * 4 / (size ? size : 1);

	if (ring > level)
		level = ring;
	switch (level) {
	case 0:
		return 0;
	case 1:
		return 1024;
	case 2:
		return 128;
	default:
		return 16;
	}
}

/* Counts an event against its process's share; returns the share when
 * the process is over it (the first event of a process never is: every
 * limit is at least 16). */
static __always_inline struct ct_share *over_share(__u32 tgid, __u64 now, __u64 limit)
{
	__u64 window = now >> CT_SHARE_WINDOW_SHIFT;
	struct ct_share *s = bpf_map_lookup_elem(&shares, &tgid);
	struct ct_share fresh = { .window = window, .used = 1 };

	if (!s) {
		bpf_map_update_elem(&shares, &tgid, &fresh, BPF_ANY);
		return NULL;
	}
	if (s->window != window) {
		/* Threads of one process may race here: a window starts twice
		 * at worst. */
		s->window = window;
		s->used = 0;
	}
	return __sync_fetch_and_add(&s->used, 1) + 1 > limit ? s : NULL;
}

/* Whether calls of the thread group were folded; forgets it (at exit). */
static __always_inline bool take_folded_mark(__u32 tgid)
{
	struct ct_share *s = bpf_map_lookup_elem(&shares, &tgid);

	if (!s || !s->folded)
		return false;
	bpf_map_delete_elem(&shares, &tgid);
	return true;
}

static __noinline void lost_by(__u32 tgid)
{
	__u64 one = 1;
	__u64 *c = bpf_map_lookup_elem(&lost_by_tgid, &tgid);

	if (c) {
		__sync_fetch_and_add(c, 1);
		return;
	}
	if (!bpf_map_update_elem(&lost_by_tgid, &tgid, &one, BPF_NOEXIST))
		return;
	c = bpf_map_lookup_elem(&lost_by_tgid, &tgid);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		count(CT_CNT_LOST_UNATTRIBUTED);
}

/* Counts the event in the fold map; false when it cannot (then lost). */
static __noinline bool fold_event(const struct ct_event *e)
{
	__u32 zero = 0, gen, kept, i;
	struct ct_fold_key *k = bpf_map_lookup_elem(&fold_scratch, &zero);
	struct ct_fold fresh = {};
	struct ct_fold *v;
	bool done = false;

	if (!k || !e)
		return false;
	kept = e->req_kept + e->old_kept + e->new_kept;
	if (kept > CT_FOLD_GROUPS)
		return false;
	__builtin_memcpy(k->head, e, CT_EVENT_HEAD_SIZE);
	((struct ct_event *)k->head)->ktime_ns = 0;
	for (i = 0; i < CT_FOLD_GROUPS; i++)
		k->groups[i] = i < kept ? e->groups[i] : 0;
	/* Enter the generation, and make sure it is still the current one:
	 * userspace, having flipped it, waits for the old one's count to fall
	 * to zero before it drains. */
	gen = *(volatile __u32 *)&fold_gen & 1;
	__sync_fetch_and_add(&fold_active[gen], 1);
	if ((*(volatile __u32 *)&fold_gen & 1) != gen) {
		__sync_fetch_and_add(&fold_active[gen], -1);
		gen ^= 1;
		__sync_fetch_and_add(&fold_active[gen], 1);
	}
	k->gen = gen;
	k->pad = 0;
	v = bpf_map_lookup_elem(&folds, k);
	if (!v) {
		fresh.count = 1;
		fresh.first_ns = e->ktime_ns;
		fresh.last_ns = e->ktime_ns;
		if (!bpf_map_update_elem(&folds, k, &fresh, BPF_NOEXIST))
			done = true;
		else
			v = bpf_map_lookup_elem(&folds, k); /* another CPU made it */
	}
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		if (v->last_ns < e->ktime_ns)
			v->last_ns = e->ktime_ns;
		done = true;
	}
	__sync_fetch_and_add(&fold_active[gen], -1);
	return done;
}

/*
 * Sends a complete event built outside the ring buffer (only the groups it
 * carries), unless no policy posts it; folds it when its process is over
 * its share of a filling ring.
 */
static __always_inline void emit_event(struct ct_event *e)
{
	struct ct_share *over = NULL;
	__u64 d = 0, limit;

	if (policy_selectors) {
		d = policy_decide(e);
		if (!(__u32)d)
			return;
	}
	limit = share_limit();
	if (limit)
		over = over_share(e->pid, e->ktime_ns, limit);
	if (over) {
		if (fold_event(e)) {
			/* Not counted here: userspace counts what it takes. */
			over->folded = 1;
		} else {
			count(CT_CNT_FOLD_FULL);
			lost_by(e->pid);
		}
		return;
	}
	if (bpf_ringbuf_output(&events, e, event_size(e), CT_SUBMIT_FLAGS)) {
		count(CT_CNT_RINGBUF_FULL);
		lost_by(e->pid);
		return;
	}
	if (d >> 32)
		policy_posted(e, d >> 32);
}

#endif /* CREDTRAIL_FAIR_BPF_H */
