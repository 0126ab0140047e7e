//! The file the writer thread appends to, rotated by size the way logrotate names it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `audit.log` plus `audit.log.1` (newest) … `audit.log.{keep}` (oldest).
pub(crate) struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    /// Bytes in the live file, ours and whatever was there when we opened it.
    size: u64,
    /// Lines not yet written: a batch goes out in as few `write` calls as rotation allows.
    pending: Vec<u8>,
    pending_lines: usize,
}

impl RotatingFile {
    /// Opens (or creates) the live file, appending to what is already there.
    pub(crate) fn open(path: PathBuf, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let mut file =
            RotatingFile { path, max_bytes, keep, file: None, size: 0, pending: Vec::new(), pending_lines: 0 };
        file.reopen()?;
        Ok(file)
    }

    /// Reopens when the live file is gone or is no longer the file at `path` (someone
    /// moved it away, as an external logrotate does, or removed its directory): writing
    /// on to an unlinked file would lose every record while looking healthy.
    pub(crate) fn check_path(&mut self) -> io::Result<()> {
        if self.file.is_some() && !self.still_at_path() {
            self.file = None;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        Ok(())
    }

    /// Queues one line (newline included), rotating first if it would push the live
    /// file past `max_bytes`. A line larger than `max_bytes` still goes into a file of its
    /// own: a record is never split or dropped for size. Returns how many queued lines a
    /// rotation wrote out.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> io::Result<usize> {
        let used = self.size + self.pending.len() as u64;
        let mut written = 0;
        if self.max_bytes > 0 && used > 0 && used + line.len() as u64 > self.max_bytes {
            written = self.write_pending()?;
            self.rotate()?;
        }
        self.pending.extend_from_slice(line);
        self.pending_lines += 1;
        Ok(written)
    }

    /// Writes and flushes what is queued; returns how many lines that was.
    pub(crate) fn write_pending(&mut self) -> io::Result<usize> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                self.reopen()?;
                self.file.as_mut().ok_or_else(|| io::Error::other("audit log not open"))?
            }
        };
        let result = file.write_all(&self.pending).and_then(|()| file.flush());
        match result {
            Ok(()) => {
                self.size += self.pending.len() as u64;
                self.pending.clear();
                Ok(std::mem::take(&mut self.pending_lines))
            }
            Err(e) => {
                // The handle may be half-written or dead; the next batch starts afresh.
                self.file = None;
                Err(e)
            }
        }
    }

    /// Asks the kernel to put what was written on the disk itself (shutdown, flushes).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.as_ref().map_or(Ok(()), File::sync_data)
    }

    /// Forgets queued lines after a failure; returns how many were lost.
    pub(crate) fn discard_pending(&mut self) -> usize {
        self.pending.clear();
        std::mem::take(&mut self.pending_lines)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            // Shift oldest first so nothing is overwritten before it has moved; renaming
            // onto `.{keep}` replaces the oldest, which is how it is deleted.
            for n in (1..self.keep).rev() {
                rename_if_present(&numbered(&self.path, n), &numbered(&self.path, n + 1))?;
            }
            rename_if_present(&self.path, &numbered(&self.path, 1))?;
        }
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    #[cfg(unix)]
    fn still_at_path(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Some(file), Ok(on_disk)) = (&self.file, fs::metadata(&self.path)) else {
            return false;
        };
        file.metadata().is_ok_and(|open| open.dev() == on_disk.dev() && open.ino() == on_disk.ino())
    }

    #[cfg(not(unix))]
    fn still_at_path(&self) -> bool {
        self.path.exists()
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotation_shifts_files_and_keeps_only_keep_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut file = RotatingFile::open(path.clone(), 10, 2).unwrap();
        for line in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n"] {
            file.push_line(line.as_bytes()).unwrap();
            file.write_pending().unwrap();
        }
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&numbered(&path, 1)), "eeee\nffff\n");
        assert_eq!(read(&numbered(&path, 2)), "cccc\ndddd\n");
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn keep_zero_truncates_and_an_oversized_line_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut file = RotatingFile::open(path.clone(), 4, 0).unwrap();
        file.push_line(b"0123456789\n").unwrap();
        file.push_line(b"x\n").unwrap();
        file.write_pending().unwrap();
        assert_eq!(read(&path), "x\n");
        assert!(!numbered(&path, 1).exists());
    }

    #[test]
    fn an_existing_file_counts_towards_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, "old line\n").unwrap();
        let mut file = RotatingFile::open(path.clone(), 12, 1).unwrap();
        file.push_line(b"new line\n").unwrap();
        file.write_pending().unwrap();
        assert_eq!(read(&numbered(&path, 1)), "old line\n");
        assert_eq!(read(&path), "new line\n");
    }

    #[test]
    fn a_file_moved_away_is_replaced_at_the_next_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut file = RotatingFile::open(path.clone(), 0, 3).unwrap();
        file.push_line(b"before\n").unwrap();
        file.write_pending().unwrap();
        fs::rename(&path, dir.path().join("moved")).unwrap();
        file.check_path().unwrap();
        file.push_line(b"after\n").unwrap();
        file.write_pending().unwrap();
        assert_eq!(read(&path), "after\n");
        assert_eq!(read(&dir.path().join("moved")), "before\n");
    }
}
