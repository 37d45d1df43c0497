//! How another process talks to a running recorder through its capture
//! folder (no socket, no extra privilege: whoever may read the capture may
//! ask): a cut asks it to seal its open segments (`.seal-request`, answered
//! in `.seal-done`), and pins what it copies (`.pin-PID-N`) so that eviction
//! leaves those segments alone until the cut is complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as MonoInstant};

use crate::error::CaptureError;
use crate::fs::Dir;

pub const SEAL_REQUEST: &str = ".seal-request";
pub const SEAL_DONE: &str = ".seal-done";
const PIN_PREFIX: &str = ".pin-";

/// While it exists (and the process that made it lives), no segment set
/// holding rows at or after `from_ktime_ns` is evicted.
pub struct Pin {
    root: Dir,
    name: String,
}

impl Pin {
    pub fn new(root: &Dir, from_ktime_ns: u64) -> Result<Pin, CaptureError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PIN_PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        root.replace_file(&name, from_ktime_ns.to_string().as_bytes(), false)?;
        Ok(Pin {
            root: root.try_clone()?,
            name,
        })
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Err(e) = self.root.remove(&self.name) {
            tracing::warn!("cannot remove the cut's pin: {e}");
        }
    }
}

/// The oldest instant a live process pins in `root` (pins of dead
/// processes, e.g. a cut killed midway, are removed).
pub fn oldest_pin(root: &Dir) -> Option<u64> {
    let names = root.names().ok()?;
    let mut oldest = None;
    for name in names.iter().filter(|n| n.starts_with(PIN_PREFIX)) {
        let pid = name[PIN_PREFIX.len()..].split('-').next().unwrap_or("");
        let alive = pid.parse::<u32>().is_ok_and(|p| {
            p == std::process::id() || std::path::Path::new(&format!("/proc/{p}")).exists()
        });
        if !alive {
            let _ = root.remove(name);
            continue;
        }
        let from = root
            .read_bounded(name, 64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        if let Some(from) = from {
            oldest = Some(oldest.map_or(from, |o: u64| o.min(from)));
        }
    }
    oldest
}

/// Asks the recorder writing `root` to seal its open segments; returns the
/// boot-clock instant up to which everything it had recorded is sealed.
pub fn request_seal(root: &Dir, timeout: Duration) -> Result<u64, CaptureError> {
    let nonce = format!("{}-{}", std::process::id(), crate::host::boottime_ns());
    root.replace_file(SEAL_REQUEST, nonce.as_bytes(), false)?;
    let deadline = MonoInstant::now() + timeout;
    loop {
        if let Ok(text) = root.read_bounded(SEAL_DONE, 256) {
            let text = String::from_utf8_lossy(&text);
            if let Some(end) = text
                .strip_prefix(&nonce)
                .and_then(|rest| rest.trim().parse::<u64>().ok())
            {
                return Ok(end);
            }
        }
        if MonoInstant::now() >= deadline {
            let _ = root.remove(SEAL_REQUEST);
            return Err(CaptureError::Cut {
                path: root.path().to_owned(),
                message: format!(
                    "no recorder sealed its open segments within {} s (is it still running? a capture whose recorder died is sealed with `credtrail-record recover` first)",
                    timeout.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The recorder's side: the nonce of a request waiting, if any.
pub fn pending_seal(root: &Dir) -> Option<String> {
    let text = root.read_bounded(SEAL_REQUEST, 256).ok()?;
    Some(String::from_utf8_lossy(&text).trim().to_owned())
}

/// The recorder's side: everything up to `end_ktime_ns` is sealed.
pub fn answer_seal(root: &Dir, nonce: &str, end_ktime_ns: u64) -> Result<(), CaptureError> {
    root.replace_file(
        SEAL_DONE,
        format!("{nonce} {end_ktime_ns}").as_bytes(),
        false,
    )?;
    root.remove(SEAL_REQUEST)
}
