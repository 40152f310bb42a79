//! The zip format of `torch.save` (PyTorch ≥ 1.6): `<name>/data.pkl` holds the pickle,
//! `<name>/data/<key>` the raw little-endian bytes of each storage.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};

use candle_core::Tensor;

use super::materialize::materialize;
use super::storage::Budget;
use super::{pickle, unwrap};

/// What this reader is called in messages.
pub const NAME: &str = "PyTorch zip checkpoint";

/// The error of a zip archive without a pickle: not a `torch.save` file at all (e.g. a NumPy
/// `.npz`).
pub const NOT_TORCH_ZIP: &str = "a zip archive without a <name>/data.pkl";

/// Whether `bytes` start like a zip archive (as every `torch.save` zip does, at byte 0).
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

fn read_entry<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<Vec<u8>, String> {
    let mut f = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    // Stored entries (torch never compresses) read at most the archive's own bytes.
    f.read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(bytes)
}

/// Read the state dict of a zip-format `.pth`.
pub fn read(bytes: &[u8], budget: &mut Budget) -> Result<BTreeMap<String, Tensor>, String> {
    read_typed(bytes, budget).map(super::untyped)
}

/// [`read`], with the element type each tensor was stored with.
pub fn read_typed(bytes: &[u8], budget: &mut Budget) -> Result<super::Typed, String> {
    // torch.save archives start at byte 0. zip's default offset detection mis-reads some valid
    // archives (one of the golden MobileNetV2 files), so the offset is fixed.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip =
        zip::ZipArchive::with_config(config, Cursor::new(bytes)).map_err(|e| format!("not a zip archive: {e}"))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable zip directory: {e}"))?;
    let pkl: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1))
        .collect();
    let pkl_name = match pkl.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(NOT_TORCH_ZIP.into()),
        _ => return Err("more than one <name>/data.pkl in the archive".into()),
    };
    let dir = pkl_name.trim_end_matches("data.pkl").to_string();
    let byteorder = format!("{dir}byteorder");
    if names.contains(&byteorder) {
        let b = read_entry(&mut zip, &byteorder)?;
        let order = String::from_utf8_lossy(&b);
        if order.trim() != "little" {
            return Err(format!("unsupported byte order '{}'", order.trim()));
        }
    }
    let pkl_bytes = read_entry(&mut zip, &pkl_name)?;
    let (p, _) = pickle::parse(&pkl_bytes).map_err(|e| format!("unreadable pickle {pkl_name}: {e}"))?;
    drop(pkl_bytes);
    let entries = unwrap::state_dict(&p)?;

    let mut owned: HashMap<String, Vec<u8>> = HashMap::new();
    for (key, t) in &entries {
        let k = &t.storage.key;
        if !owned.contains_key(k) {
            let bytes = read_entry(&mut zip, &format!("{dir}data/{k}")).map_err(|e| format!("tensor {key}: {e}"))?;
            owned.insert(k.clone(), bytes);
        }
    }
    let storages: HashMap<String, &[u8]> = owned.iter().map(|(k, v)| (k.clone(), v.as_slice())).collect();
    materialize(entries, &storages, budget)
}
