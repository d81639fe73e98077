//! One shared mapping: a memfd (anonymous) or a named POSIX shm object.

use crate::error::{Error, Result};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{Mode, fstat, ftruncate};
use rustix::io::Errno;
use std::os::fd::OwnedFd;

/// The longest name `shm_open` takes on Linux, without the leading `/`.
const NAME_MAX: usize = 250;

/// A shared-memory mapping: the bytes an [`Arena`](crate::Arena) lives in.
///
/// An anonymous segment is a memfd: it has no name, and only forked children
/// (which inherit the mapping) share it. A named segment is a POSIX shm object
/// (`/dev/shm/NAME`, mode 0600) that unrelated processes open by name; the
/// process that created it unlinks it when it drops its handle (already
/// attached processes keep their mapping).
///
/// Most programs never touch a `Segment`: an [`Arena`](crate::Arena) makes
/// and lays out its own. It is the raw bytes, for callers that want their own
/// layout.
///
/// # Examples
///
/// ```
/// use shmproc::Segment;
///
/// // Named: any process may open it; this one created it, so it unlinks the
/// // name when `created` is dropped.
/// let name = format!("shmproc-doc-segment-{}", std::process::id());
/// let created = Segment::create(&name, 1 << 16)?;
/// let opened = Segment::open(&name)?;
/// assert_eq!(opened.len(), 1 << 16);
/// assert_eq!(created.name(), Some(format!("/{name}").as_str()));
///
/// // Two mappings of the same pages: a byte written through one is read
/// // through the other.
/// // SAFETY: both pointers are to the first byte of a live 64 KiB mapping,
/// // and nothing else accesses it meanwhile.
/// unsafe { created.as_ptr().write(42) };
/// // SAFETY: as above.
/// assert_eq!(unsafe { opened.as_ptr().read() }, 42);
///
/// // Anonymous (a memfd): shared with children forked after this point.
/// let anonymous = Segment::anonymous(4096)?;
/// assert_eq!((anonymous.len(), anonymous.name()), (4096, None));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Segment {
    map: MmapRaw,
    name: Option<String>,
    /// The pid that must unlink the name on drop (the creator), if any.
    unlink_in: Option<i32>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("len", &self.len())
            .finish()
    }
}

/// Checks a user's segment name and gives the `/name` form `shm_open` wants.
pub(crate) fn shm_path(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.len() > NAME_MAX || bare.contains('/') || bare.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "segment name {name:?} must be 1 to {NAME_MAX} bytes with no '/' or NUL after an optional leading '/'"
        )));
    }
    Ok(format!("/{bare}"))
}

fn map_fd(fd: &OwnedFd, len: usize) -> Result<MmapRaw> {
    MmapOptions::new()
        .len(len)
        .map_raw(fd)
        .map_err(|e| Error::os("mmap", e))
}

impl Segment {
    /// Creates an anonymous segment of `len` bytes (`memfd_create` + `ftruncate` + `mmap`).
    ///
    /// Pages are backed only when touched, so a large `len` is cheap.
    pub fn anonymous(len: usize) -> Result<Segment> {
        use rustix::fs::{MemfdFlags, memfd_create};
        let fd = memfd_create("shmproc", MemfdFlags::CLOEXEC)
            .map_err(|e| Error::os("memfd_create", e))?;
        ftruncate(&fd, len as u64).map_err(|e| Error::os("ftruncate", e))?;
        let map = map_fd(&fd, len)?;
        Ok(Segment {
            map,
            name: None,
            unlink_in: None,
        })
    }

    /// Creates the named segment `name` of `len` bytes (`shm_open(O_CREAT|O_EXCL, 0600)`).
    ///
    /// # Errors
    /// [`Error::SegmentExists`] if the name is taken.
    pub fn create(name: &str, len: usize) -> Result<Segment> {
        use rustix::shm;
        let path = shm_path(name)?;
        let fd = shm::open(
            path.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| match e {
            Errno::EXIST => Error::SegmentExists { name: path.clone() },
            Errno::ACCESS => Error::PermissionDenied { name: path.clone() },
            e => Error::os("shm_open", e),
        })?;
        let made = ftruncate(&fd, len as u64)
            .map_err(|e| Error::os("ftruncate", e))
            .and_then(|()| map_fd(&fd, len));
        match made {
            Ok(map) => Ok(Segment {
                map,
                name: Some(path),
                unlink_in: Some(rustix::process::getpid().as_raw_nonzero().get()),
            }),
            Err(e) => {
                let _ = shm::unlink(path.as_str());
                Err(e)
            }
        }
    }

    /// Opens the existing named segment `name` (`shm_open(O_RDWR)`), mapping all of it.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`], [`Error::PermissionDenied`].
    pub fn open(name: &str) -> Result<Segment> {
        use rustix::shm;
        let path = shm_path(name)?;
        let fd =
            shm::open(path.as_str(), shm::OFlags::RDWR, Mode::empty()).map_err(|e| match e {
                Errno::NOENT => Error::NoSuchSegment { name: path.clone() },
                Errno::ACCESS | Errno::PERM => Error::PermissionDenied { name: path.clone() },
                e => Error::os("shm_open", e),
            })?;
        let len = fstat(&fd).map_err(|e| Error::os("fstat", e))?.st_size;
        let len = usize::try_from(len).map_err(|_| Error::Corrupt {
            what: format!("segment {path} reports a negative size"),
        })?;
        if len < super::header::HEADER_SIZE {
            // Too short to hold a header (a creator still sizing it, or cut short).
            return Err(Error::Truncated {
                name: path,
                expected: super::header::HEADER_SIZE as u64,
                actual: len as u64,
            });
        }
        let map = map_fd(&fd, len)?;
        Ok(Segment {
            map,
            name: Some(path),
            unlink_in: None,
        })
    }

    /// The mapping's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True for a zero-length segment.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `/name` of a named segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let (Some(name), Some(pid)) = (&self.name, self.unlink_in) {
            if rustix::process::getpid().as_raw_nonzero().get() == pid {
                let _ = rustix::shm::unlink(name.as_str());
            }
        }
    }
}
