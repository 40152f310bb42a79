//! The command line of `fp8q validate-quantized`: every option of the reference's
//! `image_net.py validate-quantized` with its spelling, type and choices, plus our own.
//!
//! Like click, an option given twice keeps its last value, and `--opt=value` works everywhere.
//! The `--x/--no-x` pairs are in [`super::switches`], the options without effect here in
//! [`super::reference_options`]. Where our default differs from the reference's, the help says
//! so. [`super::config::Invocation::from_args`] turns the parsed options into one configuration.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use fp8q_core::format::{Format, ScaleRule};
use fp8q_images::Filter;
use fp8q_nn::models::Architecture;

use super::reference_options::NoEffectOptions;
use super::switches::Switches;

/// Options of `fp8q validate-quantized` (the reference's names): the run's, then the outputs.
/// Like click, a value may be a negative number after a space (`--fp8-maxval -1`).
#[derive(clap::Args, Debug)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct ValidateQuantizedArgs {
    /// Network, data, quantization, calibration.
    #[command(flatten)]
    pub run: RunArgs,
    /// Write a JSON report (config, top-1, top-5, loss, labels, logits, quantizer states).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the logits as an `[images, classes]` float32 .npy file.
    #[arg(long = "save-logits", value_name = "FILE")]
    pub save_logits: Option<PathBuf>,
    /// Print the resolved configuration as JSON and exit (nothing is read but --layer-formats).
    #[arg(long = "print-config")]
    pub print_config: bool,
}

/// The options that define a run — network, data, quantization, calibration — shared by
/// `validate-quantized` and `analyze` (network mode). `--images-dir` and `--architecture` are
/// required by the commands that run a network (clap cannot mark them required here, as
/// `analyze CHECKPOINT` runs without them).
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// ImageNet-layout root with `train/` and `val/` class folders (required).
    #[arg(long = "images-dir", value_name = "DIR")]
    pub images_dir: Option<PathBuf>,
    /// Network (required). The reference's names and the plain ones are the same networks.
    #[arg(long, value_parser = architecture_parser())]
    pub architecture: Option<Architecture>,
    /// The FP32 checkpoint file: torch.save's zip format or its legacy (pre-1.6) stream, such as
    /// the paper's mobilenet_v2.pth.tar, or .safetensors; a bare state dict or a training
    /// checkpoint that wraps one (`state_dict`, `model`, …; `module.` and `_orig_mod.` prefixes dropped). Without it: torchvision's IMAGENET1K_V1 weights from the torch hub cache, as the
    /// reference's ResNets use (the reference ignores --model-dir for ResNets; fp8q loads the
    /// file given). The reference requires it for mobilenet_v2_quantized (its own checkpoint);
    /// without it fp8q falls back to torchvision's mobilenet_v2 weights.
    #[arg(long = "model-dir", value_name = "FILE")]
    pub model_dir: Option<PathBuf>,
    /// What --model-dir holds: fp32 (an FP32 checkpoint; the default here — the reference's
    /// default is `quantized`) or quantized (a state dict of the reference's quantized model;
    /// not supported: use fp32 with --load-quant-params).
    #[arg(long = "load-type", value_enum, default_value_t = LoadType::Fp32)]
    pub load_type: LoadType,
    /// Images per batch.
    #[arg(long = "batch-size", default_value_t = 128)]
    pub batch_size: usize,
    /// Seed of shuffling and the training transform (the reference's default: unseeded).
    #[arg(long, default_value_t = 10)]
    pub seed: u64,
    /// Threads decoding and transforming images and running kernels [default: all cores]
    /// (the reference's default: 16 data-loading processes).
    #[arg(long = "num-workers")]
    pub num_workers: Option<usize>,
    /// Resampling filter of the resize.
    #[arg(long, default_value = "bilinear", value_parser = interpolation_parser())]
    pub interpolation: Filter,

    /// Weight quantization method (the reference's default: symmetric_uniform).
    #[arg(long, value_enum, default_value_t = QMethodArg::FpQuantizer)]
    pub qmethod: QMethodArg,
    /// Activation quantization method [default: --qmethod].
    #[arg(long = "qmethod-act", value_enum)]
    pub qmethod_act: Option<QMethodArg>,
    /// Weight bits.
    #[arg(long = "n-bits", default_value_t = 8)]
    pub n_bits: u32,
    /// Activation bits [default: --n-bits].
    #[arg(long = "n-bits-act")]
    pub n_bits_act: Option<u32>,
    /// Every weight quantizer's format: any fp8q format (`e4m3`, `int8`, `float8_e4m3fn`,
    /// `mxfp4`, `nvfp4`, `e3m4@32`, ...; see `fp8q formats --help`). Overrides --qmethod,
    /// --n-bits and --fp8-mantissa-bits for weights. Block formats form blocks along the input
    /// channels.
    #[arg(long = "weight-format", value_name = "FORMAT")]
    pub weight_format: Option<Format>,
    /// Every activation quantizer's format, as --weight-format (blocks along the channels).
    #[arg(long = "act-format", value_name = "FORMAT")]
    pub act_format: Option<Format>,
    /// Block size of every block format (--weight-format, --act-format, --layer-formats).
    #[arg(long = "block-size", value_name = "K")]
    pub block_size: Option<usize>,
    /// E8M0 scale rule of every block format: floor (OCP v1.0), ceil, even or rceil.
    #[arg(long = "scale-rule", value_name = "RULE")]
    pub scale_rule: Option<ScaleRule>,
    /// Mantissa bits of the FP quantizer.
    #[arg(long = "fp8-mantissa-bits", default_value_t = 4)]
    pub fp8_mantissa_bits: u32,
    /// Fixed maximum value of the FP quantizer [default: the format's].
    #[arg(long = "fp8-maxval")]
    pub fp8_maxval: Option<f64>,
    /// Weight range estimator.
    #[arg(long = "weight-quant-method", value_enum, default_value_t = RangeMethodArg::CurrentMinmax)]
    pub weight_quant_method: RangeMethodArg,
    /// Activation range estimator.
    #[arg(long = "act-quant-method", value_enum, default_value_t = RangeMethodArg::RunningMinmax)]
    pub act_quant_method: RangeMethodArg,
    /// Momentum of the running_minmax activation estimator (the reference accepts it but always
    /// uses 0.9).
    #[arg(long = "act-momentum", default_value_t = 0.9)]
    pub act_momentum: f64,
    /// Training batches for range estimation.
    #[arg(long = "num-est-batches", default_value_t = 1)]
    pub num_est_batches: usize,
    /// Where quantizers sit.
    #[arg(long = "quant-setup", value_enum, default_value_t = QuantSetupArg::All)]
    pub quant_setup: QuantSetupArg,
    /// Mixed-format PTQ (fp8q's addition): a JSON file of unit → {"weight": FORMAT, "act":
    /// FORMAT} (either key optional; any format `fp8q formats` names: eXmY, ueXmY, intN,
    /// intN-asym, float8_*). Listed slots use their own format (and width); range estimators,
    /// per-channel and --fp8-set-maxval / --fp8-maxval still apply; the MSE estimator keeps their
    /// mantissa bits. Unlisted slots follow the options above. Each listed slot must be one the
    /// quant setup quantizes.
    #[arg(long = "layer-formats", value_name = "FILE")]
    pub layer_formats: Option<PathBuf>,

    /// Batches for BN re-estimation [default: ⌊0.02 · training batches⌋, as the reference].
    #[arg(long = "bn-reestimation-batches")]
    pub bn_reestimation_batches: Option<usize>,
    /// Transform of calibration / BN re-estimation batches: `train` (random, shuffled, as the
    /// reference) or `val` (deterministic, sorted).
    #[arg(long = "calib-transform", value_enum, default_value_t = CalibTransform::Train)]
    pub calib_transform: CalibTransform,
    /// Evaluate only N validation images, spread evenly over the sorted list.
    #[arg(long = "max-val-images", value_name = "N")]
    pub max_val_images: Option<usize>,
    /// Evaluate only the I-th of N disjoint, contiguous parts of the sorted validation list (I
    /// counts from 0; after --max-val-images). Calibration and BN re-estimation are those of the
    /// unsharded run; `fp8q merge` combines the shards' --json reports.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<fp8q_ptq::run::Shard>,
    /// Skip images that cannot be decoded (listed in the report) instead of failing.
    #[arg(long = "skip-bad-images")]
    pub skip_bad_images: bool,
    /// Write the calibrated quantizer states (JSON: unit → {weight, act}).
    #[arg(long = "save-quant-params", value_name = "FILE")]
    pub save_quant_params: Option<PathBuf>,
    /// Load quantizer states instead of calibrating: a file written by --save-quant-params, or a
    /// run report whose "quantizers" member holds them.
    #[arg(long = "load-quant-params", value_name = "FILE")]
    pub load_quant_params: Option<PathBuf>,

    /// The `--x/--no-x` pairs.
    #[command(flatten)]
    pub switches: Switches,
    /// The reference's valued options that change nothing here.
    #[command(flatten)]
    pub no_effect: NoEffectOptions,
}

/// `--load-type`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadType {
    /// An FP32 checkpoint.
    Fp32,
    /// A state dict of the reference's quantized model (refused).
    Quantized,
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

/// `--weight-quant-method`, `--act-quant-method` (the reference's four estimators).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum RangeMethodArg {
    /// Min-max of the current tensor.
    CurrentMinmax,
    /// Min-max over all batches.
    Allminmax,
    /// Exponential moving average of min-max.
    RunningMinmax,
    /// MSE-optimal range (grid of 111 candidates).
    #[value(name = "MSE")]
    Mse,
}

/// `--quant-setup`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantSetupArg {
    /// Every quantizer.
    #[value(name = "all")]
    All,
    /// LSQ's setup.
    #[value(name = "LSQ")]
    Lsq,
    /// No quantizer on the logits.
    #[value(name = "FP_logits")]
    FpLogits,
    /// FC weight 4 bits.
    #[value(name = "fc4")]
    Fc4,
    /// fc4 plus depthwise weights 8 bits.
    #[value(name = "fc4_dw8")]
    Fc4Dw8,
    /// LSQ as in its paper.
    #[value(name = "LSQ_paper")]
    LsqPaper,
}

/// The name clap shows for a value.
pub fn name_of<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// `--architecture`: the reference's names first, then ours.
fn architecture_parser() -> impl TypedValueParser<Value = Architecture> {
    const NAMES: [&str; 6] = [
        "mobilenet_v2_quantized",
        "resnet18_quantized",
        "resnet50_quantized",
        "mobilenet_v2",
        "resnet18",
        "resnet50",
    ];
    PossibleValuesParser::new(NAMES).try_map(|s| s.parse::<Architecture>().map_err(|e| e.to_string()))
}

/// `--interpolation`: the reference's `ImageInterpolation` names.
fn interpolation_parser() -> impl TypedValueParser<Value = Filter> {
    PossibleValuesParser::new(["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"])
        .try_map(|s| s.parse::<Filter>())
}
