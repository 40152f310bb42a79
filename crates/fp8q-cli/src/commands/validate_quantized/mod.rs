//! `fp8q validate-quantized`: load an FP32 checkpoint, calibrate quantizers, (re-estimate batch
//! norm,) evaluate on an ImageNet-layout folder, report top-1, top-5 and loss.
//!
//! The command line is the reference's (`image_net.py validate-quantized`), verbatim:
//! [`args`] declares it, [`config`] resolves it into one [`config::RunConfig`], and [`run`] runs
//! the pipeline: install the quantizers of `--quant-setup`, calibrate them sequentially on
//! `--num-est-batches` training batches (or load them with `--load-quant-params`), fix the
//! ranges, re-estimate BN statistics with the quantizers fixed, evaluate.
//! `--no-weight-quant --no-act-quant` is the FP32 baseline.

mod args;
mod config;
mod model_path;
mod reference_options;
mod report;
mod switches;

use anyhow::{bail, Context};
use fp8q_nn::data::{BatchLoader, ImageFolder};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::Model;
use fp8q_nn::ptq::{self, QMethodKind};

pub use args::ValidateQuantizedArgs;
use config::RunConfig;
use model_path::resolve_model_path;
use report::{peak_memory_mib, progress, write_npy};

/// Run the command: resolve the options, print the notes on options without effect, then
/// print the configuration (`--print-config`) or run the pipeline.
pub fn run(args: &ValidateQuantizedArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::from_args(args)?;
    for note in &cfg.notes {
        eprintln!("note: {note}");
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&cfg.to_json())?);
        return Ok(());
    }
    run_pipeline(&cfg)
}

/// Calibrate, (re-estimate BN,) evaluate and report, as `cfg` says.
fn run_pipeline(cfg: &RunConfig) -> anyhow::Result<()> {
    if let Some(n) = cfg.num_workers {
        // Only the first call configures the global pool; later calls keep it.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let arch = cfg.arch;
    let model_path = resolve_model_path(cfg)?;
    let mut model = Model::load(arch, &model_path)?;
    eprintln!(
        "loaded {arch} from {} ({} classes)",
        model_path.display(),
        model.num_classes()
    );

    let mut val = ImageFolder::open(cfg.images_dir.join("val"))?;
    if val.classes.len() != model.num_classes() {
        bail!(
            "{} has {} class folders but the checkpoint has {} classes",
            val.root.display(),
            val.classes.len(),
            model.num_classes()
        );
    }
    if let Some(n) = cfg.max_val_images {
        val.subsample(n);
    }

    // Quantizers and calibration or loaded ranges (docs: the PTQ pipeline, steps 1-3).
    let mut train: Option<ImageFolder> = None;
    let mut open_train = || -> anyhow::Result<ImageFolder> {
        if train.is_none() {
            train = Some(ImageFolder::open(cfg.images_dir.join("train"))?);
        }
        Ok(train.clone().expect("opened above"))
    };
    let installed = if cfg.quantized() {
        let q = &cfg.ptq;
        let installed = ptq::install(&mut model, q)?;
        eprintln!(
            "{} quantizers installed (quant setup {})",
            installed.slots.len(),
            q.quant_setup.name()
        );
        // narrow slots (fc4's 4-bit weights) get a narrower FP split: say so
        for p in &installed.plan {
            let kind = if p.kind == SlotKind::Weight {
                q.qmethod
            } else {
                q.qmethod_act.unwrap_or(q.qmethod)
            };
            let m = q.fp_mantissa_bits(p.bits);
            if kind == QMethodKind::FpQuantizer && m != q.fp8_mantissa_bits {
                eprintln!(
                    "note: {} ({}) is {}-bit: FP split E{}M{m} (one exponent bit at least)",
                    p.unit,
                    if p.kind == SlotKind::Weight { "weight" } else { "act" },
                    p.bits,
                    p.bits - 1 - m
                );
            }
        }
        if let Some(path) = &cfg.load_quant_params {
            installed.load_json(path)?;
            eprintln!("quantization parameters loaded from {}", path.display());
        } else {
            let train = open_train()?;
            let wanted = q.calibration_batches(cfg.num_est_batches);
            let bar = progress(
                (wanted * cfg.batch_size).min(train.len()) as u64,
                "calibration",
                cfg.progress_bar,
            );
            let loader = BatchLoader::new(&train, cfg.calib_options(0));
            let done = ptq::calibrate(&mut model, &installed, loader, wanted, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!("ranges calibrated on {done} batch(es) of {} and fixed", cfg.batch_size);
        }
        if let Some(path) = &cfg.save_quant_params {
            installed.save_json(path)?;
        }
        Some(installed)
    } else {
        None
    };

    // BN re-estimation on training batches with the quantizers fixed (step 4).
    let mut bn_batches = 0;
    if cfg.reestimate_bn {
        let train = open_train()?;
        let total = train.len().div_ceil(cfg.batch_size);
        let wanted = cfg
            .bn_reestimation_batches
            .unwrap_or_else(|| ptq::bn_reestimation_default(train.len(), cfg.batch_size));
        if wanted > 0 {
            let loader = BatchLoader::new(&train, cfg.calib_options(1));
            let bar = progress(
                (wanted * cfg.batch_size).min(train.len()) as u64,
                "BN re-estimation",
                cfg.progress_bar,
            );
            bn_batches = ptq::reestimate_bn(&mut model, loader, wanted, |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            eprintln!(
                "BN re-estimated on {bn_batches} batch(es) of {} (tiny batches give noisy statistics)",
                cfg.batch_size
            );
        } else {
            eprintln!(
                "BN re-estimation skipped: ⌊0.02 · {total} training batches⌋ = 0 (set --bn-reestimation-batches)"
            );
        }
    }

    let loader = BatchLoader::new(&val, cfg.val_options());
    let bar = progress(val.len() as u64, "validation", cfg.progress_bar);
    let eval = fp8q_nn::evaluate::evaluate(&mut model, loader, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();

    for (path, why) in &eval.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    let peak_mib = peak_memory_mib();
    println!(
        "{arch} {}: top-1 {:.2}%  top-5 {:.2}%  loss {:.4}  ({} images, {:.1} img/s{})",
        cfg.describe(),
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
    if let Some(path) = &cfg.save_logits {
        write_npy(path, &eval.logits, eval.labels.len(), classes)?;
    }
    if let Some(path) = &cfg.json {
        let logits: Vec<&[f32]> = eval.logits.chunks(classes).collect();
        let mut config = cfg.to_json();
        // the batches actually used, as in the golden runs (0: none)
        config["bn_reestimation_batches"] = bn_batches.into();
        config["model_dir"] = serde_json::json!(model_path);
        let report = serde_json::json!({
            "arch": arch.name(),
            "name": if cfg.quantized() { "quantized" } else { "fp32" },
            "config": config,
            "batch_size": cfg.batch_size,
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
