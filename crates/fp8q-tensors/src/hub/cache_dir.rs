//! Where PyTorch keeps downloaded checkpoints: `torch.hub.get_dir()` + `/checkpoints`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Result, TensorError};

/// The torch hub checkpoint folder for this process's environment; see [`hub_checkpoint_dir_from`].
pub fn hub_checkpoint_dir() -> Result<PathBuf> {
    hub_checkpoint_dir_from(|name| std::env::var_os(name))
}

/// The torch hub checkpoint folder, with environment variables read through `env`.
///
/// As in PyTorch (`torch.hub._get_torch_home`): `$TORCH_HOME` as given, else
/// `$XDG_CACHE_HOME/torch`, else `~/.cache/torch`; then a leading `~` is replaced by the home
/// folder (`$HOME`; `%USERPROFILE%` on Windows), and `hub/checkpoints` appended. A variable set
/// to the empty string counts as set, as in Python, so the folder may come out relative.
/// `TORCH_HUB` is ignored (PyTorch only warns about it).
///
/// Differences from Python's `os.path.expanduser`, both refused with an error rather than a
/// guess: `~` with the home variable unset (Python asks the password database) and `~user`.
pub fn hub_checkpoint_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let torch_home = match env("TORCH_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = env("XDG_CACHE_HOME").unwrap_or_else(|| OsString::from("~/.cache"));
            PathBuf::from(cache).join("torch")
        }
    };
    Ok(expand_home(&torch_home, &env)?.join("hub").join("checkpoints"))
}

/// The variable holding the home folder.
const HOME_VAR: &str = if cfg!(windows) { "USERPROFILE" } else { "HOME" };

/// Replace a leading `~` by the home folder.
fn expand_home(path: &Path, env: &impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    if path.as_os_str().as_encoded_bytes().first() != Some(&b'~') {
        return Ok(path.to_path_buf());
    }
    let refuse = |why: String| TensorError::invalid("torch hub folder", format!("{}: {why}", path.display()));
    // `~/rest` and `~` strip to `rest` and ``; `~user/rest` does not strip.
    let rest = path
        .strip_prefix("~")
        .map_err(|_| refuse("'~user' is not supported; set TORCH_HOME to a full path".into()))?;
    let home =
        env(HOME_VAR).ok_or_else(|| refuse(format!("{HOME_VAR} is not set; set it or TORCH_HOME to a full path")))?;
    // Python drops trailing separators of the home folder; an empty one then means the root.
    let home = if home.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(home)
    };
    Ok(if rest.as_os_str().is_empty() {
        home
    } else {
        home.join(rest)
    })
}
