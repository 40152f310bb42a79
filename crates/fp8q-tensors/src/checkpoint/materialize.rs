//! Turning the tensor records of a `torch.save` pickle into `f32` tensors, given the bytes of
//! their storages (from zip entries or from the legacy stream).

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor};

use super::rebuild::TensorRef;
use super::storage::{gather, Budget, Dtype};

/// Decode every `(key, tensor record)` against `storages` (root storage key → its bytes).
///
/// The storage must hold its declared number of elements; a view window and the tensor's
/// offset, sizes and strides must stay inside it; the output is charged to `budget`. Each
/// tensor comes with the element type it was stored with.
pub fn materialize(
    entries: Vec<(String, TensorRef)>,
    storages: &HashMap<String, &[u8]>,
    budget: &mut Budget,
) -> Result<BTreeMap<String, (Tensor, Dtype)>, String> {
    let mut out = BTreeMap::new();
    for (key, t) in entries {
        let s = &t.storage;
        let bytes = storages
            .get(&s.key)
            .ok_or_else(|| format!("tensor {key}: storage {} is missing", s.key))?;
        let elem = s.dtype.size() as u64;
        let need = s
            .numel
            .checked_mul(elem)
            .filter(|&n| n <= bytes.len() as u64)
            .ok_or_else(|| {
                format!(
                    "tensor {key}: storage {} holds {} bytes, not {} elements of {elem} bytes",
                    s.key,
                    bytes.len(),
                    s.numel
                )
            })?;
        // `need` ≤ bytes.len(), and a window lies inside the declared size (checked when read).
        let region = match s.window {
            None => &bytes[..need as usize],
            Some((off, len)) => &bytes[(off * elem) as usize..((off + len) * elem) as usize],
        };
        let values = gather(&t.view, s.dtype, region, budget).map_err(|e| format!("tensor {key}: {e}"))?;
        let shape: Vec<usize> = t.view.size.iter().map(|&d| d as usize).collect();
        let tensor =
            Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).map_err(|e| format!("tensor {key}: {e}"))?;
        out.insert(key, (tensor, s.dtype));
    }
    Ok(out)
}
