//! Replace a file whole, so a crash or a concurrent reader never sees half of it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::AuthError;

/// Writes `contents` to a temp file beside `path` (mode 0600: it holds password hashes),
/// flushes it to disk and renames it over `path`.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), AuthError> {
    let fail = |source| AuthError::Write { path: path.to_path_buf(), source };
    let name = path.file_name().ok_or_else(|| fail(std::io::Error::other("not a file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}
