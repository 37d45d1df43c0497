/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The event ABI between the BPF programs and userspace, defined once.
 * Rust uses the skeleton's generated copies of these types; never mirror
 * them by hand. Fixed-width fields only, explicit padding, no bool.
 */
#ifndef CREDTRAIL_H
#define CREDTRAIL_H

#define CT_COMM_LEN 16
/* Groups kept per event (requested, before, after). NGROUPS_MAX is 65536;
 * the true count is always recorded and CT_FLAG_*_TRUNC says when the list
 * was cut. */
#define CT_MAX_GROUPS 32

/* Bump when the layout of struct ct_event changes. Userspace refuses a
 * mismatched object, so a stale build cannot silently misdecode. */
#define CT_ABI_VERSION 1

enum ct_syscall {
	CT_SYS_NONE = 0,
	CT_SYS_SETUID = 1,
	CT_SYS_SETGID = 2,
	CT_SYS_SETFSUID = 3,
	CT_SYS_SETFSGID = 4,
	CT_SYS_SETREUID = 5,
	CT_SYS_SETREGID = 6,
	CT_SYS_SETRESUID = 7,
	CT_SYS_SETRESGID = 8,
	CT_SYS_SETGROUPS = 9,
	CT_SYS_CAPSET = 10,
};

/* Event flags (bit set). */
enum ct_flag {
	/* Reading the requested capset masks or setgroups list from user memory failed. */
	CT_FLAG_ARGS_FAULT = 1 << 0,
	/* More requested groups than CT_MAX_GROUPS: the list holds the first ones. */
	CT_FLAG_REQ_GROUPS_TRUNC = 1 << 1,
	CT_FLAG_OLD_GROUPS_TRUNC = 1 << 2,
	CT_FLAG_NEW_GROUPS_TRUNC = 1 << 3,
};

/* Loss and bookkeeping counters, one slot each in a per-CPU array. */
enum ct_counter {
	/* Exits that produced an event (whether or not the ring buffer took it). */
	CT_CNT_EXITS = 0,
	/* Ring buffer full: the event was lost. */
	CT_CNT_RINGBUF_FULL = 1,
	/* Enter could not remember the call (in-flight map full): the event was lost. */
	CT_CNT_ENTER_STORE_FAIL = 2,
	/* Exit with no remembered enter (started mid-call, or the store failed). */
	CT_CNT_EXIT_NO_ENTER = 3,
	CT_CNT_MAX = 4,
};

/* The full credential set of a task at one instant. */
struct ct_creds {
	__u32 uid;
	__u32 euid;
	__u32 suid;
	__u32 fsuid;
	__u32 gid;
	__u32 egid;
	__u32 sgid;
	__u32 fsgid;
	__u64 cap_effective;
	__u64 cap_permitted;
	__u64 cap_inheritable;
	__u64 cap_bounding;
	__u64 cap_ambient;
	__u32 securebits;
	/* Supplementary groups: true count, first CT_MAX_GROUPS entries. */
	__u32 ngroups;
	__u32 groups[CT_MAX_GROUPS];
};

/* One credential-changing syscall, emitted at its exit. */
struct ct_event {
	__u64 ktime_ns; /* CLOCK_BOOTTIME at exit */
	__u32 pid;      /* tgid */
	__u32 tid;
	__u32 ppid;     /* real parent's tgid */
	__u32 syscall;  /* enum ct_syscall */
	__s64 args[3];  /* requested values, sign-extended; -1 = unchanged */
	__s64 ret;
	__u32 auid;
	__u32 sessionid;
	__u64 cgroup_id;
	__u32 pidns_inum;
	__u32 ns_pid;
	__u32 flags;    /* enum ct_flag */
	__u32 req_ngroups; /* setgroups: requested count as passed (clamped at 0) */
	__u32 req_groups[CT_MAX_GROUPS];
	struct ct_creds old_creds;
	struct ct_creds new_creds;
	char comm[CT_COMM_LEN];
};

#endif /* CREDTRAIL_H */
