//! A capture's own folder: taken as a new capture only when that is safe
//! (absent, or empty, not a symlink, ours and writable by nobody else),
//! and who writes into it: the `.recorder` file and the folder's lock that
//! prove the writer alive.

use std::path::Path;

use crate::error::CaptureError;
use crate::fs::{self, Dir};
use crate::manifest::MANIFEST_FILE;

/// Who writes the capture while it is open: `PID START_TICKS BOOT_ID`,
/// for `credtrail-record status` to prove the writer alive (see
/// [`recorder_pid`]).
pub const RECORDER_FILE: &str = ".recorder";

/// Takes `dir` as a new capture directory, or creates it (0700): absent,
/// or an empty directory that is not a symlink, owned by us and writable by
/// nobody else (a directory someone else prepared could be renamed or
/// relinked under the recorder), in a folder the root rules of
/// `fs::Dir::open_root` allow. Refuses files, foreign non-empty directories
/// and existing captures, touching none of them. Returns the handle every
/// file of the capture is then created through.
pub(crate) fn create_capture_dir(dir: &Path) -> Result<Dir, CaptureError> {
    let (parent, name) = split_capture_path(dir)?;
    let parent = Dir::open_root(parent)?;
    check_capture_entry(&parent, name, dir)?;
    let d = parent.create_subdir(name)?;
    let (owner, me) = (d.owner()?, fs::euid());
    if owner != me {
        return Err(CaptureError::Unsafe {
            path: dir.to_owned(),
            message: format!(
                "is owned by uid {owner}, not by the recorder's uid {me}; its owner could rename or relink the capture while it records (remove it, or let credtrail-record create it)"
            ),
        });
    }
    if !d.names()?.is_empty() {
        return Err(CaptureError::ForeignDirectory {
            path: dir.to_owned(),
        });
    }
    d.make_private()?;
    Ok(d)
}

/// A capture path's folder and its own name (a plain one).
fn split_capture_path(dir: &Path) -> Result<(&Path, &str), CaptureError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "." && *n != "..")
        .ok_or_else(|| CaptureError::Unsafe {
            path: dir.to_owned(),
            message: "does not end in a plain folder name; name the capture's own folder".into(),
        })?;
    Ok((dir.parent().unwrap_or(Path::new(".")), name))
}

/// Checks that `dir` can become a new capture without touching anything:
/// its folder, if it exists, is one a capture may be made in, and `dir` is
/// absent or an empty directory (not a symlink) owned by us and not writable
/// by group or others. Returns whether it exists.
pub fn check_capture_dir(dir: &Path) -> Result<bool, CaptureError> {
    let (parent, name) = split_capture_path(dir)?;
    let parent_path = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if !parent_path.exists() {
        return Ok(false);
    }
    check_capture_entry(&Dir::open_root(parent_path)?, name, dir)
}

/// [`check_capture_dir`] of the entry `name` in the folder `parent`, by
/// handle: what is checked is what is then used.
fn check_capture_entry(parent: &Dir, name: &str, dir: &Path) -> Result<bool, CaptureError> {
    match parent.kind(name)? {
        None => return Ok(false),
        Some(rustix::fs::FileType::Symlink) => {
            return Err(CaptureError::Symlink {
                path: dir.to_owned(),
            });
        }
        Some(rustix::fs::FileType::Directory) => {}
        Some(_) => {
            return Err(CaptureError::NotADirectory {
                path: dir.to_owned(),
            });
        }
    }
    let d = parent.subdir(name)?;
    if !d.names()?.is_empty() {
        return Err(if d.exists(MANIFEST_FILE) {
            CaptureError::ExistingCapture {
                path: dir.to_owned(),
            }
        } else {
            CaptureError::ForeignDirectory {
                path: dir.to_owned(),
            }
        });
    }
    d.check_private().map_err(|_| {
        let (owner, mode) = d.owner_and_mode().unwrap_or_default();
        CaptureError::Unsafe {
            path: dir.to_owned(),
            message: format!(
                "was made by uid {owner} with mode {mode:o}: only an empty directory owned by the recorder's uid {} and writable by nobody else is taken (its owner could rename or relink the capture while it records); remove it, or let credtrail-record create it",
                fs::euid()
            ),
        }
    })?;
    Ok(true)
}

/// Writes [`RECORDER_FILE`] into the new capture folder `root`: this
/// process is the writer.
pub(crate) fn write_recorder_file(root: &Dir) -> Result<(), CaptureError> {
    let pid = std::process::id();
    let line = format!(
        "{pid} {} {}\n",
        crate::host::process_start_ticks(pid).unwrap_or(0),
        crate::host::boot_id()
    );
    let mut f = root.create_new(RECORDER_FILE)?;
    std::io::Write::write_all(&mut f, line.as_bytes())
        .map_err(CaptureError::io(&root.child(RECORDER_FILE), "write"))?;
    Ok(())
}

/// The pid of the process writing the capture `root`, when it can be
/// proved alive: the folder is ours and writable by nobody else, its lock is
/// held, its `.recorder` file (ours, one link) names a process that runs
/// now (same boot, same start time, so not a reused pid), and that process
/// holds the folder's lock (`/proc/locks`). None otherwise: a manifest in
/// state `recording` or a lock alone proves nothing, since anyone who could
/// write them could fake them.
pub fn recorder_pid(root: &Dir) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    root.check_private().ok()?;
    if root.lock().is_ok() {
        return None;
    }
    let f = root.open_file(RECORDER_FILE).ok()?;
    let meta = f.metadata().ok()?;
    if meta.uid() != fs::euid() || meta.nlink() != 1 {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 256), &mut text).ok()?;
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    let boot = it.next()?;
    if boot != crate::host::boot_id() || crate::host::process_start_ticks(pid)? != start {
        return None;
    }
    let inode = root.inode().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks
        .lines()
        .any(|l| holds_flock(l, pid, inode))
        .then_some(pid)
}

/// Whether a `/proc/locks` line is a held write `flock` of `pid` on `inode`
/// (`1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; waiters read `->`).
fn holds_flock(line: &str, pid: u32, inode: u64) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    matches!(&f[..], [_, "FLOCK", _, "WRITE", p, dev_ino, ..]
        if p.parse::<u32>() == Ok(pid)
            && dev_ino.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(inode))
}
