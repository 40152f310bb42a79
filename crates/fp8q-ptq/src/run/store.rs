//! Writing a result so that no reader ever sees half of it: the bytes go to a temporary file
//! beside the target (`.NAME.PID.tmp`), which is then renamed over the target. A process killed
//! while writing leaves at most that temporary file, which readers of `*.json` ignore and a
//! later attempt simply leaves behind or replaces.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{PtqError, Result};

/// The temporary file [`write_atomically`] writes `path` through (this process's).
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_path(path);
    let io = |err: std::io::Error, p: &Path| PtqError::Io {
        path: p.to_path_buf(),
        err,
    };
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(e, &tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io(e, &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e, path)
    })
}

/// Write `value` as pretty JSON to `path` through a temporary file and a rename.
pub fn write_json_atomically(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| PtqError::invalid(path.display().to_string(), e.to_string()))?;
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("fp8q_store_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("r.json");
        std::fs::write(&target, "old").unwrap();
        write_atomically(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(!temporary_path(&target).exists());
        let missing = dir.join("no/such/dir/r.json");
        assert!(write_atomically(&missing, b"x")
            .unwrap_err()
            .to_string()
            .contains("no/such/dir"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
