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
#define CT_ABI_VERSION 5

/* Lifecycle record bounds. Paths and argv longer than these are cut and
 * flagged (CT_PF_*_TRUNC), never silently. */
#define CT_FILENAME_MAX 512
#define CT_ARGS_MAX 1024    /* power of two */
#define CT_CWD_MAX 1024     /* power of two: path bytes kept */
#define CT_NAME_MAX 256     /* one path component (NAME_MAX 255) */
#define CT_CWD_DEPTH 48     /* path components walked */
#define CT_CGROUP_NAME_MAX 128
#define CT_CGROUP_LEVELS 4  /* cgroup path components kept, leaf first */

/*
 * The first field of every ring record: records differ in length (a
 * credential event carries only the groups it has), not in a fixed size.
 */
enum ct_record {
	CT_REC_EVENT = 1,
	CT_REC_PROC = 2,
	CT_REC_USERNS = 3,
};

/* Groups a credential event can carry: requested, before and after, each
 * CT_MAX_GROUPS at most. The array is larger than 3 * CT_MAX_GROUPS so a
 * list written at a masked offset (what the verifier can bound) fits. */
#define CT_TAIL_GROUPS (4 * CT_MAX_GROUPS + CT_MAX_GROUPS)

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
	/* Credentials changed by exec (setuid/setgid bit, file capabilities). */
	CT_SYS_EXECVE = 11,
	/* prctl options that change capabilities, securebits or no_new_privs. */
	CT_SYS_PRCTL = 12,
	/* User namespaces: created (unshare, clone, clone3) or entered (setns). */
	CT_SYS_UNSHARE = 13,
	CT_SYS_SETNS = 14,
	CT_SYS_CLONE = 15,
	CT_SYS_CLONE3 = 16,
	/* io_uring personalities: credentials saved for later requests, and a
	 * request run under one. */
	CT_SYS_IO_URING_REGISTER = 17,
	CT_SYS_IO_URING_SUBMIT = 18,
	/* Credentials that changed with no recorded call to explain it: args[0]
	 * the check that noticed (enum ct_check), args[1] when the old ones
	 * were last confirmed (CLOCK_BOOTTIME). */
	CT_SYS_UNEXPLAINED = 19,
};

/* Where an unexplained change was noticed. */
enum ct_check {
	CT_CHECK_SWITCH = 1, /* the task was switched out */
	CT_CHECK_SWEEP = 2,  /* the periodic sweep over all tasks */
	CT_CHECK_CALL = 3,   /* the task entered a recorded credential call */
	CT_CHECK_EXEC = 4,
	CT_CHECK_FORK = 5,
	CT_CHECK_EXIT = 6,
	/* The task was returning to user space from a syscall (sys_exit):
	 * subjective credentials only (CT_FLAG_SUBJECTIVE). */
	CT_CHECK_RETURN = 7,
};

/* The entry a call came through. */
enum ct_abi {
	CT_ABI_X64 = 0,
	/* int $0x80 or compat sysenter/syscall: 32-bit numbers and arguments. */
	CT_ABI_IA32 = 1,
};

/* User namespace id maps kept per record (UID_GID_MAP_MAX_BASE_EXTENTS). */
#define CT_MAP_EXTENTS 5

/* Kind of a lifecycle record (struct ct_proc_event). */
enum ct_proc_kind {
	CT_PROC_EXEC = 1,
	CT_PROC_FORK = 2,
	CT_PROC_EXIT = 3,
};

/* Lifecycle record flags (bit set). */
enum ct_proc_flag {
	CT_PF_FILENAME_TRUNC = 1 << 0,
	CT_PF_ARGS_TRUNC = 1 << 1,
	CT_PF_ARGS_FAULT = 1 << 2,
	/* cwd deeper than CT_CWD_DEPTH or longer than CT_CWD_MAX: the tail is kept. */
	CT_PF_CWD_TRUNC = 1 << 3,
	CT_PF_CWD_FAULT = 1 << 4,
	CT_PF_GROUPS_TRUNC = 1 << 5,
	/* exe: as cwd. */
	CT_PF_EXE_TRUNC = 1 << 6,
	CT_PF_EXE_FAULT = 1 << 7,
	/* exit: calls of this process were folded (fair.bpf.h): userspace
	 * takes the folds before it applies the exit, so their rows still
	 * name the process. */
	CT_PF_FOLDED = 1 << 8,
};

/* Processes of one command's tree that can be followed at once. */
#define CT_SCOPE_MAX 65536

/* Event flags (bit set). */
enum ct_flag {
	/* Reading the requested capset masks or setgroups list from user memory failed. */
	CT_FLAG_ARGS_FAULT = 1 << 0,
	/* More requested groups than CT_MAX_GROUPS: the list holds the first ones. */
	CT_FLAG_REQ_GROUPS_TRUNC = 1 << 1,
	CT_FLAG_OLD_GROUPS_TRUNC = 1 << 2,
	CT_FLAG_NEW_GROUPS_TRUNC = 1 << 3,
	/* ia32 16-bit id call (setuid16 family): arguments were 16 bits, 0xffff = -1. */
	CT_FLAG_UID16 = 1 << 4,
	/* The groups after are the groups before (the same group_info): the
	 * record carries them once. */
	CT_FLAG_NEW_GROUPS_SAME = 1 << 5,
	/* An unexplained record of the subjective credentials: the task ran
	 * with task->cred != task->real_cred where no legitimate override
	 * (override_creds) can be open. old_creds are the objective ones
	 * (real_cred), new_creds the subjective ones (cred). */
	CT_FLAG_SUBJECTIVE = 1 << 6,
};

/* Loss and bookkeeping counters, one slot each in a per-CPU array. */
enum ct_counter {
	/* Events produced (whether or not the ring buffer took them): calls
	 * completed and unexplained changes. */
	CT_CNT_EXITS = 0,
	/* Ring buffer full: the event was lost. */
	CT_CNT_RINGBUF_FULL = 1,
	/* Enter could not remember the call (in-flight map full): the event was lost. */
	CT_CNT_ENTER_STORE_FAIL = 2,
	/* Exit with no remembered enter (started mid-call, or the store failed). */
	CT_CNT_EXIT_NO_ENTER = 3,
	/* Lifecycle records produced, and lost to a full ring buffer. */
	CT_CNT_PROC_EVENTS = 4,
	CT_CNT_PROC_RINGBUF_FULL = 5,
	/* Execs whose pre-exec credentials were not stashed (exec under way at
	 * start, or the stash map was full): no execve credential event. */
	CT_CNT_EXEC_NO_STASH = 6,
	/* User namespace records produced, and lost to a full ring buffer. */
	CT_CNT_USERNS = 7,
	CT_CNT_USERNS_RINGBUF_FULL = 8,
	/* Credential checks run (hooks, switch-outs, sweeps). */
	CT_CNT_CHECKS = 9,
	/* New struct cred pointers examined by a check. */
	CT_CNT_CRED_SWAPS = 10,
	/* Unexplained changes found, and those lost to a full ring buffer
	 * (both also in EXITS and RINGBUF_FULL). */
	CT_CNT_UNEXPLAINED = 11,
	CT_CNT_UNEXPLAINED_RINGBUF_FULL = 12,
	/* Tasks visited by sweeps. */
	CT_CNT_SWEEP_TASKS = 13,
	/* Tasks whose known credentials could not be stored: unchecked. */
	CT_CNT_KNOWN_STORE_FAIL = 14,
	/* Events no --policy posted (not sent, not lost), and of those the
	 * ones a rate limit held back. */
	CT_CNT_POLICY_FILTERED = 15,
	CT_CNT_POLICY_RATE_LIMITED = 16,
	/* Lost: a call of a process over its share of a filling ring buffer
	 * (fair.bpf.h) that could not be folded (the fold map was full, or it
	 * carried more than CT_FOLD_GROUPS groups). Also in lost_by_tgid.
	 * Folded calls are counted by userspace as it takes them. */
	CT_CNT_FOLD_FULL = 17,
	/* Lost events (ring buffer full or not folded) whose process could not
	 * be named because lost_by_tgid was full. */
	CT_CNT_LOST_UNATTRIBUTED = 18,
	/* Returns to user space whose subjective credentials were compared
	 * (the sys_exit check), and tasks found running with subjective
	 * credentials not their objective ones (also in UNEXPLAINED when
	 * reported; once per task and struct cred). */
	CT_CNT_RETURN_CHECKS = 19,
	CT_CNT_SUBJECTIVE = 20,
	/* Recording one command's tree (scope.bpf.h): credential calls of
	 * processes outside it (by design, not lost), and processes of the
	 * tree the kernel could not add to it (their events are lost). */
	CT_CNT_OUT_OF_SCOPE = 21,
	CT_CNT_SCOPE_FULL = 22,
	CT_CNT_MAX = 23,
};

/* The credential set of a task at one instant; its supplementary groups
 * travel beside it (a credential event's tail, or a `groups` array). */
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
	/* Supplementary groups: the true count (the list keeps CT_MAX_GROUPS). */
	__u32 ngroups;
	/* The user namespace the credentials belong to: its inode, depth
	 * (0 = the host's) and creator (kuid). */
	__u32 userns_inum;
	__u32 userns_level;
	__u32 userns_owner;
	/* The task's no_new_privs flag (not a credential, but what exec may
	 * grant depends on it). */
	__u32 no_new_privs;
};

/*
 * One credential-changing syscall, emitted at its exit. The ring record
 * stops after the groups it carries (CT_EVENT_HEAD_SIZE + 4 bytes per
 * group): a call that changes one id takes less than half the ring space
 * of the whole struct.
 */
struct ct_event {
	__u32 type;     /* CT_REC_EVENT */
	__u32 flags;    /* enum ct_flag */
	__u64 ktime_ns; /* CLOCK_BOOTTIME at exit */
	__u32 pid;      /* tgid */
	__u32 tid;
	__u32 ppid;     /* real parent's tgid */
	__u32 syscall;  /* enum ct_syscall */
	__u32 abi;      /* enum ct_abi */
	__u32 pad;
	__s64 args[3];  /* requested values, sign-extended; -1 = unchanged */
	__s64 ret;
	__u32 auid;
	__u32 sessionid;
	__u64 cgroup_id;
	__u32 pidns_inum;
	__u32 ns_pid;
	__u32 req_ngroups; /* setgroups: requested count as passed (clamped at 0) */
	/* Groups in `groups`, in this order: requested, before, after (none
	 * after with CT_FLAG_NEW_GROUPS_SAME). */
	__u32 req_kept;
	__u32 old_kept;
	__u32 new_kept;
	struct ct_creds old_creds;
	struct ct_creds new_creds;
	char comm[CT_COMM_LEN];
	__u32 groups[CT_TAIL_GROUPS];
};

#define CT_EVENT_HEAD_SIZE __builtin_offsetof(struct ct_event, groups)

/*
 * Process lifecycle: exec, fork (processes only, not threads) and exit of a
 * whole thread group. Fork and exit records stop before `filename`
 * (CT_PROC_SHORT_SIZE bytes); exec records are complete.
 */
struct ct_proc_event {
	__u32 type;  /* CT_REC_PROC */
	__u32 kind;  /* enum ct_proc_kind */
	__u64 ktime_ns;
	__u32 pid;     /* tgid (fork: the child's) */
	__u32 tid;     /* exec: the exec'ing thread, now the leader */
	__u32 ppid;    /* real parent's tgid (fork: the forking process) */
	__u32 old_tid; /* exec: thread id before exec (differs if a non-leader exec'd) */
	__u32 auid;
	__u32 sessionid;
	__u64 cgroup_id;
	__u32 pidns_inum;
	__u32 ns_pid;
	__s32 exit_code; /* exit: task->exit_code (status << 8 | signal) */
	__u32 filename_len;
	__u32 args_len;
	/* cwd is stored right-aligned: the path is cwd[cwd_off..CT_CWD_MAX]. */
	__u32 cwd_off;
	/* exec: the executed file's path, stored as cwd is. */
	__u32 exe_off;
	__u32 flags; /* enum ct_proc_flag */
	struct ct_creds creds;
	__u32 groups[CT_MAX_GROUPS];
	char comm[CT_COMM_LEN];
	char cgroup[CT_CGROUP_LEVELS][CT_CGROUP_NAME_MAX];
	char filename[CT_FILENAME_MAX];
	char args[CT_ARGS_MAX]; /* argv, NUL-separated */
	char cwd[CT_CWD_MAX + CT_NAME_MAX];
	char exe[CT_CWD_MAX + CT_NAME_MAX];
};

#define CT_PROC_SHORT_SIZE __builtin_offsetof(struct ct_proc_event, filename)

/* One id map extent: ids first..first+count-1 inside the namespace are
 * lower_first.. in its parent. */
struct ct_extent {
	__u32 first;
	__u32 lower_first;
	__u32 count;
};

/*
 * A user namespace, sent the first time a record comes from it and again
 * when its id maps change (they are written once, after creation).
 */
struct ct_userns_event {
	__u32 type; /* CT_REC_USERNS */
	__u32 inum;
	__u64 ktime_ns;
	__u32 parent_inum; /* 0 for the host's */
	__u32 level;
	__u32 owner;       /* kuid of the creator */
	__u32 group;       /* kgid of the creator */
	__u32 uid_extents; /* true counts: the maps keep CT_MAP_EXTENTS */
	__u32 gid_extents;
	struct ct_extent uid_map[CT_MAP_EXTENTS];
	struct ct_extent gid_map[CT_MAP_EXTENTS];
};

/*
 * --policy: TracingPolicy selectors, flattened by userspace
 * (crates/pipeline/src/policy) into one array the kernel walks in order.
 * The limits are the pipeline's policy::limits; the loader checks they agree.
 */
#define CT_POL_SELECTORS 32
#define CT_POL_VALUES 8
#define CT_POL_ARGS 4
#define CT_POL_CAPS 4
/* ct_pol_arg.index of the return value. */
#define CT_POL_RETURN 3
/* LRU entries of the rate limit map. */
#define CT_POL_RATE_ENTRIES 8192

enum ct_pol_set_op {
	CT_SET_ANY = 0, /* no condition */
	CT_SET_IN = 1,
	CT_SET_NOT_IN = 2,
};

/* Values of ct_pol_arg.op: the pipeline's policy::ArgOp. */
enum ct_pol_arg_op {
	CT_ARG_EQUAL = 1,
	CT_ARG_NOT_EQUAL = 2,
	CT_ARG_GT = 3,
	CT_ARG_LT = 4,
	CT_ARG_MASK = 5,
};

/* Which value set of a selector a struct ct_pol_value_key names. */
enum ct_pol_field {
	CT_FIELD_PIDNS = 0,
	CT_FIELD_USERNS = 1,
	CT_FIELD_PID = 2,
	CT_FIELD_ARG = 3, /* + the matchArgs entry (0..CT_POL_ARGS-1) */
};

/*
 * One argument condition. Equal and NotEqual look their values up in the
 * policy_values map; GT, LT and Mask against any of several values are one
 * comparison: v > the least, v < the greatest, v & all of them ORed.
 */
struct ct_pol_arg {
	__u32 index; /* 0..2: args[]; CT_POL_RETURN: ret */
	__u32 op;    /* enum ct_pol_arg_op */
	__s64 value;
};

struct ct_pol_cap {
	__u32 set;    /* 0 effective, 1 permitted, 2 inheritable */
	__u32 negate; /* NotIn */
	__u32 change; /* matchCapabilityChanges: old ^ new */
	__u32 ns_cap; /* isNamespaceCapability */
	__u64 mask;
};

/*
 * A selector: the calls it covers and its conditions. Membership tests
 * (namespaces, pids, Equal) are map lookups, so no condition loops over
 * its values: verifying a loop per value in every program that emits
 * events cost seconds of start-up.
 */
struct ct_selector {
	__u64 calls;  /* bit 1 << enum ct_syscall */
	__u32 abis;   /* bit 1 << enum ct_abi */
	__u32 kprobe; /* selectors of one kprobe are consecutive */
	__u32 policy; /* index of the policy, in the order given */
	__u32 post;
	__u64 rate_ns;
	__u32 rate_scope; /* 0 thread, 1 process, 2 global */
	__u32 ns_pid;     /* matchPIDs isNamespacePID */
	__u32 pidns_op;   /* enum ct_pol_set_op, each */
	__u32 userns_op;
	__u32 pids_op;
	__u32 nargs;
	__u32 ncaps;
	/* Has conditions only userspace decides (matchBinaries): what it may
	 * post is sent, and userspace decides it and the rest of its kprobe. */
	__u32 maybe;
	struct ct_pol_arg args[CT_POL_ARGS];
	struct ct_pol_cap caps[CT_POL_CAPS];
};

/* A value of a set: present in policy_values when the set holds it. */
struct ct_pol_value_key {
	__u32 selector;
	__u32 field; /* enum ct_pol_field */
	__s64 value;
};

struct ct_rate_key {
	__u32 selector;
	__u32 scope; /* tid, tgid or 0 */
	__u32 syscall;
	__u32 pad;
	__s64 args[3];
};

/*
 * Fairness (fair.bpf.h): while the ring buffer fills, a process over its
 * share of events per window has its calls counted by transition in the
 * fold map instead of sent; userspace turns each entry into one row with
 * a repeat count.
 */
#define CT_FOLD_GROUPS 16
#define CT_FOLD_ENTRIES 8192
#define CT_LOST_TGIDS 8192
#define CT_SHARE_TGIDS 16384

/* A transition: the event's head with its time zeroed, and its groups
 * (at most CT_FOLD_GROUPS, the rest zero). `gen` is the fold generation
 * (userspace drains one while the kernel fills the other). */
struct ct_fold_key {
	__u32 gen;
	__u32 pad;
	__u8 head[CT_EVENT_HEAD_SIZE];
	__u32 groups[CT_FOLD_GROUPS];
};

struct ct_fold {
	__u64 count;
	__u64 first_ns;
	__u64 last_ns;
};

#endif /* CREDTRAIL_H */
