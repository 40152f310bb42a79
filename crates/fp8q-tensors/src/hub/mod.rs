//! Pretrained weights from torchvision, kept where PyTorch keeps them.
//!
//! With no checkpoint given, the reference builds its networks with torchvision's
//! `pretrained=True`, i.e. the IMAGENET1K_V1 weights. This module finds the same files in the torch
//! hub cache (`$TORCH_HOME/hub/checkpoints`, see [`hub_checkpoint_dir`]) or downloads them there
//! from torchvision's URL, verifying the SHA-256 prefix in the file name as
//! `torch.hub.load_state_dict_from_url(check_hash=True)` does. A download goes to a temporary file
//! in the same folder and is renamed only once complete and verified, so a failed download leaves
//! nothing behind.
//!
//! ```no_run
//! use fp8q_tensors::hub;
//! let path = hub::pretrained_checkpoint("resnet18", &mut |done, total| {
//!     eprintln!("{done} of {total:?} bytes");
//! })
//! .unwrap();
//! let tensors = fp8q_tensors::checkpoint::Checkpoint::load(&path).unwrap();
//! ```

mod cache_dir;
mod download;
mod torchvision;

pub use cache_dir::{hub_checkpoint_dir, hub_checkpoint_dir_from};
pub use download::{cached_or_download, cached_path, download_verified, MAX_DOWNLOAD_BYTES};
pub use torchvision::{hash_prefix, torchvision_weights, PretrainedWeights, TORCHVISION_WEIGHTS};

use std::path::PathBuf;

use crate::error::{Result, TensorError};

/// The torchvision IMAGENET1K_V1 checkpoint of the architecture named `arch` (`resnet18`,
/// `resnet50`, `mobilenet_v2`): the file in the torch hub cache, downloaded
/// there first when missing.
///
/// `progress(done, total)` is called only when downloading: first with `(0, total)` once the
/// server has answered (`total` is its `Content-Length`, if any), then after every chunk.
/// Errors name the URL and the full path the file should be put at by hand.
pub fn pretrained_checkpoint(arch: &str, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<PathBuf> {
    let weights = torchvision_weights(arch).ok_or_else(|| {
        TensorError::invalid(
            "model",
            format!("no torchvision weights are known for {arch}; give a checkpoint with --model-dir"),
        )
    })?;
    let dir = hub_checkpoint_dir()?;
    cached_or_download(&dir, weights.file_name, weights.url, progress)
}
