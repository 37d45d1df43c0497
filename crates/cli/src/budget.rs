//! A memory budget for the readers (`credtrail-query`, `credtrail-replay`):
//! an allocator that counts what the process holds and, past the budget,
//! stops it with one line naming the budget and how to narrow the work,
//! instead of growing until the kernel's OOM killer ends it (or the
//! analyst's machine). The readers' own bounds (per page, chunk and file,
//! see `capture::bounds`) keep every single step small; this bounds what
//! many bounded steps add up to (a query over many files, a sort).
//!
//! A binary opts in with `#[global_allocator] static A: Budgeted = Budgeted(System);`
//! and [`set_limit`]; until then nothing is limited.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// What all threads hold, as far as they have reported it (see [`SLACK`]).
static HELD: AtomicIsize = AtomicIsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// How far a thread's unreported allocations may drift before it adds them
/// to [`HELD`]: an atomic add on every malloc and free was 10% of a
/// compact replay. The count is off by at most this much per thread.
const SLACK: isize = 256 << 10;

thread_local! {
    /// This thread's allocations not yet added to [`HELD`] (negative: frees).
    /// A const `Cell` of a plain integer: no destructor to register, so the
    /// allocator may use it at any point of a thread's life.
    static UNREPORTED: Cell<isize> = const { Cell::new(0) };
}
/// The line printed when the budget is exceeded, made before it can be.
static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

/// An allocator (the system's unless named), counted against the budget.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budgeted<A = System>(pub A);

// SAFETY: every call goes to the inner allocator unchanged; the counter
// only observes sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Budgeted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: forwarded as given.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            grow(new_size - layout.size());
        } else {
            shrink(layout.size() - new_size);
        }
        // SAFETY: forwarded as given.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

fn grow(n: usize) {
    let n = isize::try_from(n).unwrap_or(isize::MAX);
    let Some(due) = unreported(n) else {
        return;
    };
    let held = HELD.fetch_add(due, Ordering::Relaxed).saturating_add(due);
    if usize::try_from(held).is_ok_and(|h| h > LIMIT.load(Ordering::Relaxed)) {
        over();
    }
}

fn shrink(n: usize) {
    let n = isize::try_from(n).unwrap_or(isize::MAX);
    if let Some(due) = unreported(-n) {
        HELD.fetch_add(due, Ordering::Relaxed);
    }
}

/// Adds `delta` to this thread's unreported count; returns the count to
/// report (and zeroes it) once it has drifted past [`SLACK`]. A thread
/// being torn down reports at once.
fn unreported(delta: isize) -> Option<isize> {
    UNREPORTED
        .try_with(|u| {
            let v = u.get().saturating_add(delta);
            if v.abs() > SLACK {
                u.set(0);
                Some(v)
            } else {
                u.set(v);
                None
            }
        })
        .unwrap_or(Some(delta))
}

/// Past the budget: the prepared line, then exit. Allocates nothing (the
/// allocator is what called it).
fn over() -> ! {
    if let Some(m) = MESSAGE.get() {
        // SAFETY: writing a live buffer to stderr; _exit ends the process
        // without running anything that could allocate.
        unsafe {
            libc::write(2, m.as_ptr().cast(), m.len());
        }
    }
    // SAFETY: as above.
    unsafe { libc::_exit(1) }
}

/// Limits the process to `bytes` held by the allocator from now on; `tool`
/// and `how` make the line printed when it is exceeded.
///
/// Also limits glibc's malloc to one arena per core (before any thread
/// starts): its default, eight per core, kept memory freed by short-lived
/// worker threads in their own arenas, so the process grew past the
/// budget that counted it freed (measured: `report` of 2 M events, 628 MiB
/// peak with the default, 392 MiB with two arenas; the same speed).
pub fn set_limit(tool: &str, bytes: u64, how: &str) {
    #[cfg(target_env = "gnu")]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets a malloc parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, i32::try_from(cores).unwrap_or(8));
        }
    }
    let _ = MESSAGE.set(
        format!(
            "{tool}: stopped: this needs more memory than its budget of {} (--memory-limit): {how}, or raise --memory-limit\n",
            show(bytes)
        )
        .into_bytes(),
    );
    LIMIT.store(
        usize::try_from(bytes).unwrap_or(usize::MAX),
        Ordering::Relaxed,
    );
}

/// The budget set ([`set_limit`]); None when nothing is limited.
pub fn limit() -> Option<usize> {
    Some(LIMIT.load(Ordering::Relaxed)).filter(|l| *l != usize::MAX)
}

/// The default budget: half the machine's memory, or 80% of the memory
/// cgroup's limit when that is less (so the budget, not the OOM killer,
/// speaks first); 1 GiB when neither can be read.
pub fn default_limit() -> u64 {
    let machine = procfs_mem_total().map(|b| b / 2);
    let cgroup = cgroup_limit().map(|b| b / 10 * 8);
    match (machine, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        (None, Some(c)) => c,
        (None, None) => 1 << 30,
    }
}

fn procfs_mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), if one is set.
fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut limits = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = match controllers {
            "" => format!("/sys/fs/cgroup{path}/memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
            }
            _ => continue,
        };
        if let Some(v) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            // v1 says "no limit" with a huge number.
            if v < 1 << 60 {
                limits.push(v);
            }
        }
    }
    limits.into_iter().min()
}

/// A size as people write it: `512M`, `2GiB`, `1.5G`, `1073741824`
/// (binary units; a plain number is bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 2G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (K, M, G or T)")),
    };
    let bytes = num * (1u64 << shift) as f64;
    if !(bytes >= (16 << 20) as f64 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: at least 16M"));
    }
    Ok(bytes as u64)
}

/// `bytes` in GiB or MiB, for messages.
pub fn show(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_people_write_them() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        for bad in ["", "x", "12Q", "1K", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(default_limit() >= 16 << 20);
        assert_eq!(show(3 << 29), "1.5 GiB");
    }
}
