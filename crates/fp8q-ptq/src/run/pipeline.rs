//! The PTQ run, step by step (`docs/ptq.md`): load the checkpoint, open the validation list
//! (subsampled, sharded), install the quantizers of the quant setup and calibrate them on
//! training batches (or load their states), re-estimate BN with the quantizers fixed, evaluate.
//! [`run`] chains the steps; the steps are public so that other front ends (`fp8q analyze`)
//! can stop after calibration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{PtqError, Result};
use crate::{Installed, QMethodKind};
use fp8q_images::{BatchLoader, ImageCache, ImageFolder};
use fp8q_nn::layers::SlotKind;
use fp8q_nn::models::Model;
use fp8q_tensors::hub;

use super::config::RunConfig;
use super::events::{Event, Observer, Stage};
use super::report::{peak_memory_mib, RunReport, Timings};

/// Run `cfg` from checkpoint to report, telling `observe` what happens.
pub fn run(cfg: &RunConfig, observe: &mut Observer<'_>) -> Result<RunReport> {
    run_with(cfg, None, observe)
}

/// [`run`], with the validation images taken from and kept in `cache` (a sweep shares one
/// cache across its runs; the values are those a fresh decode gives).
pub fn run_with(cfg: &RunConfig, cache: Option<Arc<ImageCache>>, observe: &mut Observer<'_>) -> Result<RunReport> {
    cfg.validate()?;
    // cheap checks before expensive work: a wrong images folder is named before a checkpoint is
    // read or downloaded
    cfg.check_image_folders()?;
    if let Some(n) = cfg.num_workers {
        // Only the first call configures the global pool; later calls keep it.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let mut timings = Timings::default();
    let t = Instant::now();
    let (mut model, model_path) = load_model(cfg, observe)?;
    timings.load_seconds = t.elapsed().as_secs_f64();
    let val = ValidationSet::open(cfg, model.num_classes())?;
    let mut train = TrainingSet::new(cfg);

    let t = Instant::now();
    let quantized = quantize(cfg, &mut model, &mut train, observe)?;
    timings.calibration_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let bn_batches = reestimate_bn(cfg, &mut model, &mut train, observe)?;
    timings.bn_reestimation_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut val_options = cfg.val_options();
    val_options.cache = cache;
    let loader = BatchLoader::new(&val.folder, val_options);
    observe(Event::Begin {
        stage: Stage::Validation,
        total: val.folder.len() as u64,
    });
    let eval = crate::evaluate::evaluate(&mut model, loader, |n| observe(Event::Advance { done: n as u64 }));
    observe(Event::End);
    let eval = eval?;
    timings.validation_seconds = t.elapsed().as_secs_f64();

    Ok(RunReport {
        config: cfg.clone(),
        model_path,
        classes: model.num_classes(),
        metrics: eval.metrics,
        logits: eval.logits,
        labels: eval.labels,
        indices: eval.indices.iter().map(|i| i + val.offset).collect(),
        total_images: val.total,
        quantizers: quantized.as_ref().map(|q| q.installed.states()),
        calibration_batches: quantized.as_ref().map_or(0, |q| q.calibration_batches),
        bn_reestimation_batches: bn_batches,
        skipped: eval.skipped,
        timings,
        peak_memory_mib: peak_memory_mib(),
    })
}

/// Load the network: `cfg.model_dir`, or torchvision's weights from the torch hub cache
/// (downloaded there first when missing). Returns the model and the file read. The images
/// folder is checked first ([`RunConfig::check_images_root`]): every front end that loads a
/// run's network reads images next, so a missing folder is named before anything is downloaded.
pub fn load_model(cfg: &RunConfig, observe: &mut Observer<'_>) -> Result<(Model, PathBuf)> {
    cfg.check_images_root()?;
    let path = match &cfg.model_dir {
        Some(path) => path.clone(),
        None => {
            let url = hub::torchvision_weights(cfg.arch.name())
                .map(|w| w.url)
                .unwrap_or_default();
            let mut downloading = false;
            let path = hub::pretrained_checkpoint(cfg.arch.name(), &mut |done, total| {
                downloading = true;
                observe(Event::Download { url, done, total });
            })?;
            if downloading {
                observe(Event::Downloaded(&path));
            }
            path
        }
    };
    let model = Model::load(cfg.arch, &path)?;
    observe(Event::Note(&format!(
        "loaded {} from {} ({} classes)",
        cfg.arch,
        path.display(),
        model.num_classes()
    )));
    Ok((model, path))
}

/// The validation images of a run: `val/` of the images folder, subsampled to
/// `max_val_images`, then cut to the run's shard.
#[derive(Debug, Clone)]
pub struct ValidationSet {
    /// The images this run evaluates.
    pub folder: ImageFolder,
    /// Position of the first of them in the whole (subsampled) list.
    pub offset: usize,
    /// Images in the whole (subsampled) list.
    pub total: usize,
}

impl ValidationSet {
    /// Open and check `val/` against the network's number of classes.
    pub fn open(cfg: &RunConfig, classes: usize) -> Result<Self> {
        let mut folder = ImageFolder::open(cfg.images_dir.join("val"))?;
        if folder.classes.len() != classes {
            return Err(PtqError::BadDataset {
                path: folder.root.clone(),
                why: format!(
                    "{} class folders, but the checkpoint has {classes} classes",
                    folder.classes.len()
                ),
            });
        }
        if let Some(n) = cfg.max_val_images {
            folder.subsample(n);
        }
        let total = folder.len();
        let mut offset = 0;
        if let Some(shard) = cfg.shard {
            let part = shard.bounds(total);
            offset = part.start;
            folder.samples = folder.samples[part].to_vec();
        }
        Ok(ValidationSet { folder, offset, total })
    }
}

/// `train/` of the images folder, opened when first needed.
#[derive(Debug)]
pub struct TrainingSet {
    root: PathBuf,
    folder: Option<ImageFolder>,
}

impl TrainingSet {
    /// Not opened yet.
    pub fn new(cfg: &RunConfig) -> Self {
        TrainingSet {
            root: cfg.images_dir.join("train"),
            folder: None,
        }
    }

    /// The folder, opened on first use.
    pub fn get(&mut self) -> Result<&ImageFolder> {
        if self.folder.is_none() {
            self.folder = Some(ImageFolder::open(&self.root)?);
        }
        Ok(self.folder.as_ref().expect("opened above"))
    }
}

/// The quantizers of a run and how their ranges were found.
#[derive(Debug)]
pub struct Quantized {
    /// The installed quantizers (fixed).
    pub installed: Installed,
    /// Calibration batches run (0: states loaded).
    pub calibration_batches: usize,
}

/// Install the quantizers of `cfg.ptq` and calibrate them sequentially on training batches, or
/// load their states from `cfg.load_quant_params`; write them to `cfg.save_quant_params`.
/// `None` for an FP32 run.
pub fn quantize(
    cfg: &RunConfig,
    model: &mut Model,
    train: &mut TrainingSet,
    observe: &mut Observer<'_>,
) -> Result<Option<Quantized>> {
    if !cfg.quantized() {
        return Ok(None);
    }
    let q = &cfg.ptq;
    let installed = crate::install(model, q)?;
    observe(Event::Note(&format!(
        "{} quantizers installed (quant setup {})",
        installed.slots.len(),
        q.quant_setup.name()
    )));
    // narrow slots (fc4's 4-bit weights) get a narrower FP split: say so
    for p in installed
        .plan
        .iter()
        .filter(|p| p.format.is_none() && q.side_format(p.kind).is_none())
    {
        let kind = if p.kind == SlotKind::Weight {
            q.qmethod
        } else {
            q.qmethod_act.unwrap_or(q.qmethod)
        };
        let m = q.fp_mantissa_bits(p.bits);
        if kind == QMethodKind::FpQuantizer && m != q.fp8_mantissa_bits {
            observe(Event::Note(&format!(
                "{} ({}) is {}-bit: FP split E{}M{m} (one exponent bit at least)",
                p.unit,
                if p.kind == SlotKind::Weight { "weight" } else { "act" },
                p.bits,
                p.bits - 1 - m
            )));
        }
    }
    let mut calibration_batches = 0;
    if let Some(path) = &cfg.load_quant_params {
        installed.load_json(path)?;
        observe(Event::Note(&format!(
            "quantization parameters loaded from {}",
            path.display()
        )));
    } else {
        let train = train.get()?;
        let wanted = q.calibration_batches(cfg.num_est_batches);
        observe(Event::Begin {
            stage: Stage::Calibration,
            total: (wanted * cfg.batch_size).min(train.len()) as u64,
        });
        let loader = BatchLoader::new(train, cfg.calib_options(0));
        let done = crate::calibrate(model, &installed, loader, wanted, |n| {
            observe(Event::Advance { done: n as u64 })
        });
        observe(Event::End);
        calibration_batches = done?;
        observe(Event::Note(&format!(
            "ranges calibrated on {calibration_batches} batch(es) of {} and fixed",
            cfg.batch_size
        )));
    }
    if let Some(path) = &cfg.save_quant_params {
        installed.save_json(path)?;
    }
    Ok(Some(Quantized {
        installed,
        calibration_batches,
    }))
}

/// Re-estimate BN statistics on training batches with the quantizers fixed, when `cfg` asks.
/// Returns the batches used (0: none).
pub fn reestimate_bn(
    cfg: &RunConfig,
    model: &mut Model,
    train: &mut TrainingSet,
    observe: &mut Observer<'_>,
) -> Result<usize> {
    if !cfg.reestimate_bn {
        return Ok(0);
    }
    let train = train.get()?;
    let total = train.len().div_ceil(cfg.batch_size);
    let wanted = cfg
        .bn_reestimation_batches
        .unwrap_or_else(|| crate::bn_reestimation_default(train.len(), cfg.batch_size));
    if wanted == 0 {
        observe(Event::Note(&format!(
            "BN re-estimation skipped: ⌊0.02 · {total} training batches⌋ = 0 (set --bn-reestimation-batches)"
        )));
        return Ok(0);
    }
    let loader = BatchLoader::new(train, cfg.calib_options(1));
    observe(Event::Begin {
        stage: Stage::BnReestimation,
        total: (wanted * cfg.batch_size).min(train.len()) as u64,
    });
    let done = crate::reestimate_bn(model, loader, wanted, |n| observe(Event::Advance { done: n as u64 }));
    observe(Event::End);
    let done = done?;
    observe(Event::Note(&format!(
        "BN re-estimated on {done} batch(es) of {} (tiny batches give noisy statistics)",
        cfg.batch_size
    )));
    Ok(done)
}
