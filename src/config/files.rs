//! Reading the files a config names (secrets, token lists, manifests, rule
//! files) without trusting them: regular files only (a FIFO never blocks a
//! reload), never past a size limit, and errors that name the file and
//! why, never its contents.

use std::path::{Path, PathBuf};

use super::Secret;

/// Secret and token files are small: anything larger is a mistake (or an
/// attack on the reload loop), never read whole.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Why a file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {kind}", path.display())]
    Unreadable {
        path: PathBuf,
        kind: std::io::ErrorKind,
    },
    #[error("{} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{} is empty", path.display())]
    Empty { path: PathBuf },
}

/// Read a small regular file as text: never blocks on a FIFO, never reads
/// past `MAX_SECRET_FILE_BYTES`.
pub fn read_small_file(path: &Path) -> Result<String, FileError> {
    read_bounded(path, MAX_SECRET_FILE_BYTES)
}

/// Read a regular file of at most `limit` bytes as text (see
/// [`read_small_file`]).
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, FileError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| FileError::Unreadable {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    let too_large = || FileError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Read a secret file (a Kubernetes Secret mount): trailing newline trimmed.
pub fn read_secret_file(path: &Path) -> Result<Secret, FileError> {
    let text = read_small_file(path)?;
    let s = text.trim_end_matches(['\r', '\n']);
    if s.trim().is_empty() {
        Err(FileError::Empty {
            path: path.to_path_buf(),
        })
    } else {
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_the_file_and_never_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "s3cr3t".repeat(20)).unwrap();
        let e = read_bounded(&big, 16).unwrap_err();
        assert!(matches!(e, FileError::TooLarge { limit: 16, .. }), "{e}");
        let blank = dir.path().join("blank");
        std::fs::write(&blank, " \n").unwrap();
        let e = read_secret_file(&blank).unwrap_err();
        assert!(matches!(e, FileError::Empty { .. }));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, b's']).unwrap();
        assert!(matches!(
            read_small_file(&binary),
            Err(FileError::NotUtf8 { .. })
        ));
        assert!(matches!(
            read_small_file(dir.path()),
            Err(FileError::NotRegular { .. })
        ));
        let gone = read_small_file(&dir.path().join("gone")).unwrap_err();
        assert_eq!(
            gone,
            FileError::Unreadable {
                path: dir.path().join("gone"),
                kind: std::io::ErrorKind::NotFound
            }
        );
        for e in [read_bounded(&big, 16).unwrap_err(), gone] {
            let shown = e.to_string();
            assert!(shown.contains(&*dir.path().to_string_lossy()), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert_eq!(
            read_secret_file(&big).unwrap().expose(),
            "s3cr3t".repeat(20)
        );
    }
}
