//! What the detector's sweep costs: the recorder sweeping every 100 ms
//! while this process holds 0, 1,000 or 10,000 extra sleeping threads.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use credtrail_capture::Capture;

use crate::system::Tools;

/// Threads asleep on a condition variable until dropped.
struct Sleepers {
    wake: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sleepers {
    fn spawn(n: usize) -> anyhow::Result<Sleepers> {
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let threads = (0..n)
            .map(|_| {
                let wake = Arc::clone(&wake);
                std::thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || {
                        let (done, cv) = &*wake;
                        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                        while !*done {
                            done = cv.wait(done).unwrap_or_else(|e| e.into_inner());
                        }
                    })
                    .context("cannot start a sleeping thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Sleepers { wake, threads })
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        let (done, cv) = &*self.wake;
        *done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One markdown table: tasks visited per sweep, time per sweep and per task.
pub fn sweep(t: &Tools) -> anyhow::Result<String> {
    let mut md = String::from(
        "The recorder sweeping every 100 ms for 5 s (`--sweep-interval 0.1`) while the harness holds extra sleeping threads; the manifest's `sweeps`, `sweep_ns` and `sweep_tasks`. A sweep runs the task iterator from the recorder's thread: its time is the recorder's, not the traced processes'.\n\n| extra threads | tasks per sweep | sweeps | time per sweep | per task |\n|---|---|---|---|---|\n",
    );
    for extra in [0usize, 1_000, 10_000] {
        eprintln!("sweep: {extra} extra threads");
        let sleepers = Sleepers::spawn(extra)?;
        let dir = t.work.join("capture-sweep");
        let child = t.start_recorder(&dir, &["--sweep-interval", "0.1"])?;
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut child = child;
        child.wait()?;
        drop(sleepers);
        let c = Capture::open(&dir)?.manifest.counters;
        let sweeps = c.sweeps.max(1) as f64;
        let tasks = c.sweep_tasks as f64 / sweeps;
        let per_sweep_us = c.sweep_ns as f64 / sweeps / 1e3;
        md += &format!(
            "| {extra} | {tasks:.0} | {} | {per_sweep_us:.0} µs | {:.0} ns |\n",
            c.sweeps,
            per_sweep_us * 1e3 / tasks.max(1.0)
        );
    }
    Ok(md)
}
