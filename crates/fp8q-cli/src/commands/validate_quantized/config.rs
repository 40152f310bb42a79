//! The options of a `validate-quantized` run, resolved and checked once: the quantization
//! configuration of the PTQ engine, the data options and the outputs, plus the notes on
//! options that change nothing here.

use std::path::PathBuf;

use anyhow::bail;
use fp8q_core::format::Format;
use fp8q_nn::data::{Filter, LoaderOptions, Transform};
use fp8q_nn::models::Architecture;
use fp8q_nn::ptq::{LayerFormats, PtqConfig, QMethodKind};

use super::args::{name_of, CalibTransform, LoadType, QMethodArg, RangeMethodArg, ValidateQuantizedArgs};

/// Everything a run needs, decided from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// The network.
    pub arch: Architecture,
    /// `--model-dir` (`None`: torchvision's weights, see `resolve_model_path`).
    pub model_dir: Option<PathBuf>,
    /// The ImageNet-layout root.
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
    /// Evaluate only this many validation images.
    pub max_val_images: Option<usize>,
    /// Skip undecodable images.
    pub skip_bad_images: bool,
    /// Show progress bars.
    pub progress_bar: bool,
    /// `--json` report.
    pub json: Option<PathBuf>,
    /// `--save-logits`.
    pub save_logits: Option<PathBuf>,
    /// `--save-quant-params`.
    pub save_quant_params: Option<PathBuf>,
    /// `--load-quant-params`.
    pub load_quant_params: Option<PathBuf>,
    /// One line per given option that has no effect here.
    pub notes: Vec<String>,
}

impl RunConfig {
    /// Resolve and check the parsed options. Errors name the offending option.
    pub fn from_args(args: &ValidateQuantizedArgs) -> anyhow::Result<Self> {
        let sw = &args.switches;
        if args.load_type == LoadType::Quantized {
            bail!(
                "--load-type quantized (the reference's default) reads a state dict of the reference's quantized \
                 model, which fp8q does not support: pass --load-type fp32 with an FP32 checkpoint, and \
                 --load-quant-params FILE to reuse saved quantizer ranges instead of calibrating"
            );
        }
        if !sw.pretrained.on {
            bail!(
                "--no-pretrained (a randomly initialised network) is not supported: fp8q evaluates pretrained weights"
            );
        }
        for (opt, method) in [
            ("weight-opt-method", args.weight_quant_method),
            ("act-opt-method", args.act_quant_method),
        ] {
            if args.no_effect.value(opt) == Some("golden_section") && method == RangeMethodArg::Mse {
                bail!("--{opt} golden_section is not supported by the MSE range estimator (only grid), as in the reference");
            }
        }
        if args.batch_size == 0 {
            bail!("invalid --batch-size 0: must be at least 1");
        }
        if args.num_workers == Some(0) {
            bail!("invalid --num-workers 0: must be at least 1");
        }
        if args.max_val_images == Some(0) {
            bail!("invalid --max-val-images 0: must be at least 1");
        }
        if !(0.0..=1.0).contains(&args.act_momentum) {
            bail!("invalid --act-momentum {}: must lie in [0, 1]", args.act_momentum);
        }
        for (name, bits) in [("--n-bits", Some(args.n_bits)), ("--n-bits-act", args.n_bits_act)] {
            if let Some(b) = bits {
                if !(2..=16).contains(&b) {
                    bail!("invalid {name} {b}: must lie in 2..=16");
                }
            }
        }
        // the mantissa bits must fit the widths that use the FP quantizer
        let act = args.qmethod_act.unwrap_or(args.qmethod);
        for (fp, name, bits) in [
            (args.qmethod == QMethodArg::FpQuantizer, "--n-bits", args.n_bits),
            (
                act == QMethodArg::FpQuantizer,
                "--n-bits-act",
                args.n_bits_act.unwrap_or(args.n_bits),
            ),
        ] {
            if fp && (args.fp8_mantissa_bits == 0 || args.fp8_mantissa_bits + 2 > bits) {
                bail!(
                    "invalid --fp8-mantissa-bits {}: needs 1 ≤ m ≤ {} with {name} {bits} (a sign and an exponent bit)",
                    args.fp8_mantissa_bits,
                    bits.saturating_sub(2)
                );
            }
        }
        if let Some(m) = args.fp8_maxval {
            if !(m.is_finite() && m > 0.0) {
                bail!("invalid --fp8-maxval {m}: must be positive and finite");
            }
        }
        let quantized = sw.weight_quant.on || sw.act_quant.on;
        if args.num_est_batches == 0 && quantized && args.load_quant_params.is_none() {
            bail!("invalid --num-est-batches 0: calibration needs at least one batch");
        }
        if !quantized && (args.load_quant_params.is_some() || args.save_quant_params.is_some()) {
            bail!("--load-quant-params / --save-quant-params need quantization (weights or activations)");
        }
        if !quantized && args.layer_formats.is_some() {
            bail!("--layer-formats needs quantization (weights or activations): the FP32 baseline has no quantizers");
        }

        let kind = |m: QMethodArg| -> anyhow::Result<QMethodKind> { Ok(name_of(&m).parse()?) };
        let range = |m: RangeMethodArg| -> anyhow::Result<_> { Ok(PtqConfig::range_method(&name_of(&m))?) };
        let ptq = PtqConfig {
            qmethod: kind(args.qmethod)?,
            qmethod_act: args.qmethod_act.map(kind).transpose()?,
            n_bits: args.n_bits,
            n_bits_act: args.n_bits_act,
            fp8_mantissa_bits: args.fp8_mantissa_bits,
            fp8_maxval: args.fp8_maxval,
            fp8_set_maxval: sw.fp8_set_maxval.on,
            fp8_mse_include_mantissa_bits: sw.fp8_mse_include_mantissa_bits.on,
            fp8_allow_unsigned: sw.fp8_allow_unsigned.on,
            weight_quant_method: range(args.weight_quant_method)?,
            act_quant_method: range(args.act_quant_method)?,
            act_momentum: args.act_momentum as f32,
            per_channel: sw.per_channel.on,
            weight_quant: sw.weight_quant.on,
            act_quant: sw.act_quant.on,
            quant_setup: name_of(&args.quant_setup).parse()?,
            layer_formats: args.layer_formats.as_deref().map(LayerFormats::read).transpose()?,
        };
        let mut notes = sw.notes();
        notes.extend(args.no_effect.notes());
        if let Some(formats) = &ptq.layer_formats {
            if !ptq.fp8_set_maxval && formats.slots().any(|(_, _, f)| matches!(f, Format::Fp(_))) {
                notes.push(format!(
                    "--layer-formats {} lists FP formats but --fp8-set-maxval is off: their maximum is the \
                     format's default-bias one{}, not the estimated range (pass --fp8-set-maxval for flexible bias)",
                    formats.source.as_deref().unwrap_or(std::path::Path::new("")).display(),
                    if ptq.fp8_maxval.is_some() {
                        " or --fp8-maxval"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(RunConfig {
            arch: args.architecture,
            model_dir: args.model_dir.clone(),
            images_dir: args.images_dir.clone(),
            ptq,
            num_est_batches: args.num_est_batches,
            reestimate_bn: sw.reestimate_bn_stats.on,
            bn_reestimation_batches: args.bn_reestimation_batches,
            batch_size: args.batch_size,
            seed: args.seed,
            num_workers: args.num_workers,
            interpolation: args.interpolation,
            calib_transform: args.calib_transform,
            max_val_images: args.max_val_images,
            skip_bad_images: args.skip_bad_images,
            progress_bar: sw.progress_bar.on,
            json: args.json.clone(),
            save_logits: args.save_logits.clone(),
            save_quant_params: args.save_quant_params.clone(),
            load_quant_params: args.load_quant_params.clone(),
            notes,
        })
    }

    /// Whether any quantizer is installed.
    pub fn quantized(&self) -> bool {
        self.ptq.weight_quant || self.ptq.act_quant
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

    /// The configuration as JSON, in the reference's option names (`--print-config`, and the
    /// `config` member of the `--json` report).
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.ptq;
        serde_json::json!({
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
            "layer_formats": p.layer_formats.as_ref().map(|l| serde_json::json!({
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
            "calib_transform": name_of(&self.calib_transform),
            "max_val_images": self.max_val_images,
            "skip_bad_images": self.skip_bad_images,
            "progress_bar": self.progress_bar,
            "json": self.json,
            "save_logits": self.save_logits,
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
    /// `--seed` and the epoch, as the reference's DataLoader reshuffles on every iteration.
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

/// An f32 as the shortest decimal that reads back to it (0.9, not 0.8999999761581543).
fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}
