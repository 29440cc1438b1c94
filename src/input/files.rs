//! The files a campaign names, read within bounds: only regular files (a FIFO would hang the
//! read, a device such as `/dev/zero` never ends), and only up to a size that no such file
//! needs, checked before the file is read and again while it is read (it may grow meanwhile).
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// A message template (`body_file`, `subject_file`) or the campaign file.
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;
/// A token file.
pub const MAX_TOKEN_BYTES: u64 = 64 << 10;
/// A list file: `[send] suppress`, the sandbox's contacts or admins.
pub const MAX_LIST_BYTES: u64 = 256 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // The cause is in the message and not also a `source`: an error chain printed whole
    // (`{:#}`) would say it twice.
    #[error("cannot read {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{path} is {kind}, not a regular file: give the path of a file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is over {limit} bytes, more than such a file needs")]
    TooLarge { path: String, limit: u64 },
    #[error("{path} is not UTF-8 text")]
    NotText { path: String },
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a pipe (FIFO)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Refuses `path` unless it is a regular file (after links); checked before opening, since
/// opening a FIFO blocks until someone writes to it.
pub fn regular(path: &Path) -> Result<std::fs::Metadata, FileError> {
    let shown = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|cause| FileError::Io {
        path: shown(),
        cause,
    })?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: shown(),
            kind: kind(&meta),
        });
    }
    Ok(meta)
}

/// Opens a regular file of at most `limit` bytes, for a reader that stops at `limit` too.
pub fn open(path: &Path, limit: u64) -> Result<std::io::Take<File>, FileError> {
    let shown = || path.display().to_string();
    let meta = regular(path)?;
    if meta.len() > limit {
        return Err(FileError::TooLarge {
            path: shown(),
            limit,
        });
    }
    let file = File::open(path).map_err(|cause| FileError::Io {
        path: shown(),
        cause,
    })?;
    Ok(file.take(limit + 1))
}

/// The text of a regular file of at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    let shown = || path.display().to_string();
    let mut bytes = Vec::new();
    open(path, limit)?
        .read_to_end(&mut bytes)
        .map_err(|cause| FileError::Io {
            path: shown(),
            cause,
        })?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: shown(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotText { path: shown() })
}

/// A reader that fails once more than its limit has been read: for files read as a stream.
pub struct Capped<R> {
    inner: R,
    left: u64,
    path: String,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other(FileError::TooLarge {
                path: self.path.clone(),
                limit: self.limit,
            }));
        }
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let read = self.inner.read(&mut buf[..n])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// A regular file of at most `limit` bytes, as a stream that fails past `limit`.
pub fn capped(path: &Path, limit: u64) -> Result<Capped<File>, FileError> {
    let take = open(path, limit)?;
    Ok(Capped {
        inner: take.into_inner(),
        left: limit,
        path: path.display().to_string(),
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_folders_and_fifos_and_big_files() {
        let err = read_text(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero is a device, not a regular file: give the path of a file"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_text(dir.path(), 10),
            Err(FileError::NotRegular {
                kind: "a folder",
                ..
            })
        ));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(matches!(
            read_text(&fifo, 10),
            Err(FileError::NotRegular {
                kind: "a pipe (FIFO)",
                ..
            })
        ));
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(11)).unwrap();
        assert_eq!(
            read_text(&big, 10).unwrap_err().to_string(),
            format!(
                "{} is over 10 bytes, more than such a file needs",
                big.display()
            )
        );
        assert_eq!(read_text(&big, 11).unwrap(), "x".repeat(11));
    }
}
