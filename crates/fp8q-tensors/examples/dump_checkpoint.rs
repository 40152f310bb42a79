//! What fp8q reads from checkpoint files, as one JSON line per file, for differential tests
//! against PyTorch (`tools/checkpoint_diff.py`).
//!
//! ```sh
//! cargo run --release -p fp8q-tensors --example dump_checkpoint -- a.pth b.safetensors …
//! ```
//!
//! Each line is `{"file", "ok": true, "tensors": {key: {"shape", "dtype", "sha256", "head"}}}`
//! (`sha256` of the tensor's `f32` values as little-endian bytes, row-major; `head` the bit
//! patterns of its first 8 values) or `{"file", "ok": false, "error"}` with the message
//! [`Checkpoint::load`] gives. A panic is reported as `"panic": true` instead of aborting.

use std::collections::BTreeMap;

use fp8q_tensors::checkpoint::{storage::Dtype, Checkpoint};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "float32",
        Dtype::F64 => "float64",
        Dtype::F16 => "float16",
        Dtype::BF16 => "bfloat16",
        Dtype::I64 => "int64",
        Dtype::I32 => "int32",
        Dtype::I16 => "int16",
        Dtype::I8 => "int8",
        Dtype::U8 => "uint8",
        Dtype::Bool => "bool",
    }
}

fn dump(path: &str) -> Value {
    // `load` for the message users see; the typed read for the stored element types.
    if let Err(e) = Checkpoint::load(path) {
        return json!({"file": path, "ok": false, "error": e.to_string()});
    }
    let bytes = std::fs::read(path).expect("read above");
    let tensors = match Checkpoint::from_bytes_typed(&bytes) {
        Ok(t) => t,
        Err(e) => return json!({"file": path, "ok": false, "error": e}),
    };
    let mut out = BTreeMap::new();
    for (key, (t, dtype)) in tensors {
        let values: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("f32 tensor");
        let mut h = Sha256::new();
        for v in &values {
            h.update(v.to_le_bytes());
        }
        let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let head: Vec<u32> = values.iter().take(8).map(|v| v.to_bits()).collect();
        out.insert(
            key,
            json!({"shape": t.dims(), "dtype": dtype_name(dtype), "sha256": digest, "head": head}),
        );
    }
    json!({"file": path, "ok": true, "tensors": out})
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    for path in std::env::args().skip(1) {
        let line = match std::panic::catch_unwind(|| dump(&path)) {
            Ok(v) => v,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                json!({"file": path, "ok": false, "panic": true, "error": msg})
            }
        };
        println!("{line}");
    }
}
