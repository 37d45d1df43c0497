//! The `credtrail-workload` command line, here so that tests can render
//! its help exactly as the binary prints it.

use clap::{Parser, Subcommand};

/// Make credential-changing syscalls with known values and report them as JSON.
#[derive(Parser, Debug)]
#[command(name = "credtrail-workload", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Ignored: lets tests put known text (e.g. a fake secret) in argv.
    #[arg(long, global = true, value_name = "TEXT")]
    pub tag: Option<String>,
}

/// What the process does once its steps are done.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Exit,
    Sleep,
    Spin,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every hooked syscall once with distinctive values, ending with a
    /// refused setuid(0); then a 4-thread glibc setuid broadcast in a child.
    All,
    /// The single-threaded part of `all`.
    Steps,
    /// setgroups(3, [1001, 1002, 1003]).
    Setgroups,
    /// capset dropping CAP_NET_RAW from the effective, permitted and
    /// inheritable sets.
    CapsetDrop,
    /// setresuid(UID, UID, UID), then setuid(0), refused with EPERM.
    DeniedSetuid {
        #[arg(long, default_value_t = 1000)]
        uid: u32,
    },
    /// glibc setuid(UID) from a process with THREADS threads.
    Broadcast {
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        #[arg(long, default_value_t = 5001)]
        uid: u32,
    },
    /// Like `su`: setresuid(UID, UID, UID) and exit at once; prints its pid.
    SuLike {
        #[arg(long, default_value_t = 4242)]
        uid: u32,
    },
    /// Do nothing (run as a setuid copy to make exec change credentials).
    Noop,
    /// CALLS access() and faccessat() checks of /etc/shadow, as any user:
    /// in a setuid copy run by another user the kernel checks each with
    /// the real ids under override_creds (a legitimate subjective
    /// override inside the call); prints how many were allowed.
    Access {
        #[arg(long, default_value_t = 10_000)]
        calls: u64,
    },
    /// Replace itself with itself LEFT more times (exec of /proc/self/exe,
    /// no fork), as any user can, then print its pid: one process whose
    /// chain of images is as long as it likes.
    Reexec {
        #[arg(long)]
        left: u64,
    },
    /// Credential calls through the 32-bit entry (`int $0x80`):
    /// setgroups32, setresuid32, setuid32, setresuid16, setuid16.
    Ia32 {
        /// Then, before exiting: sleep, or keep running on a CPU shared
        /// with a busy thread (so the scheduler switches it out), for MS.
        #[arg(long, value_enum, default_value = "exit")]
        then: Then,
        #[arg(long, default_value_t = 500)]
        ms: u64,
    },
    /// NAMES prctl(PR_SET_NAME) calls, then every prctl that changes
    /// credentials: ambient raise/lower/clear, bounding-set drop, keepcaps,
    /// securebits, no_new_privs.
    Prctl {
        #[arg(long, default_value_t = 10_000)]
        names: u64,
    },
    /// setresuid(-1, UID, -1), then setuid(0): euid 0 regained.
    RegainRoot {
        #[arg(long, default_value_t = 1000)]
        uid: u32,
    },
    /// One raw setuid(UID).
    Setuid {
        #[arg(long, default_value_t = 0)]
        uid: u32,
    },
    /// Children in new user namespaces by clone and clone3, then setns
    /// into the first one's namespace.
    Userns,
    /// Registers an io_uring personality, drops the euid to UID, opens
    /// /etc/shadow through the ring under the personality, unregisters it.
    IoUring {
        #[arg(long, default_value_t = 4200)]
        uid: u32,
    },
    /// Toggle the euid of THREADS threads between 0 and UID; prints the
    /// exact number of calls issued.
    Storm {
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Calls per second per thread (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 1234)]
        uid: u32,
        /// Which call each thread toggles.
        #[arg(long, value_enum, default_value = "setresuid")]
        call: crate::Call,
    },
    /// TOGGLES euid changes through the 32-bit entry (0 → UID → 0 …), each
    /// followed by a recorded setresuid(-1, -1, -1) that finds it: without
    /// --compat-syscalls, exactly TOGGLES unexplained changes, at RATE per
    /// second (0: as fast as possible). Prints the pid and the count.
    Ia32Toggle {
        #[arg(long, default_value_t = 1000)]
        toggles: u64,
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 4301)]
        uid: u32,
    },
    /// Time CALLS calls on one thread; prints nanoseconds per call.
    TimeCalls {
        #[arg(long, value_enum, default_value = "setresuid")]
        call: crate::Call,
        #[arg(long, default_value_t = 200_000)]
        calls: u64,
        #[arg(long, default_value_t = 1234)]
        uid: u32,
    },
}
