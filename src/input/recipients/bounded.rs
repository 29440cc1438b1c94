//! The recipients file as the csv reader reads it, never more than about `MAX_RECORD_BYTES` past
//! the start of the record being read: the csv crate has no limit of its own.
use std::fs::File;
use std::io::Read;

use super::{MAX_RECORD_BYTES, READ_BUFFER};

pub(super) struct Bounded {
    file: File,
    delivered: u64,
    stop_at: u64,
}

/// The error `Bounded` stops a read with.
#[derive(Debug, thiserror::Error)]
#[error("a record longer than {MAX_RECORD_BYTES} bytes")]
struct TooLong;

impl Bounded {
    pub(super) fn new(file: File) -> Bounded {
        let mut this = Bounded {
            file,
            delivered: 0,
            stop_at: 0,
        };
        this.allow_record_from(0);
        this
    }

    /// A record is read from byte `start`. Past its limit the reader has consumed more than
    /// `MAX_RECORD_BYTES` since `start`: it consumes its buffer whole before asking for more.
    pub(super) fn allow_record_from(&mut self, start: u64) {
        self.stop_at = start + (MAX_RECORD_BYTES + READ_BUFFER) as u64;
    }

    /// Whether a read failed because a record went past the limit.
    pub(super) fn stopped(e: &csv::Error) -> bool {
        match e.kind() {
            csv::ErrorKind::Io(io) => io.get_ref().is_some_and(|e| e.is::<TooLong>()),
            _ => false,
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.stop_at.saturating_sub(self.delivered);
        if room == 0 {
            return Err(std::io::Error::other(TooLong));
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let read = self.file.read(&mut buf[..n])?;
        self.delivered += read as u64;
        Ok(read)
    }
}
