//! Reading checkpoints: PyTorch `.pth` (the zip format of `torch.save`) and `.safetensors`.
//!
//! A checkpoint becomes a flat map from key (`layer1.0.conv1.weight`) to an `f32` tensor. A
//! dict that wraps the state dict under `state_dict` or `model` is unwrapped, and a `module.`
//! prefix (left by `DataParallel`) is dropped.
//!
//! **Reading a `.pth` never executes anything.** The pickle in `data.pkl` is read by
//! [`candle_core::pickle::Stack`], a pure-Rust interpreter of the pickle opcodes that only builds a
//! tree of plain values: `GLOBAL` becomes an inert `Object::Class { module, name }`, `REDUCE`,
//! `NEWOBJ` and `BUILD` become inert nodes holding the callable's name and its arguments, and
//! unknown opcodes (including `INST`, `OBJ`, `EXT*`, `STACK_GLOBAL`) are rejected. Nothing is ever
//! looked up or called. This module then interprets exactly one shape of node —
//! `torch._utils._rebuild_tensor_v2` (optionally inside `torch._utils._rebuild_parameter`) with
//! a persistent-load reference to a storage record — and reads the storage bytes itself, with
//! every index checked against the storage size. Anything else is ignored or reported.
//!
//! ```no_run
//! let ckpt = fp8q_nn::checkpoint::Checkpoint::load("resnet18.pth").unwrap();
//! println!("{} tensors", ckpt.tensors.len());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::error::{NnError, Result};

/// A loaded checkpoint: every floating-point (and integer) tensor as `f32`, by key.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// Tensors by key, after unwrapping and prefix removal.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Checkpoint {
    /// Load a `.pth` or `.safetensors` file (chosen by content: safetensors files are not zips).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut head = [0u8; 4];
        let mut file = std::fs::File::open(path).map_err(|err| NnError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        let n = read_up_to(&mut file, &mut head).map_err(|err| NnError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        drop(file);
        let raw = if n == 4 && &head == b"PK\x03\x04" {
            read_pth(path)?
        } else if path.extension().is_some_and(|e| e == "safetensors") || n == 4 {
            read_safetensors(path)?
        } else {
            return Err(NnError::bad_checkpoint(path, "file too short"));
        };
        let tensors = strip_module_prefix(raw);
        if tensors.is_empty() {
            return Err(NnError::bad_checkpoint(path, "no tensors found"));
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.dims().to_vec())
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Drop a `module.` prefix when every key has it.
fn strip_module_prefix(raw: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    if !raw.is_empty() && raw.keys().all(|k| k.starts_with("module.")) {
        raw.into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect()
    } else {
        raw
    }
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let map = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| NnError::bad_checkpoint(path, format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (k, t) in map {
        let t = t
            .to_dtype(DType::F32)
            .map_err(|e| NnError::bad_checkpoint(path, format!("tensor {k}: {e}")))?;
        out.insert(k, t);
    }
    Ok(out)
}

/// A tensor's place in a storage, as `_rebuild_tensor_v2` describes it.
#[derive(Debug, Clone)]
struct TensorRef {
    storage_key: String,
    storage_class: String,
    storage_numel: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

fn read_pth(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bad = |why: String| NnError::bad_checkpoint(path, why);
    let file = std::fs::File::open(path).map_err(|err| NnError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    // torch.save archives start at byte 0. zip's default offset detection mis-reads some valid
    // archives (one of the golden MobileNetV2 files), so the offset is fixed.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a torch.save zip archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(format!("unreadable zip directory: {e}")))?;
    let pkl: Vec<&String> = names.iter().filter(|n| n.ends_with("data.pkl")).collect();
    let pkl_name = match pkl.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(bad("no data.pkl in the archive".into())),
        _ => return Err(bad("more than one data.pkl in the archive".into())),
    };
    let dir = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Ok(mut f) = zip.by_name(&format!("{dir}byteorder")) {
        let mut s = String::new();
        f.read_to_string(&mut s).map_err(|e| bad(format!("byteorder: {e}")))?;
        if s.trim() != "little" {
            return Err(bad(format!("unsupported byte order '{}'", s.trim())));
        }
    }
    let root = {
        let entry = zip.by_name(&pkl_name).map_err(|e| bad(format!("{pkl_name}: {e}")))?;
        let mut reader = std::io::BufReader::new(entry);
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut reader)
            .map_err(|e| bad(format!("unreadable pickle {pkl_name}: {e}")))?;
        stack
            .finalize()
            .map_err(|e| bad(format!("unreadable pickle {pkl_name}: {e}")))?
    };
    let entries = find_state_dict(root).ok_or_else(|| {
        bad("no state dict found (expected a dict of tensors, possibly under 'state_dict' or 'model')".into())
    })?;

    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = BTreeMap::new();
    for (key, r) in entries {
        let elem = match storage_elem_size(&r.storage_class) {
            Some(s) => s,
            None => {
                return Err(bad(format!(
                    "tensor {key}: unsupported storage type {}",
                    r.storage_class
                )))
            }
        };
        if !storages.contains_key(&r.storage_key) {
            let name = format!("{dir}data/{}", r.storage_key);
            let mut f = zip
                .by_name(&name)
                .map_err(|e| bad(format!("tensor {key}: storage {name}: {e}")))?;
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .map_err(|e| bad(format!("tensor {key}: storage {name}: {e}")))?;
            storages.insert(r.storage_key.clone(), bytes);
        }
        let bytes = &storages[&r.storage_key];
        if bytes.len() < r.storage_numel * elem {
            return Err(bad(format!(
                "tensor {key}: storage {} holds {} bytes, {} elements of {} bytes expected",
                r.storage_key,
                bytes.len(),
                r.storage_numel,
                elem
            )));
        }
        let values = gather(&r, bytes, elem).map_err(|why| bad(format!("tensor {key}: {why}")))?;
        let t =
            Tensor::from_vec(values, r.size.as_slice(), &Device::Cpu).map_err(|e| bad(format!("tensor {key}: {e}")))?;
        out.insert(key, t);
    }
    Ok(out)
}

fn storage_elem_size(class: &str) -> Option<usize> {
    Some(match class {
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

fn decode(class: &str, b: &[u8]) -> f32 {
    match class {
        "FloatStorage" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        "IntStorage" => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        "DoubleStorage" => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        "LongStorage" => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        "HalfStorage" => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        "BFloat16Storage" => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
        "ShortStorage" => i16::from_le_bytes([b[0], b[1]]) as f32,
        "ByteStorage" | "BoolStorage" => b[0] as f32,
        "CharStorage" => b[0] as i8 as f32,
        _ => f32::NAN,
    }
}

/// IEEE binary16 → f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let man = (h & 0x3ff) as f32;
    match exp {
        0 => sign * man * 2f32.powi(-24),
        31 if man == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Copy a strided view of a storage into a contiguous `f32` vector, checking every bound.
fn gather(r: &TensorRef, bytes: &[u8], elem: usize) -> std::result::Result<Vec<f32>, String> {
    if r.size.len() != r.stride.len() {
        return Err(format!("size {:?} and stride {:?} differ in rank", r.size, r.stride));
    }
    let numel: usize = r.size.iter().product();
    if numel == 0 {
        return Ok(Vec::new());
    }
    let mut last = r.offset;
    for (&s, &st) in r.size.iter().zip(&r.stride) {
        last = (s - 1)
            .checked_mul(st)
            .and_then(|v| v.checked_add(last))
            .ok_or("index overflow")?;
    }
    if last >= r.storage_numel {
        return Err(format!(
            "view (offset {}, size {:?}, stride {:?}) reaches element {last} of a storage of {}",
            r.offset, r.size, r.stride, r.storage_numel
        ));
    }
    let mut out = Vec::with_capacity(numel);
    let mut idx = vec![0usize; r.size.len()];
    for _ in 0..numel {
        let pos = r.offset + idx.iter().zip(&r.stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(decode(&r.storage_class, &bytes[pos * elem..(pos + 1) * elem]));
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < r.size[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// The first dict (depth-first through `state_dict` / `model` wrappers) that holds tensors.
fn find_state_dict(obj: Object) -> Option<Vec<(String, TensorRef)>> {
    let Object::Dict(items) = obj else {
        return None;
    };
    let mut tensors = Vec::new();
    let mut wrapped = Vec::new();
    for (k, v) in items {
        let Object::Unicode(k) = k else { continue };
        if let Some(r) = tensor_ref(&v) {
            tensors.push((k, r));
        } else if k == "state_dict" || k == "model" || k == "model_state_dict" {
            wrapped.push(v);
        }
    }
    if !tensors.is_empty() {
        return Some(tensors);
    }
    wrapped.into_iter().find_map(find_state_dict)
}

fn as_usize(o: &Object) -> Option<usize> {
    match o {
        Object::Int(i) if *i >= 0 => Some(*i as usize),
        Object::Long(i) if *i >= 0 => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn as_usizes(o: &Object) -> Option<Vec<usize>> {
    match o {
        Object::Tuple(v) | Object::List(v) => v.iter().map(as_usize).collect(),
        _ => None,
    }
}

fn is_class(o: &Object, module: &str, name: &str) -> bool {
    matches!(o, Object::Class { module_name, class_name } if module_name == module && class_name == name)
}

/// Interpret `_rebuild_tensor_v2(storage, offset, size, stride, …)` (or a parameter wrapping it).
fn tensor_ref(o: &Object) -> Option<TensorRef> {
    let Object::Reduce { callable, args } = o else {
        return None;
    };
    if is_class(callable, "torch._utils", "_rebuild_parameter") {
        let Object::Tuple(a) = args.as_ref() else {
            return None;
        };
        return tensor_ref(a.first()?);
    }
    if !is_class(callable, "torch._utils", "_rebuild_tensor_v2") {
        return None;
    }
    let Object::Tuple(a) = args.as_ref() else {
        return None;
    };
    if a.len() < 4 {
        return None;
    }
    let Object::PersistentLoad(pid) = &a[0] else {
        return None;
    };
    let Object::Tuple(p) = pid.as_ref() else {
        return None;
    };
    // ('storage', <class torch.FloatStorage>, key, location, numel)
    if p.len() < 5 || p[0] != Object::Unicode("storage".into()) {
        return None;
    }
    let Object::Class { class_name, .. } = &p[1] else {
        return None;
    };
    let Object::Unicode(key) = &p[2] else {
        return None;
    };
    Some(TensorRef {
        storage_key: key.clone(),
        storage_class: class_name.clone(),
        storage_numel: as_usize(&p[4])?,
        offset: as_usize(&a[1])?,
        size: as_usizes(&a[2])?,
        stride: as_usizes(&a[3])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_decoding() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn strided_gather_transposes() {
        // storage [0,1,2,3,4,5] viewed as the transpose of a 2x3 matrix
        let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let r = TensorRef {
            storage_key: "0".into(),
            storage_class: "FloatStorage".into(),
            storage_numel: 6,
            offset: 0,
            size: vec![3, 2],
            stride: vec![1, 3],
        };
        assert_eq!(gather(&r, &bytes, 4).unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let r_bad = TensorRef { offset: 1, ..r };
        assert!(gather(&r_bad, &bytes, 4).is_err());
    }
}
