//! Finding the state dict inside what `torch.save` wrote, and normalising its keys.
//!
//! Users save either a bare state dict (a dict or `OrderedDict` of tensors) or a training
//! checkpoint that wraps it, like PyTorch's ImageNet example
//! (`{'epoch', 'arch', 'state_dict', 'optimizer', 'best_acc1'}`). The rule:
//!
//! 1. At a dict, look under the [`STATE_DICT_KEYS`] in that order; the first whose value is a
//!    dict in which a state dict is found (recursively, at most [`MAX_WRAPPING`] levels) wins.
//! 2. Otherwise, a dict that itself holds tensors is the state dict. Its entries that are not
//!    tensors (e.g. `_extra_state`, nested dicts) are ignored.
//!
//! Everything else in a wrapper — optimizer state, scalars, strings — is ignored, even when it
//! holds tensors (`best_acc1`, momentum buffers). Then [`strip_module_prefix`] drops the
//! `module.` that `DataParallel` / `DistributedDataParallel` put before every key.

use std::collections::{BTreeMap, HashSet};

use super::pickle::{Id, Pickle, Value};
use super::rebuild::{tensor_ref, TensorRef};

/// Keys under which training scripts keep the model's state dict, in order of preference:
/// PyTorch's ImageNet example and timm (`state_dict`), PyTorch's checkpoint tutorial
/// (`model_state_dict`), torchvision's reference scripts and many others (`model`), and common
/// variants.
pub const STATE_DICT_KEYS: [&str; 9] = [
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "net",
    "network",
    "module",
    "weights",
    "params",
];

/// How many wrapper dicts may enclose the state dict.
pub const MAX_WRAPPING: usize = 4;

fn dict(p: &Pickle, id: Id) -> Option<&[(Id, Id)]> {
    match p.get(id) {
        Value::Dict(d) => Some(d),
        _ => None,
    }
}

/// The tensors of the dict at `id`, by string key, in order; malformed tensor records are errors.
fn tensors_of(p: &Pickle, id: Id) -> Result<Vec<(String, TensorRef)>, String> {
    let mut out = Vec::new();
    for &(k, v) in dict(p, id).unwrap_or(&[]) {
        let Some(key) = p.str(k) else { continue };
        if let Some(t) = tensor_ref(p, v).map_err(|e| format!("tensor {key}: {e}"))? {
            out.push((key.to_string(), t));
        }
    }
    Ok(out)
}

/// Depth-first search; each dict is looked at once (wrappers may share or nest themselves).
fn find(p: &Pickle, id: Id, depth: usize, seen: &mut HashSet<Id>) -> Result<Option<Vec<(String, TensorRef)>>, String> {
    let Some(items) = dict(p, id) else {
        return Ok(None);
    };
    if !seen.insert(id) {
        return Ok(None);
    }
    if depth < MAX_WRAPPING {
        for want in STATE_DICT_KEYS {
            let hit = items.iter().find(|(k, _)| p.str(*k) == Some(want));
            if let Some(&(_, v)) = hit {
                if let Some(found) = find(p, v, depth + 1, seen)? {
                    return Ok(Some(found));
                }
            }
        }
    }
    let own = tensors_of(p, id)?;
    Ok((!own.is_empty()).then_some(own))
}

/// The state dict's tensors in the pickle, or a message that says what was found instead.
pub fn state_dict(p: &Pickle) -> Result<Vec<(String, TensorRef)>, String> {
    if let Some(found) = find(p, p.root(), 0, &mut HashSet::new())? {
        return Ok(found);
    }
    Err(match p.get(p.root()) {
        Value::Dict(items) => {
            let keys: Vec<String> = items
                .iter()
                .take(12)
                .map(|(k, _)| match p.get(*k) {
                    Value::Str(s) => format!("'{s}'"),
                    other => format!("<{}>", other.kind()),
                })
                .collect();
            let more = if items.len() > 12 { ", …" } else { "" };
            format!(
                "no state dict found: the dict holds no tensors, and none of the keys {} leads to one \
                 (its keys: {}{more})",
                STATE_DICT_KEYS.join(", "),
                keys.join(", ")
            )
        }
        Value::Call { callable, .. } => match p.get(*callable) {
            Value::Global { module, name } => format!(
                "no state dict found: the file holds a pickled {module}.{name} object; \
                 save model.state_dict() instead"
            ),
            _ => "no state dict found: the file holds a pickled object".into(),
        },
        other => format!(
            "no state dict found: the file holds a {}, not a dict of tensors",
            other.kind()
        ),
    })
}

/// Drop a `module.` prefix while every key has it (`DataParallel`, possibly nested).
pub fn strip_module_prefix<T>(mut map: BTreeMap<String, T>) -> BTreeMap<String, T> {
    const P: &str = "module.";
    while !map.is_empty() && map.keys().all(|k| k.starts_with(P)) {
        map = map.into_iter().map(|(k, v)| (k[P.len()..].to_string(), v)).collect();
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_prefix() {
        let m: BTreeMap<String, i32> = [("module.module.a".to_string(), 1), ("module.module.b".into(), 2)].into();
        assert_eq!(strip_module_prefix(m).keys().collect::<Vec<_>>(), ["a", "b"]);
        let m: BTreeMap<String, i32> = [("module.a".to_string(), 1), ("b".into(), 2)].into();
        assert_eq!(strip_module_prefix(m).keys().collect::<Vec<_>>(), ["b", "module.a"]);
    }
}
