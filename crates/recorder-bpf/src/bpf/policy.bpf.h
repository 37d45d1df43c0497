/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * --policy: the TracingPolicy selectors in the kernel. Every credential
 * event is decided here once it is complete and before it takes ring
 * buffer space: an excluded event costs the recorder nothing.
 *
 * The steps are those of crates/pipeline/src/policy/decide.rs, which replays
 * them over recorded events; change both together.
 * Included once, by credtrail.bpf.c: one BPF object, several files.
 */
#ifndef CREDTRAIL_POLICY_BPF_H
#define CREDTRAIL_POLICY_BPF_H

/* Selectors loaded; 0 = no --policy, and the checks below compile away. */
const volatile __u32 policy_selectors = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CT_POL_SELECTORS);
	__type(key, __u32);
	__type(value, struct ct_selector);
} policy SEC(".maps");

/* When each selector last posted a call with these arguments. */
/* The values of the selectors' sets (namespaces, pids, Equal arguments). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CT_POL_SELECTORS * (CT_FIELD_ARG + CT_POL_ARGS) * CT_POL_VALUES);
	__type(key, struct ct_pol_value_key);
	__type(value, __u8);
} policy_values SEC(".maps");

/* When each selector last posted a call with these arguments. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_POL_RATE_ENTRIES);
	__type(key, struct ct_rate_key);
	__type(value, __u64);
} policy_rate SEC(".maps");

static __always_inline bool pol_has(__u32 selector, __u32 field, __s64 value)
{
	struct ct_pol_value_key k = { .selector = selector, .field = field, .value = value };

	return bpf_map_lookup_elem(&policy_values, &k) != NULL;
}

static __always_inline bool pol_set_ok(__u32 op, __u32 selector, __u32 field, __s64 value)
{
	if (op == CT_SET_ANY)
		return true;
	return pol_has(selector, field, value) != (op == CT_SET_NOT_IN);
}

static __always_inline bool pol_arg_ok(const struct ct_pol_arg *a, __u32 selector, __u32 slot,
				       const struct ct_event *e)
{
	__s64 v;

	if (a->index == CT_POL_RETURN)
		v = e->ret;
	else if (a->index < 3)
		v = e->args[a->index];
	else
		return false;
	switch (a->op) {
	case CT_ARG_EQUAL:
		return pol_has(selector, CT_FIELD_ARG + slot, v);
	case CT_ARG_NOT_EQUAL:
		return !pol_has(selector, CT_FIELD_ARG + slot, v);
	case CT_ARG_GT:
		return v > a->value;
	case CT_ARG_LT:
		return v < a->value;
	case CT_ARG_MASK:
		return (v & a->value) != 0;
	}
	return false;
}

static __always_inline __u64 pol_caps_of(const struct ct_creds *c, __u32 set)
{
	if (set == 1)
		return c->cap_permitted;
	if (set == 2)
		return c->cap_inheritable;
	return c->cap_effective;
}

static __always_inline bool pol_cap_ok(const struct ct_pol_cap *c, const struct ct_event *e)
{
	__u64 held;

	/* Capabilities in a user namespace below the host's are none over the host. */
	if (!c->ns_cap && e->old_creds.userns_level > 0)
		return c->negate;
	held = pol_caps_of(&e->old_creds, c->set);
	if (c->change)
		held ^= pol_caps_of(&e->new_creds, c->set);
	return ((held & c->mask) != 0) != (bool)c->negate;
}

static __always_inline bool pol_selector_ok(const struct ct_selector *s, __u32 idx,
					    const struct ct_event *e)
{
	if (!pol_set_ok(s->pidns_op, idx, CT_FIELD_PIDNS, e->pidns_inum) ||
	    !pol_set_ok(s->userns_op, idx, CT_FIELD_USERNS, e->old_creds.userns_inum) ||
	    !pol_set_ok(s->pids_op, idx, CT_FIELD_PID, s->ns_pid ? e->ns_pid : e->pid))
		return false;
	for (__u32 i = 0; i < CT_POL_ARGS; i++) {
		if (i >= s->nargs)
			break;
		if (!pol_arg_ok(&s->args[i], idx, i, e))
			return false;
	}
	for (int i = 0; i < CT_POL_CAPS; i++) {
		if (i >= s->ncaps)
			break;
		if (!pol_cap_ok(&s->caps[i], e))
			return false;
	}
	return true;
}

static __always_inline void pol_rate_key(struct ct_rate_key *k, __u32 i,
					 const struct ct_selector *s, const struct ct_event *e)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->selector = i;
	k->scope = s->rate_scope == 0 ? e->tid : s->rate_scope == 1 ? e->pid : 0;
	k->syscall = e->syscall;
	k->args[0] = e->args[0];
	k->args[1] = e->args[1];
	k->args[2] = e->args[2];
}

/* The walk over the selectors, as bpf_loop's context. */
struct pol_walk {
	const struct ct_event *e;
	__u64 policies;
	__u64 selectors;
	__u32 decided;
	__u32 limited;
	/* The kprobe past a selector userspace decides. */
	__u32 maybe_kprobe;
	__u32 pad;
};

/* One selector; returns 1 past the last. */
static long pol_step(__u64 i, struct pol_walk *w)
{
	const struct ct_event *e = w->e;
	struct ct_selector *s;
	struct ct_rate_key key;
	__u32 idx = i;
	__u64 *last;

	if (idx >= policy_selectors)
		return 1;
	s = bpf_map_lookup_elem(&policy, &idx);
	if (!s)
		return 1;
	if (s->kprobe == w->decided)
		return 0;
	if (!(s->calls & (1ULL << (e->syscall & 63))) || !(s->abis & (1U << (e->abi & 31))))
		return 0;
	if (!pol_selector_ok(s, idx, e))
		return 0;
	if (s->maybe || w->maybe_kprobe == s->kprobe) {
		/* Userspace decides: send what may be posted, without this
		 * selector's rate limit (userspace keeps it). */
		w->maybe_kprobe = s->kprobe;
		if (!s->maybe)
			w->decided = s->kprobe;
		if (s->post)
			w->policies |= 1ULL << (s->policy & 31);
		return 0;
	}
	/* The first matching selector decides for its kprobe. */
	w->decided = s->kprobe;
	if (!s->post)
		return 0;
	if (s->rate_ns) {
		pol_rate_key(&key, idx, s, e);
		last = bpf_map_lookup_elem(&policy_rate, &key);
		if (last && e->ktime_ns - *last < s->rate_ns) {
			w->limited = 1;
			return 0;
		}
	}
	w->policies |= 1ULL << (s->policy & 31);
	w->selectors |= 1ULL << (idx & 31);
	return 0;
}

/*
 * The policies that post a complete event (bits 0..31) and the selectors
 * that did (bits 32..63). A global function walking the selectors with
 * bpf_loop: verified once per program, not once per selector, which kept
 * start-up at seconds per policy otherwise.
 */
__noinline __u64 policy_decide(const struct ct_event *e)
{
	struct pol_walk w = { .e = e, .decided = (__u32)-1, .maybe_kprobe = (__u32)-1 };

	if (!e)
		return 0;
	bpf_loop(CT_POL_SELECTORS, pol_step, &w, 0);
	if (!w.policies) {
		count(CT_CNT_POLICY_FILTERED);
		if (w.limited)
			count(CT_CNT_POLICY_RATE_LIMITED);
	}
	return w.policies | (w.selectors << 32);
}

struct pol_posted {
	const struct ct_event *e;
	__u32 selectors;
};

static long pol_posted_step(__u64 i, struct pol_posted *p)
{
	struct ct_selector *s;
	struct ct_rate_key key;
	__u32 idx = i;

	if (!(p->selectors & (1U << (idx & 31))))
		return 0;
	s = bpf_map_lookup_elem(&policy, &idx);
	if (!s || !s->rate_ns)
		return 0;
	pol_rate_key(&key, idx, s, p->e);
	bpf_map_update_elem(&policy_rate, &key, &p->e->ktime_ns, BPF_ANY);
	return 0;
}

/* The event was sent: the posting selectors' rate limits start again. */
__noinline int policy_posted(const struct ct_event *e, __u32 selectors)
{
	struct pol_posted p = { .e = e, .selectors = selectors };

	if (!e)
		return 0;
	bpf_loop(CT_POL_SELECTORS, pol_posted_step, &p, 0);
	return 0;
}

#endif /* CREDTRAIL_POLICY_BPF_H */
