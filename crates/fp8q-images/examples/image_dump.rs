//! What fp8q makes of image files, for a differential comparison with Pillow and torchvision
//! (`tools/image_diff.py`): reads one path per line on standard input and prints one JSON line
//! per path with the decoded size, the SHA-256 of the RGB bytes ([`decode`]), the SHA-256 of
//! the validation transform's `f32` values (little-endian, CHW, 3 × 224 × 224) computed as the
//! loader computes them ([`Transform::load`]: a JPEG's needed columns only, fused resize) and
//! as decode + [`Transform::apply`], or the error.
//!
//! ```sh
//! ls /tmp/img-audit/imgs/* | cargo run --release -p fp8q-images --example image_dump -- [--out DIR]
//! ```
//!
//! With `--out DIR`, also writes `DIR/<line number>.rgb` (raw RGB bytes) and `DIR/<line
//! number>.f32` (the loader's transform) for each image decoded.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use fp8q_images::decode::decode;
use fp8q_images::Transform;
use serde_json::json;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn one(i: usize, path: &Path, out: Option<&Path>) -> std::io::Result<serde_json::Value> {
    let t = Transform::val();
    let n = 3 * t.size() * t.size();
    let mut r = json!({ "path": path });
    match decode(path) {
        Err(e) => r["error"] = json!(e.to_string()),
        Ok(img) => {
            r["width"] = json!(img.width);
            r["height"] = json!(img.height);
            r["rgb_sha256"] = json!(hex(&Sha256::digest(&img.data)));
            let mut applied = vec![f32::NAN; n];
            t.apply(&img, 0, &mut applied);
            r["apply_sha256"] = json!(hex(&Sha256::digest(f32_bytes(&applied))));
            if let Some(dir) = out {
                std::fs::write(dir.join(format!("{i}.rgb")), &img.data)?;
            }
        }
    }
    let mut loaded = vec![f32::NAN; n];
    match t.load(path, 0, &mut loaded) {
        Err(e) => r["load_error"] = json!(e.to_string()),
        Ok(()) => {
            let bytes = f32_bytes(&loaded);
            r["load_sha256"] = json!(hex(&Sha256::digest(&bytes)));
            if let Some(dir) = out {
                std::fs::write(dir.join(format!("{i}.f32")), &bytes)?;
            }
        }
    }
    Ok(r)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.as_slice() {
        [_] => None,
        [_, flag, dir] if flag == "--out" => Some(PathBuf::from(dir)),
        _ => return Err("usage: image_dump [--out DIR] < PATHS".into()),
    };
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir)?;
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let r = one(i, Path::new(&line), out.as_deref())?;
        writeln!(w, "{r}")?;
        w.flush()?;
    }
    Ok(())
}
