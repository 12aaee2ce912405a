//! Reading a small local description file (an SDP named by a URL) without
//! letting the name reach devices, pseudo-files, pipes or the network.
//!
//! [`read_small_regular`] refuses, before anything is opened:
//! - network (UNC) names: `\\host\share\…`, `//host/share/…` (on Windows,
//!   opening one makes the OS authenticate to that host with the user's
//!   credentials), and with them the device namespaces `\\.\…` and `\\?\…`;
//! - device and kernel pseudo-file trees: `/dev/`, `/proc/`, `/sys/`
//!   (also after symlinks are resolved);
//! - DOS device names in any component (`NUL`, `CON`, `COM1.sdp`, …);
//!
//! then opens the file without blocking (`O_NONBLOCK | O_NOCTTY` on Unix: a
//! FIFO cannot hang the caller, a terminal is not adopted), checks with
//! `fstat` on the opened file that it is a regular file of at most `max`
//! bytes, and reads at most `max + 1` bytes.

use std::io::Read;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// The name is refused before anything is opened (the reason says why).
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    /// The name is not a regular file (a directory, device, FIFO or socket).
    #[error("not a regular file")]
    NotRegular,
    /// The file is larger than allowed (`size`, `max` in bytes).
    #[error("file too large ({size} bytes, at most {max} allowed)")]
    TooLarge {
        /// Size found, bytes (at least `max + 1` when found by reading).
        size: u64,
        /// The limit, bytes.
        max: u64,
    },
    /// The OS refused (not found, permission, …).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// DOS device names, refused as a file name (any extension) on every OS.
const DOS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "conin$", "conout$", "com0", "com1", "com2", "com3", "com4",
    "com5", "com6", "com7", "com8", "com9", "lpt0", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6",
    "lpt7", "lpt8", "lpt9",
];

/// Device and pseudo-file trees refused (before and after symlinks).
const DEVICE_TREES: &[&str] = &["/dev/", "/proc/", "/sys/"];

/// The lexical checks of [`read_small_regular`] (nothing is opened).
///
/// Errors: [`SmallFileError::NotAllowed`] with the reason.
pub fn check_local_name(name: &str) -> Result<(), SmallFileError> {
    let b = name.as_bytes();
    let sep = |c: u8| c == b'/' || c == b'\\';
    if name.is_empty() {
        return Err(SmallFileError::NotAllowed("empty path"));
    }
    if name.contains('\0') {
        return Err(SmallFileError::NotAllowed("NUL in path"));
    }
    if b.len() >= 2 && sep(b[0]) && sep(b[1]) {
        return Err(SmallFileError::NotAllowed(
            "network (UNC) or device namespace path (\\\\host\\share, //host/share, \\\\.\\, \\\\?\\)",
        ));
    }
    let unixish = name.replace('\\', "/");
    if DEVICE_TREES
        .iter()
        .any(|t| unixish.starts_with(t) || unixish == t[..t.len() - 1])
    {
        return Err(SmallFileError::NotAllowed(
            "device or kernel pseudo-file path (/dev, /proc, /sys)",
        ));
    }
    let dos_device = unixish.split('/').any(|c| {
        let stem = c
            .split('.')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', ':']);
        DOS_DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d))
    });
    if dos_device {
        return Err(SmallFileError::NotAllowed(
            "device name (CON, NUL, COMn, LPTn, ...)",
        ));
    }
    Ok(())
}

/// Reads the regular file `path` of at most `max` bytes (see the module
/// docs for what is refused).
///
/// Errors: [`SmallFileError::NotAllowed`] (name refused, nothing opened),
/// [`SmallFileError::NotRegular`], [`SmallFileError::TooLarge`],
/// [`SmallFileError::Io`] (not found, permission, …).
pub fn read_small_regular(path: &str, max: u64) -> Result<Vec<u8>, SmallFileError> {
    check_local_name(path)?;
    // Symlinks resolved: the target must pass the same checks. (On Windows
    // the result is a `\\?\C:\…` verbatim path: only a verbatim UNC target
    // is refused there.)
    let real = std::fs::canonicalize(path)?;
    let real_s = real.to_string_lossy();
    if let Some(rest) = real_s.strip_prefix(r"\\?\") {
        if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("UNC\\") {
            return Err(SmallFileError::NotAllowed(
                "the path resolves to a network (UNC) path",
            ));
        }
    } else {
        check_local_name(&real_s)?;
    }
    let file = open_nonblocking(&real)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    if meta.len() > max {
        return Err(SmallFileError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(SmallFileError::TooLarge {
            size: out.len() as u64,
            max,
        });
    }
    Ok(out)
}

/// Opens for reading without blocking on a FIFO and without adopting a
/// terminal as controlling tty.
#[cfg(unix)]
fn open_nonblocking(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(p)
}

/// Opens for reading (named pipes and devices were refused by name).
#[cfg(not(unix))]
fn open_nonblocking(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refused_before_opening() {
        for n in [
            r"\\host\share\s.sdp",
            "//host/share/s.sdp",
            r"\\.\pipe\x",
            r"\\?\C:\s.sdp",
            r"/\host\s.sdp",
            "/dev/zero",
            "/proc/self/environ",
            "/sys/kernel/notes",
            "/dev",
            r"C:\temp\NUL",
            r"C:\temp\com1.sdp",
            "dir/aux.txt",
            "",
        ] {
            assert!(
                matches!(check_local_name(n), Err(SmallFileError::NotAllowed(_))),
                "{n:?} accepted"
            );
        }
        for n in [
            "/etc/aes67/studio1.sdp",
            r"C:\aes67\s.sdp",
            "s.sdp",
            "/tmp/console.sdp",
        ] {
            assert!(check_local_name(n).is_ok(), "{n:?} refused");
        }
    }
}
