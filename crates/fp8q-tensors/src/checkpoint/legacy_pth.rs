//! The legacy `torch.save` stream (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`).
//!
//! Despite names like `mobilenet_v2.pth.tar`, it is not a tar archive but five pickles in a row
//! and the storages after them:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c`;
//! 2. the protocol version `1001`;
//! 3. `sys_info`: `{'protocol_version', 'little_endian', 'type_sizes'}`;
//! 4. the object, whose storages are persistent ids
//!    `('storage', <class>, key, location, numel, view_metadata)`;
//! 5. the list of storage keys;
//!
//! then, for each key of that list in order, the storage's element count as a little-endian
//! `u64` followed by its raw little-endian bytes. A storage's element size is that of the class
//! it is first referred to with in pickle 4 (as in PyTorch's loader).

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;

use super::materialize::materialize;
use super::pickle::{self, Pickle, Value};
use super::rebuild::all_storages;
use super::storage::{Budget, Dtype};
use super::unwrap;

/// What this reader is called in messages.
pub const NAME: &str = "legacy torch.save stream";

/// The magic number of the first pickle, as the little-endian bytes of its `LONG1`.
pub const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The error of a pickle that does not start with the magic number: not a `torch.save` stream
/// at all (e.g. `pickle.dump` of a state dict, which `torch.load` refuses too).
pub const NOT_TORCH_SAVE: &str = "a pickle, but its first value is not torch.save's magic number";

/// The only legacy protocol version there is.
pub const PROTOCOL_VERSION: i64 = 1001;

/// The magic number as pickle protocol 0 and 1 write it (a text `LONG`).
pub const MAGIC_TEXT: &[u8] = b"L119547037146038801333356L\n";

/// Whether `bytes` start like a legacy stream: a pickle (`PROTO` opcode, protocols 2–5), or
/// the magic number in the text form of protocol 1 (`torch.save(…, pickle_protocol=1)`).
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x80) || bytes.starts_with(MAGIC_TEXT)
}

/// Bytes per element of a storage class, including classes whose tensors are not read but
/// whose bytes must be skipped (complex, quantized, untyped).
fn element_size(class: &str) -> Option<u64> {
    if let Some(d) = Dtype::from_storage_class(class) {
        return Some(d.size() as u64);
    }
    Some(match class {
        "ComplexFloatStorage" => 8,
        "ComplexDoubleStorage" => 16,
        "QInt32Storage" => 4,
        "QInt8Storage" | "QUInt8Storage" | "QUInt4x2Storage" | "QUInt2x4Storage" | "UntypedStorage" => 1,
        _ => return None,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn pickle(&mut self, what: &str) -> Result<Pickle, String> {
        let (p, n) = pickle::parse(&self.bytes[self.pos..])
            .map_err(|e| format!("unreadable {what} pickle at byte {}: {e}", self.pos))?;
        self.pos += n;
        Ok(p)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self
            .bytes
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| format!("truncated: {what} at byte {} is missing", self.pos))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], String> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "truncated: {what} at byte {} needs {n} bytes, {left} are left",
                self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
}

/// Read the state dict of a legacy `torch.save` stream.
pub fn read(bytes: &[u8], budget: &mut Budget) -> Result<BTreeMap<String, Tensor>, String> {
    read_typed(bytes, budget).map(super::untyped)
}

/// [`read`], with the element type each tensor was stored with.
pub fn read_typed(bytes: &[u8], budget: &mut Budget) -> Result<super::Typed, String> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.pickle("magic number")?;
    if magic.get(magic.root()) != &Value::BigInt(MAGIC.to_vec()) {
        return Err(NOT_TORCH_SAVE.into());
    }
    let version = c.pickle("protocol version")?;
    match version.int(version.root()) {
        Some(PROTOCOL_VERSION) => {}
        Some(v) => return Err(format!("unsupported legacy protocol version {v}")),
        None => return Err("the protocol version is not an integer".into()),
    }
    let sys_info = c.pickle("sys_info")?;
    if let Value::Dict(items) = sys_info.get(sys_info.root()) {
        for &(k, v) in items {
            if sys_info.str(k) == Some("little_endian") && sys_info.get(v) == &Value::Bool(false) {
                return Err("written on a big-endian machine; only little-endian files are supported".into());
            }
        }
    }
    let obj = c.pickle("object")?;
    let key_list = c.pickle("storage key list")?;

    // Element size of every storage, from its first reference.
    let mut declared: HashMap<String, (u64, String)> = HashMap::new();
    for r in all_storages(&obj) {
        declared.entry(r.key).or_insert((r.numel, r.class));
    }
    let keys = key_list
        .seq(key_list.root())
        .ok_or("the storage key list is not a list")?;
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for &k in keys {
        let key = match key_list.get(k) {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => return Err(format!("a storage key is a {}", other.kind())),
        };
        let (numel, class) = declared
            .get(&key)
            .ok_or_else(|| format!("storage {key} is listed but never referred to"))?;
        let elem = element_size(class).ok_or_else(|| format!("storage {key}: unknown storage type {class}"))?;
        let count = c.u64(&format!("the element count of storage {key}"))?;
        if count != *numel {
            return Err(format!(
                "storage {key} holds {count} elements, its reference says {numel}"
            ));
        }
        let len = count
            .checked_mul(elem)
            .ok_or_else(|| format!("storage {key}: {count} elements of {elem} bytes overflow"))?;
        let data = c.take(len, &format!("storage {key}"))?;
        if storages.insert(key.clone(), data).is_some() {
            return Err(format!("storage {key} is listed twice"));
        }
    }
    let entries = unwrap::state_dict(&obj)?;
    materialize(entries, &storages, budget)
}
