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
enum ct_syscall _ct_syscall = CT_SYS_NONE;
enum ct_flag _ct_flag = CT_FLAG_ARGS_FAULT;
enum ct_counter _ct_counter = CT_CNT_EXITS;

/* Read by userspace to refuse a mismatched object. */
const volatile __u32 abi_version = CT_ABI_VERSION;

#define MAX_PID_NS_LEVEL 32
#define LINUX_CAPABILITY_VERSION_1 0x19980330

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Resized by the loader (--ring-buffer-mib) before load. */
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

/* Calls between enter and exit, keyed by pid_tgid (tid in the low half). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ct_event);
} inflight SEC(".maps");

/* struct ct_event is larger than the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_event);
} scratch SEC(".maps");

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

static __always_inline void read_groups(const struct cred *cred, struct ct_creds *out,
					__u32 *flags, __u32 trunc_flag)
{
	struct group_info *gi = BPF_CORE_READ(cred, group_info);
	int n;

	out->ngroups = 0;
	if (!gi)
		return;
	n = BPF_CORE_READ(gi, ngroups);
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
	const struct cred *cred = BPF_CORE_READ(task, real_cred);

	out->uid = BPF_CORE_READ(cred, uid.val);
	out->euid = BPF_CORE_READ(cred, euid.val);
	out->suid = BPF_CORE_READ(cred, suid.val);
	out->fsuid = BPF_CORE_READ(cred, fsuid.val);
	out->gid = BPF_CORE_READ(cred, gid.val);
	out->egid = BPF_CORE_READ(cred, egid.val);
	out->sgid = BPF_CORE_READ(cred, sgid.val);
	out->fsgid = BPF_CORE_READ(cred, fsgid.val);
	out->cap_effective = BPF_CORE_READ(cred, cap_effective.val);
	out->cap_permitted = BPF_CORE_READ(cred, cap_permitted.val);
	out->cap_inheritable = BPF_CORE_READ(cred, cap_inheritable.val);
	out->cap_bounding = BPF_CORE_READ(cred, cap_bset.val);
	out->cap_ambient = BPF_CORE_READ(cred, cap_ambient.val);
	out->securebits = BPF_CORE_READ(cred, securebits);
	read_groups(cred, out, flags, trunc_flag);
}

static __always_inline void read_identity(struct task_struct *task, struct ct_event *e)
{
	struct pid *tp;
	struct upid up = {};
	unsigned int level;

	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	if (bpf_core_field_exists(task->loginuid)) {
		e->auid = BPF_CORE_READ(task, loginuid.val);
		e->sessionid = BPF_CORE_READ(task, sessionid);
	} else {
		e->auid = (__u32)-1;
		e->sessionid = (__u32)-1;
	}
	e->cgroup_id = bpf_get_current_cgroup_id();

	/* The thread group's pid as seen from its own (innermost) pid namespace. */
	tp = BPF_CORE_READ(task, group_leader, thread_pid);
	level = BPF_CORE_READ(tp, level);
	if (level <= MAX_PID_NS_LEVEL) {
		bpf_core_read(&up, sizeof(up), &tp->numbers[level]);
		e->ns_pid = up.nr;
		e->pidns_inum = BPF_CORE_READ(up.ns, ns.inum);
	}
}

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
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 zero = 0;
	struct ct_event *e = bpf_map_lookup_elem(&scratch, &zero);

	if (!e)
		return 0;
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
	if (bpf_map_update_elem(&inflight, &id, e, BPF_ANY))
		count(CT_CNT_ENTER_STORE_FAIL);
	return 0;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct ct_event *pending, *e;

	pending = bpf_map_lookup_elem(&inflight, &id);
	if (!pending) {
		count(CT_CNT_EXIT_NO_ENTER);
		return 0;
	}
	count(CT_CNT_EXITS);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CT_CNT_RINGBUF_FULL);
		bpf_map_delete_elem(&inflight, &id);
		return 0;
	}
	bpf_probe_read_kernel(e, sizeof(*e), pending);
	bpf_map_delete_elem(&inflight, &id);

	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->ret = ctx->ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	read_identity(task, e);
	read_creds(task, &e->new_creds, &e->flags, CT_FLAG_NEW_GROUPS_TRUNC);
	bpf_ringbuf_submit(e, 0);
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
