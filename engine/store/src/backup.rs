//! Online backups: a consistent copy of the store in one file, and restoring one.
//!
//! A backup reads a snapshot of the keyspace (the store as of one instant, while the
//! writer goes on) and writes every record in key order:
//!
//! ```text
//! "ALICIA-STORE-BACKUP\n"  u32 version
//! { u8 1, u32 key length, key, u32 value length, value } per record
//! u8 0, u64 record count, SHA-256 of every byte before it
//! ```
//!
//! It is written to `FILE.partial` and renamed into place after an fsync, so a backup
//! that exists is whole. Restoring checks the count and the hash of the whole file
//! before it touches anything, then builds the store in a new directory and swaps it in;
//! the store it replaces is kept beside it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{StoreError, PARTITION};

const MAGIC: &[u8; 20] = b"ALICIA-STORE-BACKUP\n";
const VERSION: u32 = 1;
/// No key or record the engine writes comes near this; a larger length means damage.
const MAX_FIELD: u32 = 512 * 1024 * 1024;

/// What a backup or restore handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub records: u64,
    pub bytes: u64,
}

fn backup_error(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backup { path: path.to_path_buf(), error: error.to_string() }
}

/// A writer that hashes what goes through it.
struct Hashing<W: Write + ?Sized> {
    hash: Sha256,
    bytes: u64,
    inner: W,
}

impl<W: Write + ?Sized> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every record of `snapshot` to `out` in the backup layout.
pub(crate) fn write_to(snapshot: &fjall::Snapshot, out: &mut dyn Write) -> Result<BackupSummary, std::io::Error> {
    let mut out = Hashing { inner: out, hash: Sha256::new(), bytes: 0 };
    let mut records = 0u64;
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_be_bytes())?;
    for item in snapshot.iter() {
        let (key, value) = item.map_err(std::io::Error::other)?;
        out.write_all(&[1])?;
        out.write_all(&(key.len() as u32).to_be_bytes())?;
        out.write_all(&key)?;
        out.write_all(&(value.len() as u32).to_be_bytes())?;
        out.write_all(&value)?;
        records += 1;
    }
    out.write_all(&[0])?;
    out.write_all(&records.to_be_bytes())?;
    let digest = out.hash.clone().finalize();
    out.inner.write_all(&digest)?;
    out.inner.flush()?;
    Ok(BackupSummary { records, bytes: out.bytes + digest.len() as u64 })
}

/// Writes `path` whole or not at all: `path.partial`, fsynced, then renamed.
pub(crate) fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<BackupSummary, std::io::Error>,
) -> Result<BackupSummary, StoreError> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let result = (|| -> Result<BackupSummary, std::io::Error> {
        let mut out = BufWriter::new(File::create(&partial)?);
        let summary = fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(summary)
    })();
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(backup_error(&partial, e));
        }
    };
    std::fs::rename(&partial, path).map_err(|e| backup_error(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(summary)
}

/// Checks that `path` is a whole backup (framing, count, checksum) without using it.
pub fn verify(path: &Path) -> Result<BackupSummary, StoreError> {
    read(path, |_, _| Ok(()))
}

/// Reads a backup's records, checking its framing; `visit` gets each (key, value).
fn read(
    path: &Path,
    mut visit: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), StoreError>,
) -> Result<BackupSummary, StoreError> {
    let file = File::open(path).map_err(|e| backup_error(path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut input = BufReader::new(file);
    let mut hash = Sha256::new();
    let damaged = |what: &str| backup_error(path, format!("not a whole Alicia store backup: {what}"));
    let mut take = |n: usize, hash: &mut Sha256| -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0; n];
        input.read_exact(&mut buf).map_err(|_| damaged("it ends early"))?;
        hash.update(&buf);
        Ok(buf)
    };
    if take(MAGIC.len(), &mut hash)? != MAGIC {
        return Err(damaged("it does not start like one"));
    }
    let version = u32::from_be_bytes(take(4, &mut hash)?.try_into().unwrap_or_default());
    if version != VERSION {
        return Err(damaged(&format!("layout version {version}")));
    }
    let mut records = 0u64;
    let length = |b: Vec<u8>| -> Result<usize, StoreError> {
        let n = u32::from_be_bytes(b.try_into().unwrap_or_default());
        if n > MAX_FIELD {
            return Err(damaged("a record length is out of range"));
        }
        Ok(n as usize)
    };
    loop {
        match take(1, &mut hash)?[0] {
            1 => {
                let key_len = length(take(4, &mut hash)?)?;
                let key = take(key_len, &mut hash)?;
                let value_len = length(take(4, &mut hash)?)?;
                let value = take(value_len, &mut hash)?;
                visit(key, value)?;
                records += 1;
            }
            0 => break,
            _ => return Err(damaged("a record marker is wrong")),
        }
    }
    let count = u64::from_be_bytes(take(8, &mut hash)?.try_into().unwrap_or_default());
    if count != records {
        return Err(damaged("its record count does not match"));
    }
    let expected = hash.finalize();
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest).map_err(|_| damaged("it ends early"))?;
    if digest[..] != expected[..] {
        return Err(damaged("its checksum does not match"));
    }
    if input.read(&mut [0u8; 1]).map_err(|e| backup_error(path, e))? != 0 {
        return Err(damaged("bytes follow its end"));
    }
    Ok(BackupSummary { records, bytes: size })
}

/// Replaces the store in `dir` with the backup in `path`. The engine must be stopped (the
/// directory's lock says so). The whole file is checked first; the old store is moved to
/// `dir/db.before-restore-{unix time}`.
pub fn restore(dir: &Path, path: &Path) -> Result<BackupSummary, StoreError> {
    read(path, |_, _| Ok(()))?;
    let _lock = crate::lock(dir)?;
    let staging = dir.join("db.restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| backup_error(&staging, e))?;
    }
    let summary = {
        let keyspace = fjall::Config::new(&staging).open()?;
        let partition = keyspace.open_partition(PARTITION, fjall::PartitionCreateOptions::default())?;
        let mut batch = keyspace.batch();
        let summary = read(path, |key, value| {
            batch.insert(&partition, key, value);
            Ok(())
        })?;
        batch.commit()?;
        keyspace.persist(fjall::PersistMode::SyncAll)?;
        summary
    };
    let live = dir.join("db");
    if live.exists() {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let aside = dir.join(format!("db.before-restore-{secs}"));
        std::fs::rename(&live, &aside).map_err(|e| backup_error(&aside, e))?;
        tracing::info!(kept = %aside.display(), "the store that was replaced is kept");
    }
    std::fs::rename(&staging, &live).map_err(|e| backup_error(&live, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(summary)
}
