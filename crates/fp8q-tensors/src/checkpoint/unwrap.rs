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
//! `module.` that `DataParallel` / `DistributedDataParallel` and the `_orig_mod.` that
//! `torch.compile` put before every key.

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

/// The class of the object a pickled value builds (`torch.nn.modules.linear.Linear`), if it is
/// one: the callable of a `REDUCE`/`NEWOBJ`, a global, or the class record that the legacy
/// format writes for a module class (`('module', <class>, source file, source)`).
fn object_class(p: &Pickle, id: Id) -> Option<String> {
    let Value::Call { callable, .. } = p.get(id) else {
        return None;
    };
    let class = match p.get(*callable) {
        Value::Persistent(pid) => match p.seq(*pid) {
            Some([tag, class, ..]) if p.str(*tag) == Some("module") => *class,
            _ => return None,
        },
        _ => *callable,
    };
    match p.get(class) {
        Value::Global { module, name } => Some(format!("{module}.{name}")),
        _ => None,
    }
}

/// What to do about a pickled object of `class` where a state dict was expected.
fn save_state_dict_hint(class: &str) -> String {
    if class.starts_with("__torch__.") {
        format!(
            "a TorchScript module {class} (torch.jit.save); load it in PyTorch and save \
             model.state_dict() with torch.save instead"
        )
    } else {
        format!("a pickled {class} object; save model.state_dict() instead")
    }
}

/// The state dict's tensors in the pickle, or a message that says what was found instead.
pub fn state_dict(p: &Pickle) -> Result<Vec<(String, TensorRef)>, String> {
    if let Some(found) = find(p, p.root(), 0, &mut HashSet::new())? {
        return Ok(found);
    }
    if let Some(class) = object_class(p, p.root()) {
        return Err(format!(
            "no state dict found: the file holds {}",
            save_state_dict_hint(&class)
        ));
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
            // a wrapper that holds the whole model (`{'model': model, 'epoch': …}`)
            let object = STATE_DICT_KEYS.iter().find_map(|want| {
                let &(_, v) = items.iter().find(|(k, _)| p.str(*k) == Some(want))?;
                Some((want, object_class(p, v)?))
            });
            let hint = match object {
                Some((key, class)) => format!("; its '{key}' is {}", save_state_dict_hint(&class)),
                None => String::new(),
            };
            format!(
                "no state dict found: the dict holds no tensors, and none of the keys {} leads to one \
                 (its keys: {}{more}){hint}",
                STATE_DICT_KEYS.join(", "),
                keys.join(", ")
            )
        }
        Value::Call { .. } => "no state dict found: the file holds a pickled object".into(),
        other => format!(
            "no state dict found: the file holds a {}, not a dict of tensors",
            other.kind()
        ),
    })
}

/// Key prefixes of wrapped models: `module.` of `DataParallel` / `DistributedDataParallel`, and
/// `_orig_mod.` of a `torch.compile`d model.
pub const WRAPPER_PREFIXES: [&str; 2] = ["module.", "_orig_mod."];

/// Drop a [`WRAPPER_PREFIXES`] prefix while every key has it (wrappers can nest, in any order:
/// `module._orig_mod.`, `_orig_mod.module.`).
pub fn strip_module_prefix<T>(mut map: BTreeMap<String, T>) -> BTreeMap<String, T> {
    while let Some(p) = WRAPPER_PREFIXES
        .iter()
        .find(|p| !map.is_empty() && map.keys().all(|k| k.starts_with(*p)))
    {
        map = map.into_iter().map(|(k, v)| (k[p.len()..].to_string(), v)).collect();
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
        for p in [
            "_orig_mod.",
            "module._orig_mod.",
            "_orig_mod.module.",
            "_orig_mod.module.module.",
        ] {
            let m: BTreeMap<String, i32> = [(format!("{p}a.weight"), 1), (format!("{p}b"), 2)].into();
            assert_eq!(
                strip_module_prefix(m).keys().collect::<Vec<_>>(),
                ["a.weight", "b"],
                "{p}"
            );
        }
        let m: BTreeMap<String, i32> = [("_orig_mod.a".to_string(), 1), ("module.b".into(), 2)].into();
        assert_eq!(strip_module_prefix(m).len(), 2);
    }
}
