//! Which checkpoint file a run reads.

use std::path::PathBuf;

use fp8q_nn::hub;

use super::config::RunConfig;

/// The checkpoint of a run: `--model-dir` when given; otherwise torchvision's IMAGENET1K_V1
/// weights of the architecture from the torch hub cache (`$TORCH_HOME/hub/checkpoints`, …),
/// downloaded there first when missing, as the reference's ResNets do (for MobileNetV2, whose
/// reference checkpoint must be given, torchvision's `mobilenet_v2` file).
pub fn resolve_model_path(cfg: &RunConfig) -> anyhow::Result<PathBuf> {
    if let Some(path) = &cfg.model_dir {
        return Ok(path.clone());
    }
    let mut bar: Option<indicatif::ProgressBar> = None;
    let path = hub::pretrained_checkpoint(cfg.arch, &mut |done, total| {
        let b = bar.get_or_insert_with(|| {
            if let Some(w) = hub::torchvision_weights(cfg.arch) {
                eprintln!("downloading {} (torchvision's {} weights)", w.url, cfg.arch);
            }
            let b = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "downloading [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            if !cfg.progress_bar {
                b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            b
        });
        b.set_position(done);
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
        eprintln!("saved {}", path.display());
    }
    Ok(path)
}
