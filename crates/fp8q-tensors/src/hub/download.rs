//! Fetching a checkpoint into the cache: HTTP(S) download, size bound, SHA-256 prefix check,
//! and a temporary file renamed into place only when everything checked out.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::torchvision::hash_prefix;
use crate::error::{Result, TensorError};

/// The largest download accepted (1 GiB; torchvision's ImageNet CNN checkpoints are at most a
/// few hundred MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// Bytes read from the connection at a time.
const CHUNK: usize = 64 * 1024;
/// How long to wait for a connection, for the response headers, and for each read of the body.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `dir/file_name` if that file exists (its content is not checked, as in torch).
pub fn cached_path(dir: &Path, file_name: &str) -> Option<PathBuf> {
    let path = dir.join(file_name);
    path.is_file().then_some(path)
}

/// `dir/file_name`, downloaded from `url` first if it is not there yet.
///
/// `dir` is created if needed. The SHA-256 of the download must start with the prefix in
/// `file_name` ([`super::hash_prefix`]); a name without one is refused. See [`download_verified`]
/// for `progress` and for what is checked.
pub fn cached_or_download(
    dir: &Path,
    file_name: &str,
    url: &str,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    let dest = dir.join(file_name);
    if let Ok(meta) = fs::metadata(&dest) {
        return if meta.is_file() {
            Ok(dest)
        } else {
            Err(TensorError::invalid(
                "cached checkpoint",
                format!("{} is not a file", dest.display()),
            ))
        };
    }
    let prefix = hash_prefix(file_name).ok_or_else(|| {
        TensorError::invalid(
            "checkpoint file name",
            format!("'{file_name}' carries no SHA-256 prefix ('name-<hex>.ext'), so a download could not be verified"),
        )
    })?;
    fs::create_dir_all(dir).map_err(|err| TensorError::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    download_verified(url, &dest, Some(prefix), MAX_DOWNLOAD_BYTES, progress)?;
    Ok(dest)
}

/// Download `url` to `dest` (whose folder must exist).
///
/// The body goes to `dest.<unique>.partial` in the same folder, which is renamed to `dest` only
/// when the transfer is complete (as many bytes as `Content-Length` announced), at most
/// `max_bytes` long, and, if `sha256_prefix` is given, its SHA-256 hex digest starts with it.
/// On any failure the partial file is removed and `dest` is untouched.
///
/// `progress(done, total)` is called with `(0, total)` once the server has answered, then after
/// every chunk; `total` is the announced `Content-Length`, if any.
///
/// Environment proxies (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, …) are honoured, except for
/// loopback hosts, which are always reached directly.
pub fn download_verified(
    url: &str,
    dest: &Path,
    sha256_prefix: Option<&str>,
    max_bytes: u64,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let fail = |why: String| TensorError::Download {
        url: url.to_string(),
        dest: dest.to_path_buf(),
        why,
    };
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .ok_or_else(|| fail("the destination has no file name".into()))?
        .to_string_lossy();

    let uri: ureq::http::Uri = url.parse().map_err(|e| fail(format!("invalid URL: {e}")))?;
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("fp8q/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(RESPONSE_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT));
    if uri.host().is_some_and(is_loopback) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();

    let mut response = agent.get(uri).call().map_err(|e| {
        fail(match e {
            ureq::Error::Io(io) => format!("network error: {io} (offline?)"),
            ureq::Error::HostNotFound => "host not found (offline?)".to_string(),
            other => format!("{other} (offline?)"),
        })
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("the server answered HTTP {status}")));
    }
    let total = response.body().content_length();
    if let Some(n) = total.filter(|&n| n > max_bytes) {
        return Err(fail(format!(
            "the server announces {n} bytes, more than the {max_bytes} accepted"
        )));
    }

    let mut partial = Partial::create(dir, &name)?;
    let mut sha = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("connection lost after {done} bytes: {e}"))),
        };
        done += n as u64;
        if done > max_bytes {
            return Err(fail(format!("the body exceeds the {max_bytes} bytes accepted")));
        }
        sha.update(&buf[..n]);
        partial.write(&buf[..n])?;
        progress(done, total);
    }
    if let Some(n) = total.filter(|&n| n != done) {
        return Err(fail(format!("the connection closed after {done} of {n} bytes")));
    }
    let digest = hex(&sha.finalize());
    if let Some(prefix) = sha256_prefix {
        if !digest.starts_with(prefix) {
            return Err(fail(format!(
                "invalid hash value (expected \"{prefix}\", got \"{digest}\"): the download is corrupt or not the expected file"
            )));
        }
    }
    partial.persist(dest)
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `localhost` or a loopback address (as a URI host: IPv6 in brackets).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A download in progress: a uniquely named file next to its destination, removed when dropped
/// unless [`Partial::persist`] renamed it into place.
struct Partial {
    path: PathBuf,
    file: Option<File>,
}

impl Partial {
    /// Create `dir/name.<unique>.partial`.
    fn create(dir: &Path, name: &str) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let unique = format!(
                "{}-{nanos:08x}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = dir.join(format!("{name}.{unique}.partial"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok(Partial { path, file: Some(file) }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => {}
                Err(err) => return Err(TensorError::Io { path, err }),
            }
        }
    }

    /// Append `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("open until persisted or dropped");
        file.write_all(bytes).map_err(|err| TensorError::Io {
            path: self.path.clone(),
            err,
        })
    }

    /// Flush to disk and rename to `dest`.
    fn persist(mut self, dest: &Path) -> Result<()> {
        let file = self.file.take().expect("open until persisted or dropped");
        file.sync_all().map_err(|err| TensorError::Io {
            path: self.path.clone(),
            err,
        })?;
        drop(file);
        fs::rename(&self.path, dest).map_err(|err| TensorError::Io {
            path: dest.to_path_buf(),
            err,
        })?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}
