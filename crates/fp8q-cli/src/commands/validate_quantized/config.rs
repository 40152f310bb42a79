//! The options of a `validate-quantized` run, resolved and checked once into the library's
//! [`RunConfig`], plus the outputs and the notes on options that change nothing here.

use std::path::PathBuf;

use anyhow::bail;
use fp8q_core::format::Format;
use fp8q_ptq::run::{CalibTransform, RunConfig};
use fp8q_ptq::{LayerFormats, PtqConfig, QMethodKind};

use super::args::{
    name_of, CalibTransform as CalibTransformArg, LoadType, QMethodArg, RangeMethodArg, RunArgs, ValidateQuantizedArgs,
};

/// A command line, resolved: the library's run configuration plus what the CLI does with the
/// report (files, progress bars) and the notes on options without effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The run.
    pub run: RunConfig,
    /// Show progress bars.
    pub progress_bar: bool,
    /// `--json` report.
    pub json: Option<PathBuf>,
    /// `--save-logits`.
    pub save_logits: Option<PathBuf>,
    /// One line per given option that has no effect here.
    pub notes: Vec<String>,
}

impl Invocation {
    /// Resolve and check the parsed options. Errors name the offending option.
    pub fn from_args(args: &ValidateQuantizedArgs) -> anyhow::Result<Self> {
        let (run, notes) = run_config(&args.run)?;
        Ok(Invocation {
            run,
            progress_bar: args.run.switches.progress_bar.on,
            json: args.json.clone(),
            save_logits: args.save_logits.clone(),
            notes,
        })
    }

    /// The configuration as JSON, in the reference's option names (`--print-config`): the run's
    /// plus the CLI's outputs.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.run.to_json();
        v["progress_bar"] = self.progress_bar.into();
        v["json"] = serde_json::json!(self.json);
        v["save_logits"] = serde_json::json!(self.save_logits);
        v
    }
}

/// Resolve and check the run options into the library's [`RunConfig`], with one note per given
/// option that has no effect here. Errors name the offending option.
pub fn run_config(args: &RunArgs) -> anyhow::Result<(RunConfig, Vec<String>)> {
    let sw = &args.switches;
    let Some(architecture) = args.architecture else {
        bail!("the following required argument was not provided: --architecture <ARCHITECTURE>");
    };
    let Some(images_dir) = args.images_dir.clone() else {
        bail!("the following required argument was not provided: --images-dir <DIR>");
    };
    if args.load_type == LoadType::Quantized {
        bail!(
            "--load-type quantized (the reference's default) reads a state dict of the reference's quantized \
             model, which fp8q does not support: pass --load-type fp32 with an FP32 checkpoint, and \
             --load-quant-params FILE to reuse saved quantizer ranges instead of calibrating"
        );
    }
    if !sw.pretrained.on {
        bail!("--no-pretrained (a randomly initialised network) is not supported: fp8q evaluates pretrained weights");
    }
    for (opt, method) in [
        ("weight-opt-method", args.weight_quant_method),
        ("act-opt-method", args.act_quant_method),
    ] {
        if args.no_effect.value(opt) == Some("golden_section") && method == RangeMethodArg::Mse {
            bail!(
                "--{opt} golden_section is not supported by the MSE range estimator (only grid), as in the reference"
            );
        }
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
    if !quantized && args.layer_formats.is_some() {
        bail!("--layer-formats needs quantization (weights or activations): the FP32 baseline has no quantizers");
    }
    let kind = |m: QMethodArg| -> anyhow::Result<QMethodKind> { Ok(name_of(&m).parse()?) };
    let block_options = |f: Option<Format>| -> anyhow::Result<Option<Format>> {
        Ok(f.map(|f| f.with_block_options(args.block_size, args.scale_rule))
            .transpose()?)
    };
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
        weight_format: block_options(args.weight_format)?,
        act_format: block_options(args.act_format)?,
    };
    let mut ptq = ptq;
    if let Some(formats) = ptq.layer_formats.as_mut() {
        formats.try_map_formats(|f| f.with_block_options(args.block_size, args.scale_rule))?;
    }
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
    let run = RunConfig {
        arch: architecture,
        model_dir: args.model_dir.clone(),
        images_dir,
        ptq,
        num_est_batches: args.num_est_batches,
        reestimate_bn: sw.reestimate_bn_stats.on,
        bn_reestimation_batches: args.bn_reestimation_batches,
        batch_size: args.batch_size,
        seed: args.seed,
        num_workers: args.num_workers,
        interpolation: args.interpolation,
        calib_transform: match args.calib_transform {
            CalibTransformArg::Train => CalibTransform::Train,
            CalibTransformArg::Val => CalibTransform::Val,
        },
        max_val_images: args.max_val_images,
        shard: args.shard,
        skip_bad_images: args.skip_bad_images,
        save_quant_params: args.save_quant_params.clone(),
        load_quant_params: args.load_quant_params.clone(),
    };
    run.validate()?;
    Ok((run, notes))
}
