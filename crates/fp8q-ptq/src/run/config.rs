//! The configuration of one PTQ run: everything `validate-quantized` accepts that changes what
//! is computed, resolved into one value (the CLI builds it from its arguments, a sweep from a
//! plan, bindings from keyword arguments).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{PtqError, Result};
use crate::{PtqConfig, QMethodKind};
use fp8q_images::{Filter, LoaderOptions, Transform};
use fp8q_nn::models::Architecture;

/// Transform of the calibration and BN re-estimation batches (`--calib-transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibTransform {
    /// RandomResizedCrop + flip, shuffled (the reference's training transform).
    Train,
    /// The validation transform, in sorted order.
    Val,
}

impl CalibTransform {
    /// The option value: `train` or `val`.
    pub fn name(self) -> &'static str {
        match self {
            CalibTransform::Train => "train",
            CalibTransform::Val => "val",
        }
    }
}

/// One of `count` disjoint, contiguous parts of the sorted validation list (`--shard I/N`,
/// `index` counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which part, `0 ..count`.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl Shard {
    /// A checked shard.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(PtqError::invalid(
                "shard",
                format!("{index}/{count}: needs N ≥ 1 and 0 ≤ I < N (I counts from 0)"),
            ));
        }
        Ok(Shard { index, count })
    }

    /// The half-open range of positions this shard takes from a list of `len` items:
    /// `⌊i·len/N⌋ .. ⌊(i+1)·len/N⌋`, so the parts are disjoint, cover the list and differ in size
    /// by at most one.
    pub fn bounds(&self, len: usize) -> std::ops::Range<usize> {
        let at = |i: usize| (i as u128 * len as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = PtqError;

    /// `I/N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || PtqError::invalid("shard", format!("'{s}': expected I/N, e.g. 0/4"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

/// Everything one PTQ run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The network.
    pub arch: Architecture,
    /// The checkpoint (`None`: torchvision's weights from the torch hub cache).
    pub model_dir: Option<PathBuf>,
    /// The ImageNet-layout root (`train/`, `val/`).
    pub images_dir: PathBuf,
    /// Quantizers and range estimation.
    pub ptq: PtqConfig,
    /// Calibration batches requested.
    pub num_est_batches: usize,
    /// Re-estimate BN statistics.
    pub reestimate_bn: bool,
    /// BN re-estimation batches (`None`: the reference's ⌊0.02 · training batches⌋).
    pub bn_reestimation_batches: Option<usize>,
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of shuffling and of the training transform.
    pub seed: u64,
    /// Worker threads (`None`: all cores).
    pub num_workers: Option<usize>,
    /// Resampling filter.
    pub interpolation: Filter,
    /// Transform of calibration and BN re-estimation batches.
    pub calib_transform: CalibTransform,
    /// Evaluate only this many validation images (spread evenly over the sorted list).
    pub max_val_images: Option<usize>,
    /// Evaluate only this part of the (subsampled) validation list.
    pub shard: Option<Shard>,
    /// Skip undecodable images.
    pub skip_bad_images: bool,
    /// Write the quantizer states here as soon as they are calibrated (`--save-quant-params`).
    pub save_quant_params: Option<PathBuf>,
    /// Load the quantizer states from here instead of calibrating (`--load-quant-params`).
    pub load_quant_params: Option<PathBuf>,
}

impl RunConfig {
    /// A run of `arch` on `images_dir` with `validate-quantized`'s defaults otherwise
    /// ([`PtqConfig::default`]: 8-bit FP with 4 mantissa bits for weights and activations; one
    /// calibration batch; batch size 128; seed 10).
    pub fn new(arch: Architecture, images_dir: impl Into<PathBuf>) -> Self {
        RunConfig {
            arch,
            model_dir: None,
            images_dir: images_dir.into(),
            ptq: PtqConfig::default(),
            num_est_batches: 1,
            reestimate_bn: false,
            bn_reestimation_batches: None,
            batch_size: 128,
            seed: 10,
            num_workers: None,
            interpolation: Filter::Bilinear,
            calib_transform: CalibTransform::Train,
            max_val_images: None,
            shard: None,
            skip_bad_images: false,
            save_quant_params: None,
            load_quant_params: None,
        }
    }

    /// Check the values that no type rules out. Errors name the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(PtqError::invalid(what, why));
        if self.batch_size == 0 {
            return bad("--batch-size 0", "must be at least 1".into());
        }
        if self.num_workers == Some(0) {
            return bad("--num-workers 0", "must be at least 1".into());
        }
        if self.max_val_images == Some(0) {
            return bad("--max-val-images 0", "must be at least 1".into());
        }
        if self.num_est_batches == 0 && self.quantized() && self.load_quant_params.is_none() {
            return bad("--num-est-batches 0", "calibration needs at least one batch".into());
        }
        if !self.quantized() && (self.load_quant_params.is_some() || self.save_quant_params.is_some()) {
            return bad(
                "--load-quant-params / --save-quant-params",
                "they need quantization (weights or activations)".into(),
            );
        }
        Ok(())
    }

    /// Whether any quantizer is installed.
    pub fn quantized(&self) -> bool {
        self.ptq.weight_quant || self.ptq.act_quant
    }

    /// Whether the run reads `train/`: to calibrate its quantizers (unless their states are
    /// loaded) or to re-estimate BN statistics.
    pub fn needs_training_images(&self) -> bool {
        (self.quantized() && self.load_quant_params.is_none()) || self.reestimate_bn
    }

    /// Check that the images folder is a folder. Cheap (one `stat`), so it runs before anything
    /// expensive, such as a checkpoint read or downloaded for nothing.
    pub fn check_images_root(&self) -> Result<()> {
        check_folder(
            &self.images_dir,
            "--images-dir: ImageNet layout, train/ and val/ with one folder per class",
        )
    }

    /// Check that the folders the run reads exist: the images folder, its `val/`, and its
    /// `train/` when [`Self::needs_training_images`]. Cheap (a few `stat`s), so [`super::run`]
    /// calls it before loading or downloading the checkpoint; what the folders hold is checked
    /// when they are opened.
    pub fn check_image_folders(&self) -> Result<()> {
        self.check_images_root()?;
        check_folder(
            &self.images_dir.join("val"),
            "the validation images of --images-dir, one folder per class",
        )?;
        if self.needs_training_images() {
            let calibrates = self.quantized() && self.load_quant_params.is_none();
            let uses = match (calibrates, self.reestimate_bn) {
                (true, true) => "calibration and BN re-estimation",
                (true, false) => "calibration",
                _ => "BN re-estimation",
            };
            check_folder(
                &self.images_dir.join("train"),
                &format!("the training images of --images-dir for {uses}, one folder per class"),
            )?;
        }
        Ok(())
    }

    /// A short description of the quantization, e.g. `W8 fp_quantizer / A8 fp_quantizer (fp8
    /// mantissa bits 4)`, or `FP32`.
    pub fn describe(&self) -> String {
        if !self.quantized() {
            return "FP32".into();
        }
        let p = &self.ptq;
        let act = p.qmethod_act.unwrap_or(p.qmethod);
        let w = if p.weight_quant {
            format!("W{} {}", p.n_bits, p.qmethod.name())
        } else {
            "W32".into()
        };
        let a = if p.act_quant {
            format!("A{} {}", p.n_bits_act.unwrap_or(p.n_bits), act.name())
        } else {
            "A32".into()
        };
        let fp = if p.qmethod == QMethodKind::FpQuantizer || act == QMethodKind::FpQuantizer {
            format!(" (fp8 mantissa bits {})", p.fp8_mantissa_bits)
        } else {
            String::new()
        };
        let mixed = match &p.layer_formats {
            Some(l) => format!(", {} slot(s) in their own format", l.len()),
            None => String::new(),
        };
        format!("{w} / {a}{fp}{mixed}")
    }

    /// The configuration as JSON, in the reference's option names (the `config` member of a
    /// report, and `--print-config`).
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.ptq;
        json!({
            "architecture": self.arch.name(),
            "model_dir": self.model_dir,
            "images_dir": self.images_dir,
            "load_type": "fp32",
            "weight_quant": p.weight_quant,
            "act_quant": p.act_quant,
            "qmethod": p.qmethod.name(),
            "qmethod_act": p.qmethod_act.map(|k| k.name()),
            "n_bits": p.n_bits,
            "n_bits_act": p.n_bits_act,
            "per_channel": p.per_channel,
            "weight_quant_method": p.weight_quant_method.name(),
            "act_quant_method": p.act_quant_method.name(),
            "act_momentum": f32_json(p.act_momentum),
            "num_est_batches": self.num_est_batches,
            "quant_setup": p.quant_setup.name(),
            "layer_formats": p.layer_formats.as_ref().map(|l| json!({
                "file": l.source,
                "formats": l.to_json(),
            })),
            "fp8_maxval": p.fp8_maxval,
            "fp8_mantissa_bits": p.fp8_mantissa_bits,
            "fp8_set_maxval": p.fp8_set_maxval,
            "fp8_mse_include_mantissa_bits": p.fp8_mse_include_mantissa_bits,
            "fp8_allow_unsigned": p.fp8_allow_unsigned,
            "reestimate_bn_stats": self.reestimate_bn,
            "bn_reestimation_batches": self.bn_reestimation_batches,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "num_workers": self.num_workers,
            "interpolation": format!("{:?}", self.interpolation).to_lowercase(),
            "calib_transform": self.calib_transform.name(),
            "max_val_images": self.max_val_images,
            "shard": self.shard.map(|s| s.to_string()),
            "skip_bad_images": self.skip_bad_images,
            "save_quant_params": self.save_quant_params,
            "load_quant_params": self.load_quant_params,
        })
    }

    /// Loader options of the validation set.
    pub fn val_options(&self) -> LoaderOptions {
        let mut o = LoaderOptions::new(
            self.batch_size,
            Transform::Val {
                size: 224,
                filter: self.interpolation,
            },
        );
        o.skip_bad_images = self.skip_bad_images;
        o
    }

    /// Loader options of calibration (`epoch` 0) and BN re-estimation (`epoch` 1) batches. With
    /// the training transform each pass is a fresh epoch, a new shuffle and new random crops from
    /// the seed and the epoch, as the reference's DataLoader reshuffles on every iteration.
    pub fn calib_options(&self, epoch: u64) -> LoaderOptions {
        match self.calib_transform {
            CalibTransform::Val => LoaderOptions::new(
                self.batch_size,
                Transform::Val {
                    size: 224,
                    filter: self.interpolation,
                },
            ),
            CalibTransform::Train => {
                let mut o = LoaderOptions::new(
                    self.batch_size,
                    Transform::Train {
                        size: 224,
                        filter: self.interpolation,
                        seed: self.seed.wrapping_add(epoch),
                    },
                );
                o.shuffle_seed = Some(self.seed.wrapping_add(epoch));
                o
            }
        }
    }
}

/// `path` must be a folder holding `what`.
fn check_folder(path: &Path, what: &str) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let problem = if path.exists() {
        "not a folder"
    } else {
        "no such folder"
    };
    Err(PtqError::BadDataset {
        path: path.to_path_buf(),
        why: format!("{problem} ({what})"),
    })
}

/// An f32 as the shortest decimal that reads back to it (0.9, not 0.8999999761581543).
fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_list() {
        for len in [0usize, 1, 2, 7, 10, 50, 101] {
            for n in 1..=9 {
                let mut next = 0;
                for i in 0..n {
                    let b = Shard::new(i, n).unwrap().bounds(len);
                    assert_eq!(b.start, next, "len {len} shard {i}/{n}");
                    assert!(b.len() == len / n || b.len() == len / n + 1);
                    next = b.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn shard_parsing() {
        assert_eq!("2/7".parse::<Shard>().unwrap(), Shard { index: 2, count: 7 });
        for bad in ["7/7", "1/0", "x/2", "3", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
