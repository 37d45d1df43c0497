//! Careful file handling: captures hold sensitive data and are evidence,
//! and captures handed to us may be crafted. Every file of a capture is
//! reached through a [`Dir`] handle opened once (`openat`-style), by a plain
//! name (no `/`, no `..`), never following a symlink; directories are 0700,
//! files 0600, and nothing existing is overwritten.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, RenameFlags};

use crate::error::CaptureError;

fn errno<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rustix::io::Errno) -> CaptureError + 'a {
    move |e| CaptureError::io(path, op)(e.into())
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A directory handle; every file below it is reached by name from it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only: operations never resolve it again.
    path: PathBuf,
}

impl Dir {
    /// Opens a directory the user named (symlinks in the path they typed
    /// are theirs to follow).
    pub fn open(path: &Path) -> Result<Dir, CaptureError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(path, "open directory"))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// Opens the directory `path` itself: a symlink at `path` is refused.
    pub fn open_nofollow(path: &Path) -> Result<Dir, CaptureError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refused(path, e, "open directory"))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory's owner.
    pub fn owner(&self) -> Result<u32, CaptureError> {
        Ok(self.stat()?.st_uid)
    }

    /// The directory's owner and permission bits.
    pub fn owner_and_mode(&self) -> Result<(u32, u32), CaptureError> {
        let st = self.stat()?;
        Ok((st.st_uid, st.st_mode & 0o7777))
    }

    /// Mode 0700: nobody else lists or enters it.
    pub fn make_private(&self) -> Result<(), CaptureError> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(DIR_MODE))
            .map_err(errno(&self.path, "set permissions on"))
    }

    /// The subdirectory `name`, which must be a real directory, not a
    /// symlink.
    pub fn subdir(&self, name: &str) -> Result<Dir, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refused(&path, e, "open directory"))?;
        Ok(Dir { fd, path })
    }

    /// Creates the subdirectory `name` (0700) unless it exists, then opens it.
    pub fn create_subdir(&self, name: &str) -> Result<Dir, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(errno(&path, "create")(e)),
        }
        self.subdir(name)
    }

    /// A second handle on the same directory (for another thread).
    pub fn try_clone(&self) -> Result<Dir, CaptureError> {
        Ok(Dir {
            fd: self
                .fd
                .try_clone()
                .map_err(CaptureError::io(&self.path, "open"))?,
            path: self.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn stat(&self) -> Result<rustix::fs::Stat, CaptureError> {
        rustix::fs::fstat(&self.fd).map_err(errno(&self.path, "inspect"))
    }

    /// Creates a new file `name` (0600), failing if anything, even a
    /// dangling symlink, is already there.
    pub fn create_new(&self, name: &str) -> Result<File, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map_err(errno(&path, "create"))?;
        Ok(File::from(fd))
    }

    /// Opens `name` for reading: a regular file, not a symlink (a FIFO or a
    /// device is refused without blocking on it).
    pub fn open_file(&self, name: &str) -> Result<File, CaptureError> {
        self.open_regular(name, OFlags::RDONLY, false)
    }

    /// Opens `name` for repair (truncate, append): a regular file with a
    /// single link, so that nothing outside the capture can be changed
    /// through a hard link to it.
    pub fn open_for_repair(&self, name: &str) -> Result<File, CaptureError> {
        self.open_regular(name, OFlags::RDWR, true)
    }

    fn open_regular(
        &self,
        name: &str,
        mode: OFlags,
        single_link: bool,
    ) -> Result<File, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            mode | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refused(&path, e, "open"))?;
        let st = rustix::fs::fstat(&fd).map_err(errno(&path, "inspect"))?;
        check_regular(&path, &st, single_link)?;
        // Regular files ignore O_NONBLOCK; it only kept a FIFO from blocking.
        Ok(File::from(fd))
    }

    /// The length of the regular file `name` (not a symlink; with
    /// `single_link`, not a hard link to a file elsewhere either).
    pub fn file_len(&self, name: &str, single_link: bool) -> Result<u64, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno(&path, "inspect"))?;
        check_regular(&path, &st, single_link)?;
        Ok(st.st_size as u64)
    }

    /// What the entry `name` is (a symlink not followed); None if absent.
    pub fn kind(&self, name: &str) -> Result<Option<FileType>, CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(errno(&path, "inspect")(e)),
        }
    }

    /// Whether an entry `name` exists (of any type, symlinks not followed).
    pub fn exists(&self, name: &str) -> bool {
        check_name(&self.child(name), name).is_ok()
            && rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Renames `from` to `to` within this directory, never replacing `to`.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), CaptureError> {
        let path = self.child(to);
        check_name(&self.child(from), from)?;
        check_name(&path, to)?;
        rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE)
            .map_err(errno(&path, "rename into place"))
    }

    /// Renames `from` to `to` within this directory, replacing `to` (the
    /// entry itself, never what a symlink there points to).
    pub fn rename_over(&self, from: &str, to: &str) -> Result<(), CaptureError> {
        let path = self.child(to);
        check_name(&self.child(from), from)?;
        check_name(&path, to)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(errno(&path, "rename into place"))
    }

    /// Removes the file `name` (not a directory); a missing file is fine.
    pub fn remove(&self, name: &str) -> Result<(), CaptureError> {
        let path = self.child(name);
        check_name(&path, name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(errno(&path, "remove")(e)),
        }
    }

    /// Puts `name` into `dest` under the same name: a hard link when both
    /// are on one file system, else a copy (synced). Never replaces an
    /// existing entry. Returns whether it was linked.
    pub fn link_or_copy(&self, name: &str, dest: &Dir) -> Result<bool, CaptureError> {
        let path = dest.child(name);
        check_name(&path, name)?;
        match rustix::fs::linkat(&self.fd, name, &dest.fd, name, AtFlags::empty()) {
            Ok(()) => return Ok(true),
            // Another file system, or one without hard links.
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::PERM | rustix::io::Errno::MLINK) => {}
            Err(e) => return Err(errno(&path, "link")(e)),
        }
        let mut from = self.open_file(name)?;
        let mut to = dest.create_new(name)?;
        std::io::copy(&mut from, &mut to)
            .and_then(|_| to.sync_all())
            .map_err(CaptureError::io(&path, "copy"))?;
        Ok(false)
    }

    /// Flushes a directory entry change (create, rename) to disk.
    pub fn sync(&self) -> Result<(), CaptureError> {
        rustix::fs::fsync(&self.fd).map_err(errno(&self.path, "sync"))
    }

    /// The names in this directory, sorted (`.` and `..` left out).
    pub fn names(&self) -> Result<Vec<String>, CaptureError> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd).map_err(errno(&self.path, "list"))?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(errno(&self.path, "list"))?;
            let n = entry.file_name();
            if n != c"." && n != c".." {
                names.push(lossy(n));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Replaces `name` by rename from a temp file, so readers and a killed
    /// writer only ever see a whole file; `durable` adds the fsyncs that
    /// make it survive power loss too.
    pub fn replace_file(
        &self,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), CaptureError> {
        let tmp = format!(".{name}.tmp");
        // A stale temp file from a crash is ours to replace.
        self.remove(&tmp)?;
        let mut f = self.create_new(&tmp)?;
        if let Err(e) = f
            .write_all(bytes)
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
        {
            // Leave no half-written temp file behind (a full disk needs the room).
            drop(f);
            let _ = self.remove(&tmp);
            return Err(CaptureError::io(&self.child(&tmp), "write")(e));
        }
        drop(f);
        self.rename_over(&tmp, name)?;
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    /// Reads the whole file `name` if it is at most `max` bytes: untrusted
    /// input never makes us allocate without bound.
    pub fn read_bounded(&self, name: &str, max: u64) -> Result<Vec<u8>, CaptureError> {
        let f = self.open_file(name)?;
        read_limited(f, max).map_err(CaptureError::io(&self.child(name), "read"))
    }

    /// An exclusive advisory lock on this directory, held while a recorder
    /// writes it (released by the kernel if the recorder dies), so that
    /// `recover` never touches a capture that is still being written.
    pub fn lock(&self) -> Result<DirLock, CaptureError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(CaptureError::io(&self.path, "lock"))?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DirLock(fd)),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(CaptureError::Busy {
                path: self.path.clone(),
            }),
            Err(e) => Err(errno(&self.path, "lock")(e)),
        }
    }

    /// A path that reaches `name` through this handle, for a library that
    /// takes paths (polars): resolution starts at the handle, so a renamed
    /// or symlinked parent cannot redirect it. Valid while `self` lives.
    pub fn fd_path(&self, name: &str) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!(
            "/proc/self/fd/{}/{name}",
            self.fd.as_fd().as_raw_fd()
        ))
    }
}

/// A regular file (and, with `single_link`, not a hard link to a file
/// elsewhere), or an error naming what it is instead.
fn check_regular(
    path: &Path,
    st: &rustix::fs::Stat,
    single_link: bool,
) -> Result<(), CaptureError> {
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(CaptureError::Unsafe {
            path: path.to_owned(),
            message: "is not a regular file; refusing to use it".into(),
        });
    }
    if single_link && st.st_nlink != 1 {
        return Err(CaptureError::Unsafe {
            path: path.to_owned(),
            message: format!(
                "has {} hard links (a link to a file outside the capture?); refusing to change it",
                st.st_nlink
            ),
        });
    }
    Ok(())
}

/// An exclusive `flock` on a directory, released when dropped.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] OwnedFd);

fn lossy(n: &CStr) -> String {
    String::from_utf8_lossy(n.to_bytes()).into_owned()
}

/// A plain file name: not empty, not `.` or `..`, no `/` or NUL.
fn check_name(path: &Path, name: &str) -> Result<(), CaptureError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CaptureError::Unsafe {
            path: path.to_owned(),
            message: "is not a plain file name inside the capture".into(),
        });
    }
    Ok(())
}

/// An open refused because of what is there: a symlink (ELOOP with
/// O_NOFOLLOW) or a file where a directory should be.
fn refused(path: &Path, e: rustix::io::Errno, op: &'static str) -> CaptureError {
    match e {
        rustix::io::Errno::LOOP => CaptureError::Unsafe {
            path: path.to_owned(),
            message: "is a symbolic link; refusing to follow it".into(),
        },
        rustix::io::Errno::NOTDIR => CaptureError::Unsafe {
            path: path.to_owned(),
            message: "is not a directory (or is a symbolic link); refusing to follow it".into(),
        },
        e => errno(path, op)(e),
    }
}

/// Reads a whole file of at most `max` bytes.
fn read_limited(f: File, max: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {max} bytes; not a file credtrail wrote"
        )));
    }
    Ok(buf)
}

/// Reads a whole file the user named (a key, a policy, a pods file) of at
/// most `max` bytes. Only a regular file: a FIFO, a device (`/dev/zero`) or
/// a directory is refused without blocking on it or reading it.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, a device or a folder); refusing to read it",
        ));
    }
    read_limited(f, max)
}

/// Who may own a folder on the way to a capture, and how it may be open to
/// others: the root the user named may belong to root or to us and be
/// writable by others only with the sticky bit (as /tmp is: only an entry's
/// owner may rename it there); every folder below it must be ours and
/// writable by nobody else, or another user could rename the capture and
/// put a fake in its place.
fn check_folder(path: &Path, st: &rustix::fs::Stat, root: bool) -> Result<(), CaptureError> {
    let (me, owner, mode) = (euid(), st.st_uid, st.st_mode);
    let sticky = mode & 0o1000 != 0;
    let owner_ok = owner == me || (root && owner == 0);
    let open_to_others = mode & 0o022 != 0 && !(root && sticky);
    if owner_ok && !open_to_others {
        return Ok(());
    }
    Err(CaptureError::Unsafe {
        path: path.to_owned(),
        message: format!(
            "is owned by uid {owner} with mode {:o}: credtrail only writes in folders owned by {} and writable by nobody else (another user could rename the capture and put a fake in its place); remove it or choose another folder",
            mode & 0o7777,
            if root {
                format!("root or uid {me} (or sticky, like /tmp)")
            } else {
                format!("its uid {me}")
            }
        ),
    })
}

impl Dir {
    /// Opens the folder the user named as a root for captures (symlinks in
    /// the path they typed are theirs to follow), creating it and its
    /// missing parents 0700 when absent; refuses one [`check_folder`] does
    /// not allow as a root.
    pub fn open_root(path: &Path) -> Result<Dir, CaptureError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(path)
                .map_err(CaptureError::io(path, "create"))?;
        }
        let d = Dir::open(path)?;
        check_folder(path, &d.stat()?, true)?;
        Ok(d)
    }

    /// The folder `name` below this one, created 0700 when absent, entered
    /// without following a symlink; refused unless it is ours and writable
    /// by nobody else.
    pub fn private_subdir(&self, name: &str) -> Result<Dir, CaptureError> {
        let d = self.create_subdir(name)?;
        d.check_private()?;
        Ok(d)
    }

    /// Refuses this folder unless it is ours and writable by nobody else.
    pub fn check_private(&self) -> Result<(), CaptureError> {
        check_folder(&self.path, &self.stat()?, false)
    }

    /// Whether this folder is ours and writable by nobody else.
    pub fn is_private(&self) -> bool {
        self.check_private().is_ok()
    }

    /// The inode of this folder (to find its lock in /proc/locks).
    pub fn inode(&self) -> Result<u64, CaptureError> {
        Ok(self.stat()?.st_ino)
    }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}
