//! credtrail's BPF side: the CO-RE programs in `src/bpf/` and their loader.
//!
//! This is the one seam to the kernel. It hands out raw ring-buffer records
//! (`&[u8]` holding one of three structs of `credtrail.h`, told apart by
//! their first field: a [`ct_event`], a credential call or an unexplained
//! change; a [`ct_proc_event`], exec, fork or exit; a [`ct_userns_event`],
//! a user namespace's maps) and the kernel counters; decoding and
//! everything after it live in `credtrail-recorder` and run without root.

use std::mem::MaybeUninit;
use std::path::Path;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

pub mod fair;
pub mod ring;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/credtrail.skel.rs"));
}

pub use libbpf_rs::{MapHandle, RingBuffer};
pub use skel::types::{
    ct_abi, ct_check, ct_counter, ct_creds, ct_event, ct_extent, ct_flag, ct_fold, ct_fold_key,
    ct_pol_arg, ct_pol_cap, ct_pol_field, ct_pol_value_key, ct_proc_event, ct_proc_flag,
    ct_proc_kind, ct_record, ct_selector, ct_syscall, ct_userns_event,
};

// SAFETY: ct_event and ct_proc_event are generated from C structs of
// fixed-width integers and arrays of them, with no padding holes (sizes
// asserted below) and no pointers, so every bit pattern is a valid value.
unsafe impl plain::Plain for ct_event {}
// SAFETY: as above.
unsafe impl plain::Plain for ct_proc_event {}
// SAFETY: as above.
unsafe impl plain::Plain for ct_userns_event {}
// SAFETY: as above.
unsafe impl plain::Plain for ct_fold_key {}
// SAFETY: as above.
unsafe impl plain::Plain for ct_fold {}
const _: () = assert!(std::mem::size_of::<ct_fold_key>() == 8 + EVENT_HEAD_SIZE + 4 * FOLD_GROUPS);
const _: () = assert!(std::mem::size_of::<ct_fold>() == 24);

/// Groups a folded transition carries (`CT_FOLD_GROUPS`).
pub const FOLD_GROUPS: usize = 16;

/// Size of `struct ct_event` in `credtrail.h`; a mismatch means the C header
/// and this build disagree. A ring record is shorter: [`EVENT_HEAD_SIZE`]
/// and the groups it carries.
pub const EVENT_SIZE: usize = 960;
/// A credential event's ring record up to its groups.
pub const EVENT_HEAD_SIZE: usize = std::mem::offset_of!(ct_event, groups);
const _: () = assert!(std::mem::size_of::<ct_event>() == EVENT_SIZE);
/// Size of a complete `struct ct_proc_event` (exec records).
pub const PROC_EVENT_SIZE: usize = 4928;
const _: () = assert!(std::mem::size_of::<ct_proc_event>() == PROC_EVENT_SIZE);
/// Size of `struct ct_userns_event`: a user namespace and its id maps.
pub const USERNS_EVENT_SIZE: usize = 160;
const _: () = assert!(std::mem::size_of::<ct_userns_event>() == USERNS_EVENT_SIZE);
/// Size of `struct ct_selector`: one policy selector in the kernel's map.
pub const SELECTOR_SIZE: usize = 224;
const _: () = assert!(std::mem::size_of::<ct_selector>() == SELECTOR_SIZE);
/// Selectors the kernel's map holds (`CT_POL_SELECTORS`).
pub const POLICY_SELECTORS: usize = 32;
const _: () = assert!(std::mem::size_of::<ct_pol_value_key>() == 16);

/// `--policy` in the kernel's layout.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// In order (empty: every event is sent).
    pub selectors: Vec<ct_selector>,
    /// The members of the selectors' value sets.
    pub values: Vec<ct_pol_value_key>,
}

/// The bytes of a generated C struct of fixed-width integers with explicit
/// padding (sizes asserted above): no uninitialised bytes, no pointers.
fn bytes_of<T>(v: &T) -> &[u8] {
    // SAFETY: see above; the slice borrows `v` for its lifetime.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Size of fork and exit records: `struct ct_proc_event` up to `filename`.
pub const PROC_SHORT_SIZE: usize = std::mem::offset_of!(ct_proc_event, filename);

/// Bytes of path kept in `ct_proc_event.cwd` and `.exe` (`CT_CWD_MAX`).
pub const CWD_MAX: usize = 1024;

/// Layout version of the records (`CT_ABI_VERSION` in credtrail.h).
pub const ABI_VERSION: u32 = 5;

/// Where libbpf looks for tracefs first.
pub const TRACEFS: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(
        "loading eBPF programs needs root, or CAP_BPF + CAP_PERFMON + CAP_SETPCAP + CAP_DAC_READ_SEARCH (and CAP_SYS_PTRACE for other processes' exe and cwd) (this process has CapEff {capeff:#x}); run credtrail-record with sudo, or give its container those capabilities (deploy/kubernetes/daemonset.yaml)"
    )]
    NotPrivileged { capeff: u64 },

    #[error(
        "the policies have {selectors} selectors; the kernel holds at most {POLICY_SELECTORS} (fewer kprobes or selectors)"
    )]
    Policy { selectors: usize },
    #[error(
        "tracefs is not mounted at {TRACEFS} and mounting it failed: {source}; mount it with `mount -t tracefs tracefs {TRACEFS}`"
    )]
    Tracefs {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot attach {name} ({source}): the kernel lacks this hook; credtrail needs syscall and sched tracepoints (CONFIG_FTRACE_SYSCALLS=y) and BTF"
    )]
    MissingHook {
        name: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error(
        "{what} was denied ({source}): a seccomp profile or an LSM forbids bpf() or perf_event_open(); in a container, run with seccomp Unconfined or a profile that allows both (deploy/kubernetes/seccomp-credtrail.json)"
    )]
    Denied {
        what: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error(
        "the kernel refused the eBPF programs ({source}); credtrail needs a kernel with BTF (/sys/kernel/btf/vmlinux) and BPF ring buffers (5.8+); run with RUST_LOG=debug for libbpf's log"
    )]
    Load {
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_buffer_bytes: u32,
    /// Attach the raw `sys_enter`/`sys_exit` pair that sees calls made
    /// through the 32-bit entry (`int $0x80`): the per-syscall tracepoints
    /// never fire for those, and the raw pair runs on every syscall.
    pub compat_syscalls: bool,
    /// Check every task's credentials when it is switched out (a pointer
    /// comparison per context switch). Without it, unexplained changes are
    /// found by the other checks and the sweep only.
    pub switch_check: bool,
    /// Compare every task's subjective credentials with its objective ones
    /// as it returns to user space from any syscall (a raw `sys_exit`
    /// hook, +45 ns on every syscall of the host). Without it, they are
    /// compared at recorded calls and execs only.
    pub subjective_check: bool,
    /// Record only the process tree of the command the recorder starts
    /// (`-- COMMAND`): see [`Tracer::scope_add`].
    pub scope: bool,
    /// `--policy`, compiled.
    pub policy: Policy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ring_buffer_bytes: 16 << 20,
            compat_syscalls: false,
            switch_check: true,
            subjective_check: false,
            scope: false,
            policy: Policy::default(),
        }
    }
}

/// Hooks credtrail records without when the kernel lacks them, with what
/// then goes unseen. Every other hook is required.
pub const OPTIONAL_HOOKS: [(&str, &str); 10] = [
    (
        "sched/sched_prepare_exec",
        "credential changes made by exec (setuid binaries, file capabilities; Linux 6.10+)",
    ),
    (
        "io_uring/io_uring_submit_req",
        "io_uring requests run under a registered personality",
    ),
    ("syscalls/sys_enter_prctl", "prctl credential changes"),
    ("syscalls/sys_exit_prctl", "prctl credential changes"),
    (
        "syscalls/sys_enter_unshare",
        "user namespaces created by unshare",
    ),
    (
        "syscalls/sys_exit_unshare",
        "user namespaces created by unshare",
    ),
    (
        "syscalls/sys_enter_setns",
        "user namespaces entered by setns",
    ),
    (
        "syscalls/sys_exit_setns",
        "user namespaces entered by setns",
    ),
    (
        "syscalls/sys_enter_io_uring_register",
        "io_uring personality registrations",
    ),
    (
        "syscalls/sys_exit_io_uring_register",
        "io_uring personality registrations",
    ),
];

/// The tracepoint (`CATEGORY/NAME`) a program's section attaches to, if
/// it is a named one (the ia32 pair hooks the raw syscall tracepoints).
fn tracepoint_of(section: &str) -> Option<String> {
    if let Some(tp) = section.strip_prefix("tracepoint/") {
        return Some(tp.to_owned());
    }
    let name = section.strip_prefix("tp_btf/")?;
    OPTIONAL_HOOKS
        .iter()
        .map(|(tp, _)| *tp)
        .find(|tp| tp.rsplit('/').next() == Some(name))
        .map(str::to_owned)
}

/// Whether the running kernel has this tracepoint (its tracefs id, which
/// is what attaching reads).
fn kernel_has(tracepoint: &str) -> bool {
    Path::new(TRACEFS)
        .join("events")
        .join(tracepoint)
        .join("id")
        .exists()
}

/// The switch-out check's section (`Options::switch_check`).
const SWITCH_CHECK: &str = "tp_btf/sched_switch";
/// The sweep's task iterator: attached, run only by [`Tracer::sweep`].
const SWEEP: &str = "iter/task";

/// The ia32 pair's programs (`--compat-syscalls`).
const COMPAT: [&str; 2] = ["compat_enter", "compat_exit"];
/// The return-to-user check's program (`Options::subjective_check`); it
/// shares the raw `sys_exit` tracepoint with `compat_exit`.
const SUBJECTIVE_CHECK: &str = "subjective_check";

/// Kernel-side counters, summed over CPUs (see `enum ct_counter`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub exits: u64,
    pub ringbuf_full: u64,
    pub enter_store_failures: u64,
    pub exit_without_enter: u64,
    pub proc_events: u64,
    pub proc_ringbuf_full: u64,
    pub exec_no_stash: u64,
    pub userns_records: u64,
    pub userns_ringbuf_full: u64,
    pub checks: u64,
    pub cred_swaps: u64,
    pub unexplained: u64,
    pub unexplained_ringbuf_full: u64,
    pub sweep_tasks: u64,
    pub return_checks: u64,
    pub subjective: u64,
    pub out_of_scope: u64,
    pub scope_full: u64,
    pub known_store_failures: u64,
    pub policy_filtered: u64,
    pub policy_rate_limited: u64,
    pub fold_full: u64,
    pub lost_unattributed: u64,
}

/// Loaded and attached programs.
pub struct Tracer<'obj> {
    skel: skel::CredtrailSkel<'obj>,
    hooks: Vec<String>,
    missing_optional: Vec<String>,
    /// Interior mutability so `detach` works while a ring buffer borrows us.
    links: std::cell::RefCell<Vec<Link>>,
    /// The sweep's iterator link (dropped by `detach` too).
    sweep: std::cell::RefCell<Option<Link>>,
    /// The programs' global data (fold_gen, fold_active), mapped.
    bss: std::ptr::NonNull<skel::types::bss>,
}

/// Effective capability mask of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether container cgroups live in cgroup v1 controllers: true unless
/// /sys/fs/cgroup is a pure cgroup2 mount.
pub fn cgroup_v1_hierarchies() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    // SAFETY: statfs writes one struct into the valid pointer; the path is a
    // NUL-terminated literal.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c"/sys/fs/cgroup".as_ptr(), &mut st) };
    !(rc == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

/// Fails early, with the fix, when this process cannot load BPF programs.
pub fn check_privileges() -> Result<(), BpfError> {
    let capeff = effective_caps();
    let has = |c: u32| capeff & (1 << c) != 0;
    // SETPCAP: the recorder drops its bounding set before attaching.
    if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) && has(CAP_SETPCAP) {
        Ok(())
    } else {
        Err(BpfError::NotPrivileged { capeff })
    }
}

/// A permission error from libbpf (EPERM with the capabilities checked
/// first: a seccomp profile or an LSM), else `other`.
fn denied_or(
    what: &str,
    source: libbpf_rs::Error,
    other: impl FnOnce(libbpf_rs::Error) -> BpfError,
) -> BpfError {
    if source.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        BpfError::Denied {
            what: what.to_owned(),
            source,
        }
    } else {
        other(source)
    }
}

/// Mounts tracefs at [`TRACEFS`] when it is not mounted (fresh machines
/// often lack it); returns whether we mounted it.
pub fn ensure_tracefs() -> Result<bool, BpfError> {
    let root = Path::new(TRACEFS);
    if root.join("events").is_dir() {
        return Ok(false);
    }
    let src = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are NUL-terminated C strings that outlive the call;
    // tracefs takes no mount data.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(BpfError::Tracefs {
            source: std::io::Error::last_os_error(),
        });
    }
    tracing::info!("mounted tracefs at {TRACEFS}");
    Ok(true)
}

/// Tries to lift RLIMIT_MEMLOCK. Kernels since 5.11 charge BPF memory to the
/// memory cgroup instead, and without CAP_SYS_RESOURCE the bump fails: both
/// are harmless, so a failure is only logged.
pub fn bump_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads one valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on kernels with memcg accounting",
            std::io::Error::last_os_error()
        );
    }
}

fn route_libbpf_logs() {
    fn print(level: libbpf_rs::PrintLevel, msg: String) {
        let msg = msg.trim_end();
        match level {
            libbpf_rs::PrintLevel::Warn => tracing::warn!(target: "libbpf", "{msg}"),
            libbpf_rs::PrintLevel::Info => tracing::debug!(target: "libbpf", "{msg}"),
            libbpf_rs::PrintLevel::Debug => tracing::trace!(target: "libbpf", "{msg}"),
        }
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, print)));
}

impl<'obj> Tracer<'obj> {
    /// Checks privileges, mounts tracefs if needed, loads the programs and
    /// attaches every hook. Any missing hook is an error naming it.
    pub fn load(obj: &'obj mut MaybeUninit<OpenObject>, opts: &Options) -> Result<Self, BpfError> {
        check_privileges()?;
        ensure_tracefs()?;
        bump_memlock();
        route_libbpf_logs();

        let builder = skel::CredtrailSkelBuilder::default();
        let mut open = builder
            .open(obj)
            .map_err(|source| BpfError::Load { source })?;
        open.maps
            .events
            .set_max_entries(opts.ring_buffer_bytes)
            .map_err(|source| BpfError::Map {
                map: "events",
                source,
            })?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("the object has read-only data");
        debug_assert_eq!(
            rodata.abi_version, ABI_VERSION,
            "credtrail.h and lib.rs disagree"
        );
        rodata.cgroup_v1 = u32::from(cgroup_v1_hierarchies());
        rodata.scope_enabled = u32::from(opts.scope);
        if opts.policy.selectors.len() > POLICY_SELECTORS {
            return Err(BpfError::Policy {
                selectors: opts.policy.selectors.len(),
            });
        }
        rodata.policy_selectors = opts.policy.selectors.len() as u32;
        // An optional hook the kernel lacks is not loaded (a tp_btf program
        // for a missing tracepoint would fail the whole load): warned about
        // here, listed in the manifest, everything else recorded.
        let mut missing = Vec::new();
        for mut prog in open.open_object_mut().progs_mut() {
            let section = prog.section().to_string_lossy().into_owned();
            let name = prog.name().to_string_lossy();
            if COMPAT.contains(&name.as_ref()) {
                prog.set_autoload(opts.compat_syscalls);
                continue;
            }
            if name == SUBJECTIVE_CHECK {
                prog.set_autoload(opts.subjective_check);
                continue;
            }
            if section == SWITCH_CHECK {
                prog.set_autoload(opts.switch_check);
                continue;
            }
            let Some(tp) = tracepoint_of(&section) else {
                continue;
            };
            let Some((_, unseen)) = OPTIONAL_HOOKS.iter().find(|(t, _)| *t == tp) else {
                continue;
            };
            if !kernel_has(&tp) {
                prog.set_autoload(false);
                tracing::warn!(
                    "this kernel has no {tp} tracepoint: {unseen} will not be recorded (listed in the manifest's settings.missing_hooks)"
                );
                missing.push(tp);
            }
        }
        let mut skel = open.load().map_err(|source| {
            denied_or("loading the programs", source, |source| BpfError::Load {
                source,
            })
        })?;
        let bss = skel
            .maps
            .bss_data
            .take()
            .map(std::ptr::NonNull::from)
            .expect("the object has global data");
        // The selectors are in place before any program is attached.
        let map_err = |map| move |source| BpfError::Map { map, source };
        for (i, sel) in opts.policy.selectors.iter().enumerate() {
            skel.maps
                .policy
                .update(&(i as u32).to_ne_bytes(), bytes_of(sel), MapFlags::ANY)
                .map_err(map_err("policy"))?;
        }
        for key in &opts.policy.values {
            skel.maps
                .policy_values
                .update(bytes_of(key), &[1], MapFlags::ANY)
                .map_err(map_err("policy_values"))?;
        }
        let mut links = Vec::new();
        let mut hooks = Vec::new();
        let mut sweep = None;
        for prog in skel.object().progs_mut() {
            if !prog.autoload() {
                continue;
            }
            let section = prog.section().to_string_lossy().into_owned();
            let mut hook = section
                .strip_prefix("tracepoint/")
                .unwrap_or(&section)
                .to_owned();
            if prog.name() == SUBJECTIVE_CHECK {
                // Named apart from the ia32 pair's hook on the same tracepoint.
                hook += " (subjective check)";
            }
            // libbpf attaches by section name: tracepoint/CAT/NAME or tp_btf/NAME.
            let link = prog.attach().map_err(|source| {
                denied_or(&format!("attaching {hook}"), source, |source| {
                    BpfError::MissingHook {
                        name: hook.clone(),
                        source,
                    }
                })
            })?;
            hooks.push(hook);
            if section == SWEEP {
                sweep = Some(link);
            } else {
                links.push(link);
            }
        }
        Ok(Tracer {
            skel,
            hooks,
            missing_optional: missing,
            links: std::cell::RefCell::new(links),
            sweep: std::cell::RefCell::new(sweep),
            bss,
        })
    }

    /// Optional hooks this kernel lacks (`CATEGORY/NAME`).
    pub fn missing_optional_hooks(&self) -> &[String] {
        &self.missing_optional
    }

    /// The tracepoints attached, e.g. `syscalls/sys_enter_setuid`.
    pub fn hooks(&self) -> Vec<String> {
        self.hooks.clone()
    }

    /// Detaches every hook: no new events after this returns, so a final
    /// drain and counter read add up exactly.
    pub fn detach(&self) {
        // Each perf-event tracepoint waits for an RCU grace period as it
        // goes (~60 ms here): one after another, the 28 syscall hooks took
        // 1.7 s of every recording's end. Closed side by side, they wait
        // for them together.
        let links = std::mem::take(&mut *self.links.borrow_mut());
        std::thread::scope(|s| {
            for link in links {
                s.spawn(move || drop(link));
            }
        });
        self.sweep.borrow_mut().take();
    }

    /// One sweep: the task iterator visits every task and compares its
    /// credentials with the last known ones (unexplained changes go to the
    /// ring buffer). A no-op once detached.
    pub fn sweep(&self) -> Result<(), BpfError> {
        let sweep = self.sweep.borrow();
        let Some(link) = sweep.as_ref() else {
            return Ok(());
        };
        let map_err = |source| BpfError::Map {
            map: "known",
            source,
        };
        let mut it = libbpf_rs::Iter::new(link).map_err(map_err)?;
        // The program prints nothing: reading to the end runs it over
        // every task.
        std::io::copy(&mut it, &mut std::io::sink())
            .map_err(|e| map_err(libbpf_rs::Error::from(e)))?;
        Ok(())
    }

    /// The ring buffer map as a handle of its own (a duplicated file
    /// descriptor) that another thread can read: [`ring_buffer_of`].
    pub fn ring_map(&self) -> Result<MapHandle, BpfError> {
        MapHandle::try_from(&self.skel.maps.events).map_err(|source| BpfError::Map {
            map: "events",
            source,
        })
    }

    /// With [`Options::scope`]: puts a process in the recorded tree; the
    /// processes it forks from then on join it in the kernel.
    pub fn scope_add(&self, tgid: u32) -> Result<(), BpfError> {
        self.skel
            .maps
            .scope
            .update(&tgid.to_ne_bytes(), &[1], MapFlags::ANY)
            .map_err(|source| BpfError::Map {
                map: "scope",
                source,
            })
    }

    /// Processes of the recorded tree still alive (counted up to
    /// `CT_SCOPE_MAX`, the map's size).
    pub fn scope_len(&self) -> usize {
        self.skel.maps.scope.keys().count()
    }

    /// Reads and sums the per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, BpfError> {
        let map = &self.skel.maps.counters;
        let read = |idx: ct_counter| -> Result<u64, BpfError> {
            let per_cpu = map
                .lookup_percpu(&idx.0.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| BpfError::Map {
                    map: "counters",
                    source,
                })?
                .unwrap_or_default();
            Ok(per_cpu
                .iter()
                .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 values")))
                .sum())
        };
        Ok(KernelCounters {
            exits: read(ct_counter::CT_CNT_EXITS)?,
            ringbuf_full: read(ct_counter::CT_CNT_RINGBUF_FULL)?,
            enter_store_failures: read(ct_counter::CT_CNT_ENTER_STORE_FAIL)?,
            exit_without_enter: read(ct_counter::CT_CNT_EXIT_NO_ENTER)?,
            proc_events: read(ct_counter::CT_CNT_PROC_EVENTS)?,
            proc_ringbuf_full: read(ct_counter::CT_CNT_PROC_RINGBUF_FULL)?,
            exec_no_stash: read(ct_counter::CT_CNT_EXEC_NO_STASH)?,
            userns_records: read(ct_counter::CT_CNT_USERNS)?,
            userns_ringbuf_full: read(ct_counter::CT_CNT_USERNS_RINGBUF_FULL)?,
            checks: read(ct_counter::CT_CNT_CHECKS)?,
            cred_swaps: read(ct_counter::CT_CNT_CRED_SWAPS)?,
            unexplained: read(ct_counter::CT_CNT_UNEXPLAINED)?,
            unexplained_ringbuf_full: read(ct_counter::CT_CNT_UNEXPLAINED_RINGBUF_FULL)?,
            sweep_tasks: read(ct_counter::CT_CNT_SWEEP_TASKS)?,
            return_checks: read(ct_counter::CT_CNT_RETURN_CHECKS)?,
            subjective: read(ct_counter::CT_CNT_SUBJECTIVE)?,
            out_of_scope: read(ct_counter::CT_CNT_OUT_OF_SCOPE)?,
            scope_full: read(ct_counter::CT_CNT_SCOPE_FULL)?,
            known_store_failures: read(ct_counter::CT_CNT_KNOWN_STORE_FAIL)?,
            policy_filtered: read(ct_counter::CT_CNT_POLICY_FILTERED)?,
            policy_rate_limited: read(ct_counter::CT_CNT_POLICY_RATE_LIMITED)?,
            fold_full: read(ct_counter::CT_CNT_FOLD_FULL)?,
            lost_unattributed: read(ct_counter::CT_CNT_LOST_UNATTRIBUTED)?,
        })
    }
}
