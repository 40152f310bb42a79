//! Which checkpoint file a run reads.

use std::path::PathBuf;

use anyhow::bail;
use fp8q_nn::models::Architecture;

use super::config::RunConfig;

/// The checkpoint of a run: `--model-dir` when given; otherwise torchvision's IMAGENET1K_V1
/// weights of the architecture from the torch hub cache, as the reference's ResNets use (for
/// MobileNetV2, whose reference checkpoint must be given, torchvision's `mobilenet_v2` file).
pub fn resolve_model_path(cfg: &RunConfig) -> anyhow::Result<PathBuf> {
    if let Some(path) = &cfg.model_dir {
        return Ok(path.clone());
    }
    let file = match cfg.arch {
        Architecture::Resnet18 => "resnet18-f37072fd.pth",
        Architecture::Resnet50 => "resnet50-0676ba61.pth",
        Architecture::MobilenetV2 => "mobilenet_v2-b0353104.pth",
    };
    bail!(
        "no --model-dir given: {} would use torchvision's IMAGENET1K_V1 weights ({file} from the torch hub cache), \
         which is not available yet (torchvision download not yet wired); pass --model-dir FILE",
        cfg.arch
    )
}
