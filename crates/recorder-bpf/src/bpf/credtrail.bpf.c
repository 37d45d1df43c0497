// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * credtrail: record every credential-changing call with the caller's full
 * credentials before and after.
 *
 * Per-syscall tracepoints by default: on the target kernels kprobes,
 * fentry/fexit and BPF LSM are unavailable, and a raw sys_enter hook taxes
 * every syscall (~88 ns vs ~48 ns measured). Those tracepoints do not fire
 * for 32-bit (ia32) entries: the raw sys_enter/sys_exit pair below, loaded
 * only with --compat-syscalls, sees those and nothing else.
 *
 * At enter we remember the arguments and the credentials per thread; at
 * exit we emit one event with the return value and the new credentials.
 * Options of prctl, unshare, setns and io_uring_register that change no
 * credentials are filtered here and cost no ring buffer space, and so are
 * the events a --policy excludes (policy.bpf.h).
 *
 * Whatever changes credentials without such a call (an unhooked entry, a
 * kernel exploit) is found by comparing each task's credentials with the
 * last ones we saw: detect.bpf.h.
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
enum ct_record _ct_record = CT_REC_EVENT;
enum ct_proc_kind _ct_proc_kind = CT_PROC_EXEC;
enum ct_proc_flag _ct_proc_flag = CT_PF_ARGS_TRUNC;
enum ct_syscall _ct_syscall = CT_SYS_NONE;
enum ct_flag _ct_flag = CT_FLAG_ARGS_FAULT;
enum ct_counter _ct_counter = CT_CNT_EXITS;
enum ct_abi _ct_abi = CT_ABI_X64;
enum ct_check _ct_check = CT_CHECK_SWITCH;
struct ct_userns_event _ct_userns_event = {};
struct ct_selector _ct_selector = {};
struct ct_rate_key _ct_rate_key = {};
struct ct_pol_value_key _ct_pol_value_key = {};
enum ct_pol_field _ct_pol_field = CT_FIELD_PIDNS;
struct ct_fold_key _ct_fold_key = {};
struct ct_fold _ct_fold = {};

/* Read by userspace to refuse a mismatched object. */
const volatile __u32 abi_version = CT_ABI_VERSION;
/* Set by the loader: 1 when cgroup v1 controllers hold the container
 * cgroups (hybrid hosts), so names come from the memory hierarchy; 0 for
 * the unified (v2) hierarchy. */
const volatile __u32 cgroup_v1 = 0;

#define MAX_PID_NS_LEVEL 32
#define LINUX_CAPABILITY_VERSION_1 0x19980330
#define CLONE_NEWUSER 0x10000000
#define PR_SET_KEEPCAPS 8
#define PR_CAPBSET_DROP 24
#define PR_SET_SECUREBITS 28
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define IORING_REGISTER_PERSONALITY 9
#define IORING_UNREGISTER_PERSONALITY 10
#define PFA_NO_NEW_PRIVS 0 /* bit of task_struct.atomic_flags */
#define TS_COMPAT 0x0002   /* thread_info.status: in a 32-bit syscall */

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
	/* setns with nstype 0: an event only if the user namespace changed. */
	__u32 only_if_userns_changed;
	/* The credentials' group_info at enter: the same one at exit means
	 * the same groups, sent once. */
	__u64 old_group_info;
	/* The thread group's pid namespace and pid in it, once read. */
	__u32 pid_ns_known;
	__u32 ns_pid;
	__u32 pidns_inum;
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

/* User namespaces already sent, with the extent counts they had then. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} userns_sent SEC(".maps");

/* A credential set with its groups, kept between two hooks. */
struct ct_stash {
	struct ct_creds creds;
	__u32 groups[CT_MAX_GROUPS];
};

/* Credentials before exec, keyed by the exec'ing thread's tid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct ct_stash);
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

/* In dependency order. */
#include "creds.bpf.h"
#include "scope.bpf.h"
#include "policy.bpf.h"
#include "fair.bpf.h"
#include "detect.bpf.h"
#include "calls.bpf.h"
#include "lifecycle.bpf.h"
#include "compat.bpf.h"
