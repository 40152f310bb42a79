//! Bad checkpoints give clear errors naming the file, and reading a `.pth` executes nothing.

use std::io::Write;

use fp8q_nn::checkpoint::Checkpoint;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fp8q_ckpt_{}_{name}", std::process::id()))
}

fn write_zip(path: &std::path::Path, pickle: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pickle).unwrap();
    z.finish().unwrap();
}

#[test]
fn missing_file_is_named() {
    let p = tmp("does_not_exist.pth");
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("cannot read") && err.contains("does_not_exist.pth"),
        "{err}"
    );
}

#[test]
fn garbage_is_rejected() {
    let p = tmp("garbage.pth");
    std::fs::write(&p, b"this is not a checkpoint at all").unwrap();
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("invalid checkpoint") && err.contains("garbage.pth"),
        "{err}"
    );
    let p2 = tmp("truncated.safetensors");
    std::fs::write(&p2, [8u8, 0, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
    let err = Checkpoint::load(&p2).unwrap_err().to_string();
    assert!(
        err.contains("invalid checkpoint") && err.contains("truncated.safetensors"),
        "{err}"
    );
    std::fs::remove_file(p).unwrap();
    std::fs::remove_file(p2).unwrap();
}

/// A pickle that would call `os.system("touch <marker>")` under Python's unpickler is only
/// read as data: nothing runs, and the file is reported as holding no state dict.
#[test]
fn pickle_code_is_never_executed() {
    let marker = tmp("pwned_marker");
    let _ = std::fs::remove_file(&marker);
    let cmd = format!("touch {}", marker.display());
    let mut pk = b"\x80\x02cposix\nsystem\nX".to_vec();
    pk.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    pk.extend_from_slice(cmd.as_bytes());
    pk.extend_from_slice(b"\x85R.");
    let p = tmp("evil.pth");
    write_zip(&p, &pk);
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(err.contains("no state dict") && err.contains("evil.pth"), "{err}");
    assert!(!marker.exists(), "the pickle's payload ran");
    std::fs::remove_file(p).unwrap();
}

/// A truncated pickle is an error, not a panic.
#[test]
fn truncated_pickle_is_an_error() {
    let p = tmp("trunc_pickle.pth");
    write_zip(&p, b"\x80\x02}q\x00(X\x03\x00\x00\x00ab");
    let err = Checkpoint::load(&p).unwrap_err().to_string();
    assert!(
        err.contains("unreadable pickle") && err.contains("trunc_pickle.pth"),
        "{err}"
    );
    std::fs::remove_file(p).unwrap();
}
