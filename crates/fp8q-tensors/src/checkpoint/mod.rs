//! Reading checkpoints as users have them: PyTorch `.pth` in the zip format (PyTorch ≥ 1.6), the
//! legacy `torch.save` stream (older PyTorch, e.g. `mobilenet_v2.pth.tar` of 2018), and
//! `.safetensors`. The format is chosen by the file's first bytes, never by its name.
//!
//! A checkpoint becomes a flat map from key (`layer1.0.conv1.weight`) to an `f32` tensor.
//! Floating-point (f32, f64, f16, bf16), integer and bool tensors are converted (rounded to
//! nearest). Training checkpoints are unwrapped (see [`unwrap`] for the keys searched, e.g.
//! `state_dict`), other entries (optimizer state, epoch, …) are ignored, and the `module.`
//! prefix of `DataParallel` and the `_orig_mod.` of `torch.compile` are dropped. A whole pickled
//! model (`torch.save(model)`) is refused with a message saying to save `model.state_dict()`.
//!
//! **Reading a `.pth` never executes anything**, and a hostile file gives an error, never a
//! crash: the pickle is read by our own [`pickle`] interpreter, which builds inert values in an
//! arena without recursion and checks every declared length against the bytes left. Only
//! PyTorch's tensor-rebuild records are interpreted ([`rebuild`]); every storage index, view
//! window, shape and stride is checked before data is read, and the elements all tensors decode
//! to are bounded by the file size ([`storage::Budget`]).
//!
//! ```no_run
//! let ckpt = fp8q_tensors::checkpoint::Checkpoint::load("resnet18.pth").unwrap();
//! println!("{} tensors", ckpt.tensors.len());
//! ```

pub mod legacy_pth;
pub mod low_precision;
mod materialize;
pub mod pickle;
pub mod rebuild;
pub mod safetensors;
pub mod storage;
pub mod unwrap;
pub mod zip_pth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{Result, TensorError};
use storage::Budget;

/// A loaded checkpoint: every floating-point (and integer) tensor as `f32`, by key.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// Tensors by key, after unwrapping and prefix removal.
    pub tensors: BTreeMap<String, Tensor>,
}

/// Tensors by key with the element type they were stored with.
pub type Typed = BTreeMap<String, (Tensor, storage::Dtype)>;

/// Drop the element types.
fn untyped(t: Typed) -> BTreeMap<String, Tensor> {
    t.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// The formats tried, for the message of a file that is none of them.
pub const FORMATS_TRIED: &str = "not a PyTorch zip checkpoint, a legacy torch.save stream or a safetensors file";

impl Checkpoint {
    /// Load a checkpoint file, whichever of the three formats it is.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|err| TensorError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        let tensors = Self::from_bytes(&bytes).map_err(|why| TensorError::bad_checkpoint(path, why))?;
        Ok(Checkpoint {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Read a checkpoint held in memory; the error says which format was read and what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<BTreeMap<String, Tensor>, String> {
        Self::from_bytes_typed(bytes).map(untyped)
    }

    /// [`Checkpoint::from_bytes`], with the element type each tensor was stored with (every
    /// tensor is converted to `f32`; the dtype tells which were integers or booleans).
    pub fn from_bytes_typed(bytes: &[u8]) -> std::result::Result<Typed, String> {
        let mut budget = Budget::for_file(bytes.len());
        let (name, raw) = if zip_pth::sniff(bytes) {
            (zip_pth::NAME, zip_pth::read_typed(bytes, &mut budget))
        } else if legacy_pth::sniff(bytes) {
            (legacy_pth::NAME, legacy_pth::read_typed(bytes, &mut budget))
        } else if safetensors::sniff(bytes) {
            (safetensors::NAME, safetensors::read_typed(bytes))
        } else {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            let what = if bytes.get(257..262) == Some(b"ustar") {
                "; it is a tar archive (torch.save of PyTorch before 0.1.10, or an archive to unpack first)"
            } else if bytes.starts_with(&[0x1f, 0x8b]) {
                "; it is gzip-compressed: decompress it first"
            } else {
                ""
            };
            return Err(if bytes.is_empty() {
                format!("empty file: {FORMATS_TRIED}")
            } else {
                format!("{FORMATS_TRIED} (it starts with bytes {}){what}", head.join(" "))
            });
        };
        let raw = raw.map_err(|e| {
            if e == legacy_pth::NOT_TORCH_SAVE {
                // not the legacy format after all: the one message about what this file is not
                format!("{FORMATS_TRIED} (it is a pickle, but not one written by torch.save: {e})")
            } else if e == zip_pth::NOT_TORCH_ZIP {
                format!("{FORMATS_TRIED} (it is {e}, e.g. a NumPy .npz, not written by torch.save)")
            } else {
                format!("{name}: {e}")
            }
        })?;
        let tensors = unwrap::strip_module_prefix(raw);
        if tensors.is_empty() {
            return Err(format!("{name}: no tensors found"));
        }
        Ok(tensors)
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(|t| t.dims().to_vec())
    }
}
