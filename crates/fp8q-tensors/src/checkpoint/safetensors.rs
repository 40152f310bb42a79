//! `.safetensors`: a little-endian `u64` header length, a JSON header, the raw tensor bytes.
//! The `safetensors` crate validates the header (size ≤ 100 MB, offsets contiguous and inside
//! the file, shape × dtype = byte length, with overflow checks) before any tensor is read.
//! Weights stored as low-precision codes and scales ([`super::low_precision`]) are read back as
//! `f32` weights.

use std::collections::BTreeMap;

use ::safetensors::{Dtype as StDtype, SafeTensors};
use candle_core::{Device, Tensor};

use super::low_precision;
use super::storage::Dtype;

/// What this reader is called in messages.
pub const NAME: &str = "safetensors file";

/// Whether `bytes` start like a safetensors file: a header length, then the header's `{`.
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[8] == b'{'
}

fn dtype(d: StDtype) -> Option<Dtype> {
    Some(match d {
        StDtype::F32 => Dtype::F32,
        StDtype::F64 => Dtype::F64,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::BF16,
        StDtype::I64 => Dtype::I64,
        StDtype::I32 => Dtype::I32,
        StDtype::I16 => Dtype::I16,
        StDtype::I8 => Dtype::I8,
        StDtype::U8 => Dtype::U8,
        StDtype::BOOL => Dtype::Bool,
        _ => return None,
    })
}

/// Read every tensor of a safetensors file as `f32`.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, String> {
    read_typed(bytes).map(super::untyped)
}

/// [`read`], with the element type each tensor was stored with.
pub fn read_typed(bytes: &[u8]) -> Result<super::Typed, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    // low-precision weights (codes and scales) are read back as f32 weights
    let views = st.tensors();
    let (weights, consumed) = low_precision::from_views(&views)?;
    for dq in weights {
        let t = Tensor::from_vec(dq.values, dq.shape.as_slice(), &Device::Cpu)
            .map_err(|e| format!("tensor {}: {e}", dq.name))?;
        out.insert(dq.name, (t, Dtype::F32));
    }
    for (name, view) in views {
        if consumed.contains(&name) {
            continue;
        }
        let d = dtype(view.dtype()).ok_or_else(|| format!("tensor {name}: unsupported dtype {:?}", view.dtype()))?;
        let shape: Vec<u64> = view.shape().iter().map(|&n| n as u64).collect();
        super::storage::check_empty_shape(&shape).map_err(|e| format!("tensor {name}: {e}"))?;
        let values: Vec<f32> = view.data().chunks_exact(d.size()).map(|b| d.decode(b)).collect();
        let t = Tensor::from_vec(values, view.shape(), &Device::Cpu).map_err(|e| format!("tensor {name}: {e}"))?;
        out.insert(name, (t, d));
    }
    Ok(out)
}
