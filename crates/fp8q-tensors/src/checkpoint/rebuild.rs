//! Recognising the tensors of a `torch.save` pickle (zip or legacy format) without running
//! anything: the inert call nodes of PyTorch's rebuild functions and their storage references.
//!
//! A tensor is pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`
//! (`_rebuild_tensor` before PyTorch 0.4, `_rebuild_tensor_v3(…, dtype, …)` for dtypes without
//! a legacy storage class), possibly wrapped by `_rebuild_parameter(_with_state)` or
//! `torch._tensor._rebuild_from_type_v2`. The storage is a persistent id
//! `('storage', <storage class>, key, location, numel[, view_metadata])`, where
//! `view_metadata` (written only by PyTorch < 1.0) is `None` or `(view_key, offset, size)`: a
//! window of `size` elements from `offset` of the root storage `key`.

use super::pickle::{Id, Pickle, Value};
use super::storage::{Dtype, View};

/// A storage a tensor refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Key of the root storage (`archive/data/<key>` in a zip, or in the legacy key list).
    pub key: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Elements of the root storage.
    pub numel: u64,
    /// A window `(offset, len)` of the root storage the tensor indexes into, if a view.
    pub window: Option<(u64, u64)>,
}

/// A tensor: a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Where in the storage (or its window).
    pub view: View,
}

fn uint(p: &Pickle, id: Id, what: &str) -> Result<u64, String> {
    match p.int(id) {
        Some(i) if i >= 0 => Ok(i as u64),
        _ => Err(format!("{what} is not a non-negative integer")),
    }
}

fn uints(p: &Pickle, id: Id, what: &str) -> Result<Vec<u64>, String> {
    match p.get(id) {
        Value::Tuple(v) | Value::List(v) => v.iter().map(|&i| uint(p, i, what)).collect(),
        // torch.Size pickles as a tuple; anything else is malformed
        other => Err(format!("{what} is a {}, not a tuple", other.kind())),
    }
}

/// The storage class or dtype name of a global (`torch.FloatStorage`, `torch.cuda.HalfStorage`).
fn global_name(p: &Pickle, id: Id) -> Option<(&str, &str)> {
    match p.get(id) {
        Value::Global { module, name } => Some((module, name)),
        _ => None,
    }
}

/// A storage record as written, before its class is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRecord {
    /// Key of the root storage.
    pub key: String,
    /// Module of the storage class (`torch`, `torch.cuda`).
    pub module: String,
    /// Storage class name (`FloatStorage`, `UntypedStorage`, …).
    pub class: String,
    /// Declared size of the root storage, in its own elements (bytes if untyped).
    pub numel: u64,
    /// A window `(offset, len)` of the root storage, if a view.
    pub window: Option<(u64, u64)>,
}

/// Read a persistent id `('storage', class, key, location, numel[, view_metadata])`.
pub fn storage_record(p: &Pickle, pid: Id) -> Result<StorageRecord, String> {
    let t = p.seq(pid).ok_or("storage reference is not a tuple")?;
    if t.len() < 5 || p.str(t[0]) != Some("storage") {
        return Err("persistent id is not a ('storage', …) record".into());
    }
    let (module, class) = global_name(p, t[1]).ok_or("storage type is not a class")?;
    let key = match p.get(t[2]) {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key is a {}", other.kind())),
    };
    let numel = uint(p, t[4], "storage size")?;
    let window = match t.get(5).map(|&v| p.get(v)) {
        None | Some(Value::None) => None,
        Some(Value::Tuple(m)) if m.len() == 3 => {
            let offset = uint(p, m[1], "view offset")?;
            let len = uint(p, m[2], "view size")?;
            let end = offset.checked_add(len).ok_or("view window overflows")?;
            if end > numel {
                return Err(format!(
                    "storage view [{offset}, {end}) lies outside a storage of {numel} elements"
                ));
            }
            Some((offset, len))
        }
        Some(_) => return Err("storage view metadata is malformed".into()),
    };
    Ok(StorageRecord {
        key,
        module: module.to_string(),
        class: class.to_string(),
        numel,
        window,
    })
}

/// Interpret a persistent id as a storage of a supported element type. `dtype_hint` is the
/// dtype argument of `_rebuild_tensor_v3`, which goes with an `UntypedStorage` whose size is
/// in bytes.
pub fn storage_ref(p: &Pickle, pid: Id, dtype_hint: Option<Dtype>) -> Result<StorageRef, String> {
    let r = storage_record(p, pid)?;
    let (dtype, numel, window) = match (Dtype::from_storage_class(&r.class), dtype_hint) {
        (Some(d), _) if r.module.starts_with("torch") => (d, r.numel, r.window),
        (None, Some(d)) if r.class == "UntypedStorage" && r.window.is_none() => (d, r.numel / d.size() as u64, None),
        _ => return Err(format!("unsupported storage type {}.{}", r.module, r.class)),
    };
    Ok(StorageRef {
        key: r.key,
        dtype,
        numel,
        window,
    })
}

/// The rebuild function a call node names, if it is one of PyTorch's.
fn rebuild_fn(p: &Pickle, callable: Id) -> Option<&'static str> {
    let (module, name) = global_name(p, callable)?;
    let known = [
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.tensor", "_rebuild_from_type_v2"),
    ];
    known.iter().find(|(m, n)| *m == module && *n == name).map(|(_, n)| *n)
}

/// `Ok(None)` when `id` is not a tensor at all; `Err` when it is one of PyTorch's tensor
/// rebuild calls but malformed.
pub fn tensor_ref(p: &Pickle, id: Id) -> Result<Option<TensorRef>, String> {
    // Unwrap parameter / subclass wrappers (a bounded number of times: cycles are possible).
    let (mut callable, mut args) = match p.get(id) {
        Value::Call { callable, args, .. } => (*callable, *args),
        _ => return Ok(None),
    };
    for round in 0..8 {
        let Some(f) = rebuild_fn(p, callable) else {
            return match other_tensor_kind(p, callable) {
                Some(why) => Err(why),
                None if round > 0 => Err("a parameter whose data is not a tensor fp8q reads".into()),
                None => Ok(None),
            };
        };
        let a = p.seq(args).ok_or_else(|| format!("{f}: arguments are not a tuple"))?;
        match f {
            "_rebuild_parameter" | "_rebuild_parameter_with_state" => {
                let inner = *a.first().ok_or_else(|| format!("{f}: no arguments"))?;
                match p.get(inner) {
                    Value::Call {
                        callable: c, args: r, ..
                    } => (callable, args) = (*c, *r),
                    other => return Err(format!("{f}: data is a {}", other.kind())),
                }
            }
            "_rebuild_from_type_v2" => {
                if a.len() < 3 {
                    return Err(format!("{f}: expected (func, type, args, state)"));
                }
                (callable, args) = (a[0], a[2]);
            }
            _ => return rebuild_tensor(p, f, a).map(Some),
        }
    }
    Err("tensor wrapped too deeply".into())
}

/// Why a call to one of PyTorch's other tensor-rebuild functions (quantized, sparse, meta, …
/// tensors) is not read, or `None` when `callable` is not one of them.
fn other_tensor_kind(p: &Pickle, callable: Id) -> Option<String> {
    let (module, name) = global_name(p, callable)?;
    if !(matches!(module, "torch._utils" | "torch._tensor" | "torch.tensor" | "torch") && name.starts_with("_rebuild"))
    {
        return None;
    }
    let what = match name {
        "_rebuild_qtensor" => "a quantized tensor",
        "_rebuild_meta_tensor_no_storage" => "a meta tensor (it holds no data)",
        "_rebuild_sparse_tensor" | "_rebuild_sparse_csr_tensor" => "a sparse tensor",
        "_rebuild_nested_tensor" => "a nested tensor",
        _ => "a kind of tensor fp8q does not read",
    };
    Some(format!(
        "{what} ({module}.{name}); fp8q reads dense floating-point and integer tensors"
    ))
}

fn rebuild_tensor(p: &Pickle, f: &str, a: &[Id]) -> Result<TensorRef, String> {
    if a.len() < 4 {
        return Err(format!(
            "{f}: expected (storage, offset, size, stride, …), got {} arguments",
            a.len()
        ));
    }
    let dtype_hint = if f == "_rebuild_tensor_v3" {
        let d = a.get(6).ok_or("_rebuild_tensor_v3: no dtype argument")?;
        let (_, name) = global_name(p, *d).ok_or("_rebuild_tensor_v3: dtype is not a torch dtype")?;
        Some(Dtype::from_torch_name(name).ok_or_else(|| format!("unsupported dtype torch.{name}"))?)
    } else {
        None
    };
    let Value::Persistent(pid) = p.get(a[0]) else {
        return Err(format!(
            "{f}: storage is a {}, not a storage reference",
            p.get(a[0]).kind()
        ));
    };
    let storage = storage_ref(p, *pid, dtype_hint)?;
    let view = View {
        offset: uint(p, a[1], "storage offset")?,
        size: uints(p, a[2], "size")?,
        stride: uints(p, a[3], "stride")?,
    };
    Ok(TensorRef { storage, view })
}

/// Every storage record of the pickle, in the order of its persistent ids (the order in which
/// PyTorch's loader first sees each storage), including those of entries that are not read
/// (optimizer state). Persistent ids that are not storage records are skipped.
pub fn all_storages(p: &Pickle) -> Vec<StorageRecord> {
    p.values()
        .iter()
        .filter_map(|v| match v {
            Value::Persistent(pid) => storage_record(p, *pid).ok(),
            _ => None,
        })
        .collect()
}
