//! Finding a model's tensors by dotted path, `VarBuilder`-style, while keeping a ledger of what
//! is missing, mis-shaped or left over, so that a checkpoint that does not fit is reported in one
//! error listing every problem.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use fp8q_nn::weights::Weights;
//! let mut map = std::collections::BTreeMap::new();
//! map.insert("fc.weight".to_string(), Tensor::zeros((10, 4), candle_core::DType::F32, &Device::Cpu).unwrap());
//! let w = Weights::new("ckpt.pth", map);
//! let fc = w.root().pp("fc");
//! let t = fc.get("weight", &[10, 4]);
//! assert_eq!(t.dims(), &[10, 4]);
//! w.finish("toy").unwrap(); // every tensor used, none missing
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::error::{Mismatch, NnError, Result, ShapeMismatch};

/// The tensors of a checkpoint plus the ledger of which were used.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    used: RefCell<BTreeSet<String>>,
    problems: RefCell<Mismatch>,
}

/// A position in the key hierarchy (`layer1.0.conv1`).
#[derive(Debug, Clone)]
pub struct WeightPath<'a> {
    store: &'a Weights,
    prefix: String,
}

impl Weights {
    /// Wrap the tensors read from `path`.
    pub fn new(path: impl Into<PathBuf>, tensors: BTreeMap<String, Tensor>) -> Self {
        Weights {
            path: path.into(),
            tensors,
            used: RefCell::new(BTreeSet::new()),
            problems: RefCell::new(Mismatch::default()),
        }
    }

    /// The empty prefix.
    pub fn root(&self) -> WeightPath<'_> {
        WeightPath {
            store: self,
            prefix: String::new(),
        }
    }

    /// The file the tensors came from.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Shape of a key, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.dims().to_vec())
    }

    /// All keys.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Close the ledger: an error listing every missing, unexpected and mis-shaped tensor, if any.
    pub fn finish(self, arch: &str) -> Result<()> {
        let used = self.used.into_inner();
        let mut problems = self.problems.into_inner();
        problems.unexpected = self.tensors.keys().filter(|k| !used.contains(*k)).cloned().collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(NnError::CheckpointMismatch {
                path: self.path,
                arch: arch.to_string(),
                mismatch: Box::new(problems),
            })
        }
    }
}

impl<'a> WeightPath<'a> {
    /// Descend one level: `root().pp("layer1").pp(0)` is `layer1.0`.
    pub fn pp(&self, part: impl std::fmt::Display) -> WeightPath<'a> {
        let prefix = if self.prefix.is_empty() {
            part.to_string()
        } else {
            format!("{}.{part}", self.prefix)
        };
        WeightPath {
            store: self.store,
            prefix,
        }
    }

    /// The dotted prefix (the unit's name).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The tensor `prefix.name` with the given shape. A missing or mis-shaped tensor is recorded
    /// in the ledger and replaced by zeros, so that building continues and every problem is
    /// reported by [`Weights::finish`]. The zeros are one value broadcast to the shape, not
    /// allocated: the shapes a model asks for follow the widths the checkpoint declares, and a
    /// hostile one (a stride-0 `conv1.weight` of 100 000 channels) would otherwise make the
    /// next layer ask for hundreds of gigabytes.
    pub fn get(&self, name: &str, shape: &[usize]) -> Tensor {
        let key = self.key(name);
        match self.store.tensors.get(&key) {
            Some(t) if t.dims() == shape => {
                self.store.used.borrow_mut().insert(key);
                t.clone()
            }
            Some(t) => {
                self.store.used.borrow_mut().insert(key.clone());
                self.store.problems.borrow_mut().mis_shaped.push(ShapeMismatch {
                    key,
                    expected: shape.to_vec(),
                    found: t.dims().to_vec(),
                });
                zeros(shape)
            }
            None => {
                self.store.problems.borrow_mut().missing.push(key);
                zeros(shape)
            }
        }
    }

    /// Mark `prefix.name` as known when present (e.g. `num_batches_tracked`), without needing it.
    pub fn optional(&self, name: &str) {
        let key = self.key(name);
        if self.store.tensors.contains_key(&key) {
            self.store.used.borrow_mut().insert(key);
        }
    }

    /// Shape of `prefix.name` in the checkpoint, if present.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.store.shape(&self.key(name))
    }
}

/// Zeros of `shape` as a stride-0 view of one value (no allocation of the shape's size).
fn zeros(shape: &[usize]) -> Tensor {
    let one = Tensor::zeros((), DType::F32, &Device::Cpu).expect("a scalar");
    one.broadcast_as(shape)
        .unwrap_or_else(|_| Tensor::from_vec(Vec::<f32>::new(), 0, &Device::Cpu).expect("empty tensor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize]) -> Tensor {
        zeros(shape)
    }

    #[test]
    fn ledger_lists_every_problem() {
        let mut map = BTreeMap::new();
        map.insert("a.weight".to_string(), t(&[2, 3]));
        map.insert("a.bias".to_string(), t(&[3]));
        map.insert("extra".to_string(), t(&[1]));
        let w = Weights::new("x.pth", map);
        let a = w.root().pp("a");
        a.get("weight", &[2, 3]);
        a.get("bias", &[2]);
        a.get("scale", &[2]);
        let err = w.finish("toy").unwrap_err();
        match &err {
            NnError::CheckpointMismatch { mismatch, .. } => {
                assert_eq!(mismatch.missing, vec!["a.scale".to_string()]);
                assert_eq!(mismatch.unexpected, vec!["extra".to_string()]);
                assert_eq!(mismatch.mis_shaped.len(), 1);
                assert_eq!(mismatch.mis_shaped[0].key, "a.bias");
            }
            other => panic!("unexpected error {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("x.pth") && msg.contains("a.scale") && msg.contains("extra"));
        assert!(msg.contains("expected [2], found [3]"), "{msg}");
    }

    #[test]
    fn placeholders_are_not_allocated() {
        // 10^5 × 10^5 × 3 × 3 f32 would be 360 GB
        let w = Weights::new("x.pth", BTreeMap::new());
        let t = w.root().pp("layer1").get("weight", &[100_000, 100_000, 3, 3]);
        assert_eq!(t.dims(), &[100_000, 100_000, 3, 3]);
        assert!(w.finish("toy").is_err());
    }

    #[test]
    fn fitting_checkpoint_finishes() {
        let mut map = BTreeMap::new();
        map.insert("layer1.0.w".to_string(), t(&[1]));
        map.insert("layer1.0.num_batches_tracked".to_string(), t(&[]));
        let w = Weights::new("x.pth", map);
        let p = w.root().pp("layer1").pp(0);
        assert_eq!(p.prefix(), "layer1.0");
        p.get("w", &[1]);
        p.optional("num_batches_tracked");
        w.finish("toy").unwrap();
    }
}
