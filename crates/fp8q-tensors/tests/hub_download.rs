//! Downloading a checkpoint into the torch hub cache, against a local HTTP server (never the
//! internet): caching, SHA-256 prefix check, size bound, HTTP errors, cut and refused
//! connections, and that a failure leaves nothing in the cache folder.
//!
//! The payload and its SHA-256 come from `tools/make_hub_fixture.py` (Python's hashlib).

mod hub_server;

use std::fs;
use std::path::{Path, PathBuf};

use fp8q_tensors::hub::{cached_or_download, download_verified, MAX_DOWNLOAD_BYTES};
use fp8q_tensors::TensorError;
use hub_server::{refused_base, Reply, Server};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The test payload and a cache file name carrying the first 10 hex digits of its SHA-256 (byte
/// `i` is `((i * 2654435761 + 12345) mod 2^32) >> 24`, as `tools/make_hub_fixture.py` made it).
fn payload() -> (Vec<u8>, String) {
    let cases: serde_json::Value = serde_json::from_slice(&fs::read(data("hub_cases.json")).unwrap()).unwrap();
    let n = cases["payload_len"].as_u64().unwrap() as u32;
    let body = (0..n)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(12_345) >> 24) as u8)
        .collect();
    let sha = cases["payload_sha256"].as_str().unwrap();
    (body, format!("tiny-{}.pth", &sha[..10]))
}

/// A fresh, empty folder for one test (the cache folder is a subfolder not created yet).
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hub_download").join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir.join("hub").join("checkpoints")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Progress calls as `(done, total)`.
type Calls = Vec<(u64, Option<u64>)>;

/// Download `name` from `url` into `dir`, recording the progress calls.
fn fetch(dir: &Path, name: &str, url: &str) -> (Result<PathBuf, TensorError>, Calls) {
    let mut calls = Vec::new();
    let result = cached_or_download(dir, name, url, &mut |done, total| calls.push((done, total)));
    (result, calls)
}

/// The error must be a download error naming the URL and the full cache path of the file.
fn expect_download_error(result: Result<PathBuf, TensorError>, url: &str, dest: &Path, why_part: &str) {
    let err = result.expect_err("the download must fail");
    assert!(
        matches!(err, TensorError::Download { .. }),
        "not a download error: {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(url), "message does not name the URL {url}: {msg}");
    assert!(
        msg.contains(&dest.display().to_string()),
        "message does not name the file's place {}: {msg}",
        dest.display()
    );
    assert!(msg.contains(why_part), "message does not say '{why_part}': {msg}");
}

#[test]
fn good_file_is_cached_and_not_downloaded_again() {
    let (body, name) = payload();
    let served = body.clone();
    let server = Server::start(move |_| Reply::Body {
        body: served.clone(),
        content_length: true,
    });
    let dir = scratch("good");
    let url = format!("{}/models/{name}", server.base);

    let (result, calls) = fetch(&dir, &name, &url);
    let path = result.unwrap();
    assert_eq!(path, dir.join(&name));
    assert_eq!(fs::read(&path).unwrap(), body);
    assert_eq!(server.hits(), 1);
    assert_eq!(entries(&dir), vec![name.clone()], "only the file is left in the cache");
    let n = body.len() as u64;
    assert_eq!(calls.first(), Some(&(0, Some(n))));
    assert_eq!(calls.last(), Some(&(n, Some(n))));
    assert!(
        calls.len() >= 3,
        "the {n}-byte body arrives in several chunks: {calls:?}"
    );
    assert!(
        calls.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress goes backwards: {calls:?}"
    );

    let (again, calls) = fetch(&dir, &name, &url);
    assert_eq!(again.unwrap(), path);
    assert_eq!(server.hits(), 1, "a cached file must not be downloaded again");
    assert!(calls.is_empty(), "no progress without a download: {calls:?}");
}

#[test]
fn body_without_content_length_is_accepted() {
    let (body, name) = payload();
    let served = body.clone();
    let server = Server::start(move |_| Reply::Body {
        body: served.clone(),
        content_length: false,
    });
    let dir = scratch("no_length");
    let (result, calls) = fetch(&dir, &name, &format!("{}/{name}", server.base));
    assert_eq!(fs::read(result.unwrap()).unwrap(), body);
    assert_eq!(calls.first(), Some(&(0, None)));
    assert_eq!(calls.last(), Some(&(body.len() as u64, None)));
}

#[test]
fn hash_mismatch_is_an_error_and_leaves_nothing() {
    let (mut body, name) = payload();
    body[1000] ^= 1;
    let server = Server::start(move |_| Reply::Body {
        body: body.clone(),
        content_length: true,
    });
    let dir = scratch("hash_mismatch");
    let url = format!("{}/{name}", server.base);
    let (result, _) = fetch(&dir, &name, &url);
    let prefix = &name["tiny-".len()..name.len() - ".pth".len()];
    expect_download_error(result, &url, &dir.join(&name), &format!("expected \"{prefix}\""));
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn http_404_is_a_clear_error() {
    let (_, name) = payload();
    let server = Server::start(|_| Reply::Status(404, "Not Found"));
    let dir = scratch("not_found");
    let url = format!("{}/{name}", server.base);
    let (result, calls) = fetch(&dir, &name, &url);
    expect_download_error(result, &url, &dir.join(&name), "404");
    assert!(calls.is_empty());
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn connection_cut_mid_body_leaves_nothing() {
    let (body, name) = payload();
    let announced = body.len() as u64;
    let server = Server::start(move |_| Reply::Cut {
        announced,
        body: body[..body.len() / 2].to_vec(),
    });
    let dir = scratch("cut");
    let url = format!("{}/{name}", server.base);
    let (result, _) = fetch(&dir, &name, &url);
    expect_download_error(result, &url, &dir.join(&name), "after");
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn refused_connection_names_file_folder_and_url() {
    let (_, name) = payload();
    let dir = scratch("refused");
    let url = format!("{}/models/{name}", refused_base());
    let (result, calls) = fetch(&dir, &name, &url);
    expect_download_error(result, &url, &dir.join(&name), "put that file at");
    assert!(calls.is_empty());
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn oversized_announcement_is_refused_before_reading() {
    let (body, name) = payload();
    let server = Server::start(move |_| Reply::Cut {
        announced: MAX_DOWNLOAD_BYTES + 1,
        body: body.clone(),
    });
    let dir = scratch("oversized_announced");
    let url = format!("{}/{name}", server.base);
    let (result, calls) = fetch(&dir, &name, &url);
    expect_download_error(result, &url, &dir.join(&name), &(MAX_DOWNLOAD_BYTES + 1).to_string());
    assert!(calls.is_empty());
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn oversized_body_without_length_is_cut_off() {
    let (body, name) = payload();
    let server = Server::start(move |_| Reply::Body {
        body: body.clone(),
        content_length: false,
    });
    let dir = scratch("oversized_body");
    fs::create_dir_all(&dir).unwrap();
    let url = format!("{}/{name}", server.base);
    let dest = dir.join(&name);
    let result = download_verified(&url, &dest, None, 1000, &mut |_, _| {});
    expect_download_error(result.map(|()| dest.clone()), &url, &dest, "exceeds");
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn name_without_hash_prefix_is_refused_without_a_request() {
    let server = Server::start(|_| Reply::Status(500, "Should Not Be Asked"));
    let dir = scratch("no_prefix");
    let (result, _) = fetch(&dir, "mobilenet_v2.pth.tar", &format!("{}/x", server.base));
    let err = result.expect_err("a name without a hash prefix cannot be verified");
    assert!(matches!(err, TensorError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("mobilenet_v2.pth.tar"), "{err}");
    assert_eq!(server.hits(), 0);
}

#[test]
fn folder_in_place_of_the_file_is_an_error() {
    let (_, name) = payload();
    let server = Server::start(|_| Reply::Status(500, "Should Not Be Asked"));
    let dir = scratch("folder_in_place");
    fs::create_dir_all(dir.join(&name)).unwrap();
    let (result, _) = fetch(&dir, &name, &format!("{}/{name}", server.base));
    let err = result.expect_err("a folder is not a checkpoint");
    assert!(
        err.to_string().contains(&dir.join(&name).display().to_string()),
        "{err}"
    );
    assert_eq!(server.hits(), 0);
}
