//! Raw ways into the kernel the workload's steps share: a syscall through
//! the 32-bit entry (`int $0x80`), an io_uring NOP, a page below 4 GiB for
//! 32-bit pointers, and pinning a thread to its CPU.

/// A syscall through the 32-bit entry, as a 32-bit program makes it: the
/// ia32 number in eax, arguments in ebx, ecx, edx, the result in eax.
pub(crate) fn int80(nr: u32, a: u32, b: u32, c: u32) -> i64 {
    let ret: i32;
    // SAFETY: int $0x80 runs the ia32 syscall `nr`; callers pass only the
    // credential calls, with pointers below 4 GiB (see `low_page`). rbx is
    // reserved by LLVM, so `a` is swapped into it around the trap. The
    // kernel preserves every register but eax (r8-r11 too since 4.17; they
    // are marked clobbered for older ones).
    unsafe {
        std::arch::asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) u64::from(a) => _,
            inlateout("eax") nr => ret,
            in("ecx") b,
            in("edx") c,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    i64::from(ret)
}

/// Numbers from arch/x86/entry/syscalls/syscall_32.tbl.
pub(crate) const IA32_GETPID: u32 = 20;
pub(crate) const IA32_SETUID16: u32 = 23;
pub(crate) const IA32_SETRESUID16: u32 = 164;
pub(crate) const IA32_SETGROUPS32: u32 = 206;
pub(crate) const IA32_SETRESUID32: u32 = 208;
pub(crate) const IA32_SETUID32: u32 = 213;

/// getpid through the 32-bit entry (for timing the ia32 hook).
pub fn getpid32() -> i64 {
    int80(IA32_GETPID, 0, 0, 0)
}

thread_local! {
    static NOP_RING: std::cell::RefCell<Option<io_uring::IoUring>> =
        const { std::cell::RefCell::new(None) };
}

/// One io_uring NOP, submitted and reaped (for timing the request hook);
/// the ring is made once per thread.
pub fn io_uring_nop() -> i64 {
    NOP_RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = io_uring::IoUring::new(8).ok();
        }
        let Some(ring) = slot.as_mut() else {
            return -i64::from(libc::ENOSYS);
        };
        let nop = io_uring::opcode::Nop::new().build();
        // SAFETY: a NOP names no memory.
        if unsafe { ring.submission().push(&nop) }.is_err() {
            return -i64::from(libc::EBUSY);
        }
        if let Err(e) = ring.submit_and_wait(1) {
            return -i64::from(e.raw_os_error().unwrap_or(0));
        }
        ring.completion()
            .next()
            .map_or(-1, |c| i64::from(c.result()))
    })
}

/// A page below 4 GiB: the ia32 entry sees 32-bit pointers.
pub(crate) fn low_page() -> std::io::Result<*mut u32> {
    // SAFETY: an anonymous private mapping, no address asked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p.cast())
}

/// Keeps this thread, and threads it starts, on the CPU it runs on.
pub(crate) fn pin_to_this_cpu() -> std::io::Result<()> {
    // SAFETY: sched_getcpu has no preconditions; the set is a local that
    // sched_setaffinity reads.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
