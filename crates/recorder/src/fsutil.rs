//! Careful file creation: captures hold sensitive data and are evidence, so
//! directories are 0700, files 0600, symlinks are never followed and nothing
//! existing is overwritten.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::CaptureError;
use crate::manifest::MANIFEST_FILE;

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Checks that `dir` can become a new capture without touching anything:
/// it must be absent, or an empty directory. Returns whether it exists.
pub fn check_capture_dir(dir: &Path) -> Result<bool, CaptureError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(CaptureError::Symlink {
            path: dir.to_owned(),
        }),
        Ok(meta) if !meta.is_dir() => Err(CaptureError::NotADirectory {
            path: dir.to_owned(),
        }),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(io(dir, "list"))?;
            if entries.next().is_none() {
                Ok(true)
            } else if dir.join(MANIFEST_FILE).exists() {
                Err(CaptureError::ExistingCapture {
                    path: dir.to_owned(),
                })
            } else {
                Err(CaptureError::ForeignDirectory {
                    path: dir.to_owned(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(dir, "inspect")(e)),
    }
}

/// Creates `dir` (mode 0700) for a new capture, or takes it if it exists and
/// is empty. Refuses files, symlinks, foreign non-empty directories and
/// existing captures, touching none of them.
pub fn create_capture_dir(dir: &Path) -> Result<(), CaptureError> {
    if check_capture_dir(dir)? {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io(dir, "set permissions on"))?;
    } else {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io(parent, "create"))?;
        }
        DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io(dir, "create"))?;
    }
    Ok(())
}

/// Creates a table subdirectory (`events/`, `processes/`) with mode 0700.
pub fn create_subdir(dir: &Path) -> Result<(), CaptureError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io(dir, "create")(e)),
    }
}

/// Creates a new file, mode 0600, failing if anything (even a dangling
/// symlink) is already at `path`.
pub fn create_new(path: &Path) -> Result<File, CaptureError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io(path, "create"))
}

/// Flushes a directory entry change (create, rename) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), CaptureError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "sync"))
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of `dir`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CaptureError> {
    replace_file(dir, name, bytes, true)
}

/// Replaces `dir/name` by rename from a temp file, so readers and a killed
/// writer only ever see a whole file; `durable` adds the fsyncs that make it
/// survive power loss too.
pub fn replace_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    durable: bool,
) -> Result<(), CaptureError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    // A stale temp file from a crash is ours to replace.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp, "remove stale")(e)),
    }
    let mut f = create_new(&tmp)?;
    if let Err(e) = f
        .write_all(bytes)
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
    {
        // Leave no half-written temp file behind (a full disk needs the room).
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp, "write")(e));
    }
    drop(f);
    fs::rename(&tmp, &dest).map_err(io(&dest, "rename into place"))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// An exclusive advisory lock on a capture directory, held while a
/// recorder writes it (released by the kernel if the recorder dies), so
/// `recover` never touches a capture that is still being written.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] File);

pub fn lock_dir(dir: &Path) -> Result<DirLock, CaptureError> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir).map_err(io(dir, "open"))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(CaptureError::Busy {
                path: dir.to_owned(),
            });
        }
        return Err(io(dir, "lock")(e));
    }
    Ok(DirLock(f))
}

/// Reads a whole file of at most `max` bytes: untrusted input never makes
/// us allocate without bound.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = File::open(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {max} bytes; not a file credtrail wrote"
        )));
    }
    Ok(buf)
}
