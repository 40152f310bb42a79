//! `fp8q validate-quantized`: load an FP32 checkpoint, (re-estimate batch norm,) evaluate on an
//! ImageNet-layout folder, report top-1, top-5 and loss (SPEC §5).
//!
//! The pipeline (SPEC §5.4): install the quantizers of `--quant-setup`, calibrate them
//! sequentially on `--num-est-batches` training batches (or load them with
//! `--load-quant-params`), fix the ranges, re-estimate BN statistics with the quantizers fixed,
//! evaluate. `--no-weight-quant --no-act-quant` is the FP32 baseline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::ArgAction;
use fp8q_nn::data::{BatchLoader, Filter, ImageFolder, LoaderOptions, Transform};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::{Architecture, Model};
use fp8q_nn::ptq::{self, PtqConfig, QMethodKind, QuantSetup};

/// Options of `fp8q validate-quantized` (the reference's names).
#[derive(clap::Args, Debug)]
pub struct ValidateQuantizedArgs {
    /// Network: resnet18, resnet50, mobilenet_v2 (also resnet18_quantized, mobilenet_v2_quantized).
    #[arg(long)]
    pub architecture: String,
    /// The FP32 checkpoint (.pth zip format or .safetensors).
    #[arg(long = "model-dir")]
    pub model_dir: PathBuf,
    /// ImageNet-layout root with `train/` and `val/` class folders.
    #[arg(long = "images-dir")]
    pub images_dir: PathBuf,
    /// Images per batch.
    #[arg(long = "batch-size", default_value_t = 128)]
    pub batch_size: usize,
    /// Seed of shuffling and the training transform.
    #[arg(long, default_value_t = 10)]
    pub seed: u64,
    /// Threads decoding and transforming images (and running kernels); default: all cores.
    #[arg(long = "num-workers")]
    pub num_workers: Option<usize>,
    /// Resampling filter: nearest, box, bilinear, hamming, bicubic, lanczos.
    #[arg(long, default_value = "bilinear", value_parser = parse_filter)]
    pub interpolation: Filter,
    /// Evaluate only N validation images, spread evenly over the sorted list.
    #[arg(long = "max-val-images")]
    pub max_val_images: Option<usize>,
    /// Transform of calibration / BN re-estimation batches: `train` (random, shuffled) or `val`
    /// (deterministic, sorted).
    #[arg(long = "calib-transform", value_enum, default_value_t = CalibTransform::Train)]
    pub calib_transform: CalibTransform,
    /// Skip images that cannot be decoded (listed in the report) instead of failing.
    #[arg(long = "skip-bad-images")]
    pub skip_bad_images: bool,
    /// Write a JSON report (config, top-1, top-5, loss, labels, logits).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the logits as an `[images, classes]` float32 .npy file.
    #[arg(long = "save-logits")]
    pub save_logits: Option<PathBuf>,
    /// Write the calibrated quantizer states (JSON: unit → {weight, act}).
    #[arg(long = "save-quant-params")]
    pub save_quant_params: Option<PathBuf>,
    /// Load quantizer states instead of calibrating: a file written by --save-quant-params, or a
    /// run report whose "quantizers" member holds them (our --json output, or a reference run in
    /// the golden layout; symmetric INT states there need int_min/int_max).
    #[arg(long = "load-quant-params")]
    pub load_quant_params: Option<PathBuf>,

    /// Weight quantization method.
    #[arg(long, value_enum, default_value_t = QMethodArg::FpQuantizer)]
    pub qmethod: QMethodArg,
    /// Activation quantization method (default: same as --qmethod).
    #[arg(long = "qmethod-act", value_enum)]
    pub qmethod_act: Option<QMethodArg>,
    /// Weight bits.
    #[arg(long = "n-bits", default_value_t = 8)]
    pub n_bits: u32,
    /// Activation bits (default: --n-bits).
    #[arg(long = "n-bits-act")]
    pub n_bits_act: Option<u32>,
    /// Mantissa bits of the FP quantizer.
    #[arg(long = "fp8-mantissa-bits", default_value_t = 4)]
    pub fp8_mantissa_bits: u32,
    /// Fixed maximum value of the FP quantizer.
    #[arg(long = "fp8-maxval")]
    pub fp8_maxval: Option<f64>,
    /// The estimated range sets the FP maximum value (off: --fp8-maxval or the format's default).
    #[arg(long = "fp8-set-maxval", action = ArgAction::SetTrue, overrides_with = "no_fp8_set_maxval")]
    pub fp8_set_maxval: bool,
    #[arg(long = "no-fp8-set-maxval", action = ArgAction::SetTrue, hide = true)]
    no_fp8_set_maxval: bool,
    /// The MSE estimator also searches the mantissa bits (default on).
    #[arg(long = "fp8-mse-include-mantissa-bits", action = ArgAction::SetTrue, overrides_with = "no_fp8_mse_include_mantissa_bits")]
    fp8_mse_include_mantissa_bits: bool,
    #[arg(long = "no-fp8-mse-include-mantissa-bits", action = ArgAction::SetTrue, hide = true)]
    no_fp8_mse_include_mantissa_bits: bool,
    /// Drop the sign bit of quantizers whose range is non-negative.
    #[arg(long = "fp8-allow-unsigned")]
    pub fp8_allow_unsigned: bool,
    /// Weight range estimator.
    #[arg(long = "weight-quant-method", value_enum, default_value_t = RangeMethodArg::CurrentMinmax)]
    pub weight_quant_method: RangeMethodArg,
    /// Activation range estimator.
    #[arg(long = "act-quant-method", value_enum, default_value_t = RangeMethodArg::RunningMinmax)]
    pub act_quant_method: RangeMethodArg,
    /// Momentum of the running min-max activation estimator.
    #[arg(long = "act-momentum", default_value_t = 0.9)]
    pub act_momentum: f64,
    /// Per-channel weight quantization.
    #[arg(long = "per-channel")]
    pub per_channel: bool,
    /// Calibration batches.
    #[arg(long = "num-est-batches", default_value_t = 1)]
    pub num_est_batches: usize,
    /// Quantize weights (default on).
    #[arg(long = "weight-quant", action = ArgAction::SetTrue, overrides_with = "no_weight_quant")]
    weight_quant: bool,
    /// Do not quantize weights.
    #[arg(long = "no-weight-quant", action = ArgAction::SetTrue)]
    no_weight_quant: bool,
    /// Quantize activations (default on).
    #[arg(long = "act-quant", action = ArgAction::SetTrue, overrides_with = "no_act_quant")]
    act_quant: bool,
    /// Do not quantize activations.
    #[arg(long = "no-act-quant", action = ArgAction::SetTrue)]
    no_act_quant: bool,
    /// Where quantizers sit: all, FP_logits, LSQ, LSQ_paper, fc4, fc4_dw8.
    #[arg(long = "quant-setup", value_enum, default_value_t = QuantSetupArg::All)]
    pub quant_setup: QuantSetupArg,
    /// Re-estimate BN statistics on training batches (default on).
    #[arg(long = "reestimate-bn-stats", action = ArgAction::SetTrue, overrides_with = "no_reestimate_bn_stats")]
    reestimate_bn_stats: bool,
    /// Keep the checkpoint's BN statistics.
    #[arg(long = "no-reestimate-bn-stats", action = ArgAction::SetTrue)]
    no_reestimate_bn_stats: bool,
    /// Batches for BN re-estimation (default: ⌊0.02 · training batches⌋).
    #[arg(long = "bn-reestimation-batches")]
    pub bn_reestimation_batches: Option<usize>,
}

/// `--calib-transform`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibTransform {
    /// RandomResizedCrop + flip, shuffled.
    Train,
    /// The validation transform, sorted.
    Val,
}

/// `--qmethod`, `--qmethod-act`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum QMethodArg {
    /// Symmetric uniform (INT).
    SymmetricUniform,
    /// Asymmetric uniform (INT).
    AsymmetricUniform,
    /// The paper's flexible-bias FP.
    FpQuantizer,
}

/// `--weight-quant-method`, `--act-quant-method`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum RangeMethodArg {
    /// Min-max of the current tensor.
    CurrentMinmax,
    /// Exponential moving average of min-max.
    RunningMinmax,
    /// Min-max over all batches.
    Allminmax,
    /// MSE-optimal range.
    #[value(name = "MSE")]
    Mse,
    /// Accepted for compatibility with the reference's option values; not implemented (exits
    /// with an error).
    CrossEntropy,
}

/// `--quant-setup`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantSetupArg {
    /// Every quantizer of SPEC §5.2.
    #[value(name = "all")]
    All,
    /// No quantizer on the logits.
    #[value(name = "FP_logits")]
    FpLogits,
    /// LSQ's setup.
    #[value(name = "LSQ")]
    Lsq,
    /// LSQ as in its paper.
    #[value(name = "LSQ_paper")]
    LsqPaper,
    /// FC weight 4 bits.
    #[value(name = "fc4")]
    Fc4,
    /// fc4 plus depthwise weights 8 bits.
    #[value(name = "fc4_dw8")]
    Fc4Dw8,
}

/// The name clap shows for a value.
fn name_of<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    s.parse()
}

impl ValidateQuantizedArgs {
    fn weight_quant(&self) -> bool {
        !self.no_weight_quant || self.weight_quant
    }
    fn act_quant(&self) -> bool {
        !self.no_act_quant || self.act_quant
    }
    fn reestimate_bn(&self) -> bool {
        !self.no_reestimate_bn_stats || self.reestimate_bn_stats
    }
    fn fp8_mse_include_mantissa_bits(&self) -> bool {
        !self.no_fp8_mse_include_mantissa_bits || self.fp8_mse_include_mantissa_bits
    }
    fn fp8_set_maxval(&self) -> bool {
        self.fp8_set_maxval && !self.no_fp8_set_maxval
    }

    /// The options as the JSON `config` object (the golden runs' field names).
    fn config_json(&self, bn_batches: usize) -> serde_json::Value {
        serde_json::json!({
            "architecture": self.architecture,
            "weight_quant": self.weight_quant(),
            "act_quant": self.act_quant(),
            "qmethod": name_of(&self.qmethod),
            "qmethod_act": self.qmethod_act.as_ref().map(name_of),
            "n_bits": self.n_bits,
            "n_bits_act": self.n_bits_act,
            "per_channel": self.per_channel,
            "weight_quant_method": name_of(&self.weight_quant_method),
            "act_quant_method": name_of(&self.act_quant_method),
            "act_momentum": self.act_momentum,
            "num_est_batches": self.num_est_batches,
            "quant_setup": name_of(&self.quant_setup),
            "fp8_maxval": self.fp8_maxval,
            "fp8_mantissa_bits": self.fp8_mantissa_bits,
            "fp8_set_maxval": self.fp8_set_maxval(),
            "fp8_mse_include_mantissa_bits": self.fp8_mse_include_mantissa_bits(),
            "fp8_allow_unsigned": self.fp8_allow_unsigned,
            "bn_reestimation_batches": bn_batches,
            "calib_transform": name_of(&self.calib_transform),
            "interpolation": format!("{:?}", self.interpolation).to_lowercase(),
            "seed": self.seed,
            "max_val_images": self.max_val_images,
        })
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.batch_size == 0 {
            bail!("invalid --batch-size 0: must be at least 1");
        }
        if self.num_workers == Some(0) {
            bail!("invalid --num-workers 0: must be at least 1");
        }
        if self.max_val_images == Some(0) {
            bail!("invalid --max-val-images 0: must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.act_momentum) {
            bail!("invalid --act-momentum {}: must lie in [0, 1]", self.act_momentum);
        }
        for (name, bits) in [("--n-bits", Some(self.n_bits)), ("--n-bits-act", self.n_bits_act)] {
            if let Some(b) = bits {
                if !(2..=16).contains(&b) {
                    bail!("invalid {name} {b}: must lie in 2..=16");
                }
            }
        }
        // the mantissa bits must fit the widths that use the FP quantizer
        let act = self.qmethod_act.unwrap_or(self.qmethod);
        for (fp, name, bits) in [
            (self.qmethod == QMethodArg::FpQuantizer, "--n-bits", self.n_bits),
            (
                act == QMethodArg::FpQuantizer,
                "--n-bits-act",
                self.n_bits_act.unwrap_or(self.n_bits),
            ),
        ] {
            if fp && (self.fp8_mantissa_bits == 0 || self.fp8_mantissa_bits + 2 > bits) {
                bail!(
                    "invalid --fp8-mantissa-bits {}: needs 1 ≤ m ≤ {} with {name} {bits} (a sign and an exponent bit)",
                    self.fp8_mantissa_bits,
                    bits.saturating_sub(2)
                );
            }
        }
        if let Some(m) = self.fp8_maxval {
            if !(m.is_finite() && m > 0.0) {
                bail!("invalid --fp8-maxval {m}: must be positive and finite");
            }
        }
        if self.num_est_batches == 0 && self.quantized() && self.load_quant_params.is_none() {
            bail!("invalid --num-est-batches 0: calibration needs at least one batch");
        }
        if self.weight_quant_method == RangeMethodArg::CrossEntropy
            || self.act_quant_method == RangeMethodArg::CrossEntropy
        {
            bail!(
                "the cross_entropy range method is not supported; use current_minmax, allminmax, running_minmax or MSE"
            );
        }
        Ok(())
    }

    /// A short description of the quantization, e.g. `W8 fp_quantizer (m=4) / A8 fp_quantizer`.
    fn describe(&self) -> String {
        let w = if self.weight_quant() {
            format!("W{} {}", self.n_bits, name_of(&self.qmethod))
        } else {
            "W32".into()
        };
        let act = self.qmethod_act.unwrap_or(self.qmethod);
        let a = if self.act_quant() {
            format!("A{} {}", self.n_bits_act.unwrap_or(self.n_bits), name_of(&act))
        } else {
            "A32".into()
        };
        let fp = if self.qmethod == QMethodArg::FpQuantizer || act == QMethodArg::FpQuantizer {
            format!(" (fp8 mantissa bits {})", self.fp8_mantissa_bits)
        } else {
            String::new()
        };
        format!("{w} / {a}{fp}")
    }

    fn quantized(&self) -> bool {
        self.weight_quant() || self.act_quant()
    }

    /// The quantization options for the PTQ engine.
    fn ptq_config(&self) -> anyhow::Result<PtqConfig> {
        let kind = |m: QMethodArg| -> anyhow::Result<QMethodKind> { Ok(name_of(&m).parse()?) };
        let range = |m: RangeMethodArg| -> anyhow::Result<_> { Ok(PtqConfig::range_method(&name_of(&m))?) };
        let setup: QuantSetup = name_of(&self.quant_setup).parse()?;
        Ok(PtqConfig {
            qmethod: kind(self.qmethod)?,
            qmethod_act: self.qmethod_act.map(kind).transpose()?,
            n_bits: self.n_bits,
            n_bits_act: self.n_bits_act,
            fp8_mantissa_bits: self.fp8_mantissa_bits,
            fp8_maxval: self.fp8_maxval,
            fp8_set_maxval: self.fp8_set_maxval(),
            fp8_mse_include_mantissa_bits: self.fp8_mse_include_mantissa_bits(),
            fp8_allow_unsigned: self.fp8_allow_unsigned,
            weight_quant_method: range(self.weight_quant_method)?,
            act_quant_method: range(self.act_quant_method)?,
            act_momentum: self.act_momentum as f32,
            per_channel: self.per_channel,
            weight_quant: self.weight_quant(),
            act_quant: self.act_quant(),
            quant_setup: setup,
        })
    }
}

/// Run the command.
pub fn run(args: &ValidateQuantizedArgs) -> anyhow::Result<()> {
    args.check()?;
    if let Some(n) = args.num_workers {
        // Only the first call configures the global pool; later calls keep it.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let arch: Architecture = args.architecture.parse()?;
    let filter = args.interpolation;
    let mut model = Model::load(arch, &args.model_dir)?;
    eprintln!(
        "loaded {arch} from {} ({} classes)",
        args.model_dir.display(),
        model.num_classes()
    );

    let mut val = ImageFolder::open(args.images_dir.join("val"))?;
    if val.classes.len() != model.num_classes() {
        bail!(
            "{} has {} class folders but the checkpoint has {} classes",
            val.root.display(),
            val.classes.len(),
            model.num_classes()
        );
    }
    if let Some(n) = args.max_val_images {
        val.subsample(n);
    }

    // Quantizers (SPEC §5.2) and calibration or loaded ranges (SPEC §5.4 steps 1-3).
    let mut train: Option<ImageFolder> = None;
    let mut open_train = || -> anyhow::Result<ImageFolder> {
        if train.is_none() {
            train = Some(ImageFolder::open(args.images_dir.join("train"))?);
        }
        Ok(train.clone().expect("opened above"))
    };
    let installed = if args.quantized() {
        let cfg = args.ptq_config()?;
        let installed = ptq::install(&mut model, &cfg)?;
        eprintln!(
            "{} quantizers installed (quant setup {})",
            installed.slots.len(),
            cfg.quant_setup.name()
        );
        // narrow slots (fc4's 4-bit weights) get a narrower FP split: say so
        for p in &installed.plan {
            let kind = if p.kind == SlotKind::Weight {
                cfg.qmethod
            } else {
                cfg.qmethod_act.unwrap_or(cfg.qmethod)
            };
            let m = cfg.fp_mantissa_bits(p.bits);
            if kind == QMethodKind::FpQuantizer && m != cfg.fp8_mantissa_bits {
                eprintln!(
                    "note: {} ({}) is {}-bit: FP split E{}M{m} (one exponent bit at least)",
                    p.unit,
                    if p.kind == SlotKind::Weight { "weight" } else { "act" },
                    p.bits,
                    p.bits - 1 - m
                );
            }
        }
        if let Some(path) = &args.load_quant_params {
            installed.load_json(path)?;
            eprintln!("quantization parameters loaded from {}", path.display());
        } else {
            let train = open_train()?;
            let wanted = cfg.calibration_batches(args.num_est_batches);
            let bar = progress((wanted * args.batch_size).min(train.len()) as u64, "calibration");
            let loader = BatchLoader::new(&train, calib_options(args, filter));
            let done = ptq::calibrate(&mut model, &installed, loader, wanted, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!("ranges calibrated on {done} batch(es) of {} and fixed", args.batch_size);
        }
        if let Some(path) = &args.save_quant_params {
            installed.save_json(path)?;
        }
        Some(installed)
    } else {
        if args.load_quant_params.is_some() || args.save_quant_params.is_some() {
            bail!("--load-quant-params / --save-quant-params need quantization (weights or activations)");
        }
        None
    };

    // BN re-estimation on training batches with the quantizers fixed (SPEC §5.4 step 4).
    let mut bn_batches = 0;
    if args.reestimate_bn() {
        let train = open_train()?;
        let total = train.len().div_ceil(args.batch_size);
        let wanted = args
            .bn_reestimation_batches
            .unwrap_or_else(|| ptq::bn_reestimation_default(train.len(), args.batch_size));
        if wanted > 0 {
            let loader = BatchLoader::new(&train, calib_options(args, filter));
            let bar = progress((wanted * args.batch_size).min(train.len()) as u64, "BN re-estimation");
            bn_batches = ptq::reestimate_bn(&mut model, loader, wanted, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!(
                "BN re-estimated on {bn_batches} batch(es) of {} (tiny batches give noisy statistics)",
                args.batch_size
            );
        } else {
            eprintln!(
                "BN re-estimation skipped: ⌊0.02 · {total} training batches⌋ = 0 (set --bn-reestimation-batches)"
            );
        }
    }

    let mut opts = LoaderOptions::new(args.batch_size, Transform::Val { size: 224, filter });
    opts.skip_bad_images = args.skip_bad_images;
    let loader = BatchLoader::new(&val, opts);
    let bar = progress(val.len() as u64, "validation");
    let eval = fp8q_nn::evaluate::evaluate(&mut model, loader, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();

    for (path, why) in &eval.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    let label = if args.quantized() {
        args.describe()
    } else {
        "FP32".to_string()
    };
    let peak_mib = peak_memory_mib();
    println!(
        "{arch} {label}: top-1 {:.2}%  top-5 {:.2}%  loss {:.4}  ({} images, {:.1} img/s{})",
        100.0 * eval.metrics.top1(),
        100.0 * eval.metrics.top5(),
        eval.metrics.loss(),
        eval.labels.len(),
        eval.images_per_second(),
        peak_mib
            .map(|m| format!(", peak memory {m:.0} MiB"))
            .unwrap_or_default()
    );

    let classes = model.num_classes();
    if let Some(path) = &args.save_logits {
        write_npy(path, &eval.logits, eval.labels.len(), classes)?;
    }
    if let Some(path) = &args.json {
        let logits: Vec<&[f32]> = eval.logits.chunks(classes).collect();
        let report = serde_json::json!({
            "arch": arch.name(),
            "name": if args.quantized() { "quantized" } else { "fp32" },
            "config": args.config_json(bn_batches),
            "batch_size": args.batch_size,
            "top1": eval.metrics.top1(),
            "top5": eval.metrics.top5(),
            "loss": eval.metrics.loss(),
            "images": eval.labels.len(),
            "images_per_second": eval.images_per_second(),
            "peak_memory_mib": peak_mib,
            "labels": eval.labels,
            "logits": logits,
            "quantizers": installed.as_ref().map(|i| i.states()).unwrap_or_default(),
            "skipped": eval.skipped.iter().map(|(p, w)| serde_json::json!({"path": p, "error": w})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The process's peak resident memory (`VmHWM` of `/proc/self/status`), where the OS reports it.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn calib_options(args: &ValidateQuantizedArgs, filter: Filter) -> LoaderOptions {
    if args.calib_transform == CalibTransform::Val {
        LoaderOptions::new(args.batch_size, Transform::Val { size: 224, filter })
    } else {
        let mut o = LoaderOptions::new(
            args.batch_size,
            Transform::Train {
                size: 224,
                filter,
                seed: args.seed,
            },
        );
        o.shuffle_seed = Some(args.seed);
        o
    }
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images  {per_sec}  eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A float32 `[rows, cols]` array in NumPy's .npy format (version 1.0, little endian).
fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> anyhow::Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .with_context(|| format!("cannot write {}", path.display()))
}
