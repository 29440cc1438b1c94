//! One run at a time per results file: an OS lock on `.campaign/<results>.lock`, held for the whole
//! run and released by the OS when the process ends, however it ends, so it never needs clearing by
//! hand.
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

use anyhow::Context as _;

/// Another process holds the lock: it is sending (or settling) this campaign right now.
#[derive(Debug, thiserror::Error)]
#[error("another run is using {results} ({holder}): two runs at once would message the same rows. Wait for it to end, or stop it (Ctrl-C in its terminal); nothing was sent by this one")]
pub(crate) struct Busy {
    pub(crate) results: String,
    pub(crate) holder: String,
}

/// The lock file was removed or replaced while this process held it: another run may have taken
/// a lock of its own and be writing the ledger, so this one must not write any of its files again.
#[derive(Debug, thiserror::Error)]
#[error("the lock file {lock} was removed or replaced during the run, so another run could start beside this one; this run wrote nothing to the ledger after that")]
pub(crate) struct LockLost {
    pub(crate) lock: String,
}

/// Held while this process uses the ledger; the lock goes with the file when it is dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    /// Held for its OS lock, released when it is dropped.
    _file: File,
    path: std::path::PathBuf,
    /// The locked file's device and inode, taken once: the open file's identity never changes,
    /// so each check costs one `stat` of the path.
    #[cfg(unix)]
    held: (u64, u64),
    /// Set the first time the lock is found gone, and never cleared: a lock put back later (by
    /// another run) is not this one's.
    lost: std::sync::atomic::AtomicBool,
}

impl RunLock {
    /// Takes the lock at once or fails with [`Busy`], naming the run that holds it (its pid and
    /// start time, which it wrote into the lock file).
    pub(crate) fn acquire(lock: &Path, results: &Path) -> anyhow::Result<RunLock> {
        super::regular_or_absent(lock)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock)
            .with_context(|| format!("cannot open the lock file {}", lock.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // The holder writes its pid just after it takes the lock: give it a moment.
                let mut holder = String::new();
                for _ in 0..50 {
                    holder.clear();
                    let _ = (&file).rewind();
                    let _ = (&file).take(200).read_to_string(&mut holder);
                    if !holder.trim().is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let holder = match holder.trim() {
                    "" => "a process that is just starting".to_string(),
                    h => h.to_string(),
                };
                return Err(Busy {
                    results: results.display().to_string(),
                    holder,
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock.display()))
            }
        }
        let me = format!(
            "pid {}, started {}",
            std::process::id(),
            super::now_rfc3339()
        );
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(me.as_bytes())?;
        file.flush()?;
        #[cfg(unix)]
        let held = {
            use std::os::unix::fs::MetadataExt;
            let m = file
                .metadata()
                .with_context(|| format!("cannot read the lock file {}", lock.display()))?;
            (m.dev(), m.ino())
        };
        Ok(RunLock {
            _file: file,
            path: lock.to_path_buf(),
            #[cfg(unix)]
            held,
            lost: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Checked before every write to a ledger file: `Err` once the lock was found removed or
    /// replaced, and from then on for good.
    pub(crate) fn check(&self) -> Result<(), LockLost> {
        use std::sync::atomic::Ordering;
        if !self.lost.load(Ordering::SeqCst) && self.still_held() {
            return Ok(());
        }
        self.lost.store(true, Ordering::SeqCst);
        Err(LockLost {
            lock: self.path.display().to_string(),
        })
    }

    /// Whether [`RunLock::check`] has found the lock gone.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the lock file at the path is still the one this process locked: one removed or
    /// replaced by hand would let another run take a lock of its own beside this one.
    pub(crate) fn still_held(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&self.path).is_ok_and(|now| (now.dev(), now.ino()) == self.held)
        }
        #[cfg(not(unix))]
        {
            self.path.exists()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, results) = (dir.path().join("r.lock"), dir.path().join("r.csv"));
        let first = RunLock::acquire(&lock, &results).unwrap();
        let err = RunLock::acquire(&lock, &results).unwrap_err();
        let busy = err.downcast_ref::<Busy>().expect("Busy");
        assert!(
            busy.holder
                .starts_with(&format!("pid {}, started ", std::process::id())),
            "{}",
            busy.holder
        );
        assert!(first.still_held());
        drop(first);
        let again = RunLock::acquire(&lock, &results).unwrap();
        again.check().unwrap();
        std::fs::remove_file(&lock).unwrap();
        assert!(!again.still_held());
        assert!(again.check().is_err());
        // Another run's lock at the same path is not this one's: lost stays lost.
        let _other = RunLock::acquire(&lock, &results).unwrap();
        assert!(again.check().is_err() && again.is_lost());
    }
}
