//! Weights mode: every weight tensor (two or more dimensions) of a checkpoint, no architecture.
//!
//! The file is memory-mapped. A `.safetensors` file (recognised by its first bytes, as
//! [`fp8q_tensors::checkpoint`] does) is read one tensor at a time straight from the map (F32, F16,
//! BF16 and F64 are converted to `f32` into one reused buffer, in parallel); any other file goes
//! through [`fp8q_tensors::checkpoint::Checkpoint::from_bytes_typed`] (`.pth` zip or legacy). Tensors
//! with a non-float dtype are skipped and listed; float tensors with fewer than two dimensions
//! (biases, norms) are counted but not analysed. Weights stored as low-precision codes and scales
//! (what `fp8q export` writes) are read back as f32 weights first. The unit of a tensor is its key without a
//! trailing `.weight` (`layer1.0.conv1.weight` → `layer1.0.conv1`).

use super::output::Report;
use super::AnalyzeArgs;
use anyhow::{anyhow, bail, Context, Result};
use fp8q_core::analysis::format_choice::{summarize, AnalysisRow, RangeSource, Skipped, Slot};
use fp8q_core::format::Format;
use fp8q_tensors::checkpoint::low_precision;
use fp8q_tensors::checkpoint::storage::Dtype;
use fp8q_tensors::checkpoint::Checkpoint;
use rayon::prelude::*;
use safetensors::{Dtype as StDtype, SafeTensors};
use std::path::Path;

/// What the analysis of one file needs besides the tensors.
struct Ctx<'a> {
    path: &'a Path,
    formats: &'a [Format],
    source: RangeSource,
    rows: Vec<AnalysisRow>,
    skipped: Vec<Skipped>,
    not_weights: usize,
}

impl Ctx<'_> {
    /// Analyse one float tensor (or count it as not a weight).
    fn tensor(&mut self, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        if shape.len() < 2 {
            self.not_weights += 1;
            return Ok(());
        }
        if data.is_empty() {
            self.skipped.push(Skipped {
                name: name.to_string(),
                dtype: "float".into(),
                shape: shape.to_vec(),
                reason: "empty".into(),
            });
            return Ok(());
        }
        let row = AnalysisRow::of_tensor(name, Slot::Weight, shape, data, self.formats, &self.source)
            .with_context(|| format!("{}: tensor '{name}'", self.path.display()))?;
        self.rows.push(row);
        Ok(())
    }

    fn skip(&mut self, name: &str, dtype: String, shape: &[usize]) {
        self.skipped.push(Skipped {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            reason: "not a floating-point tensor".into(),
        });
    }
}

/// Run weights mode on `path`.
pub fn run(args: &AnalyzeArgs, path: &Path) -> Result<()> {
    let formats = args.parsed_formats()?;
    let opts = args.range_options(&formats)?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len == 0 {
        bail!("{}: empty file, not a checkpoint", path.display());
    }
    // SAFETY: the map is only read; a file changed by another process while it is read gives
    // wrong numbers or an error, never undefined behaviour in safe code that copies out of it.
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    let mut ctx = Ctx {
        path,
        formats: &formats,
        source: RangeSource::Estimate(opts),
        rows: Vec::new(),
        skipped: Vec::new(),
        not_weights: 0,
    };
    let bar_shown = !(args.json || args.csv);
    if fp8q_tensors::checkpoint::safetensors::sniff(&map) {
        safetensors_file(&mut ctx, &map, bar_shown)?;
    } else {
        pth_file(&mut ctx, &map, bar_shown)?;
    }
    if ctx.rows.is_empty() {
        bail!(
            "{}: no float tensor with two or more dimensions to analyse",
            path.display()
        );
    }
    let summary = summarize(&ctx.rows);
    let report = Report {
        source: path.display().to_string(),
        mode: "weights",
        formats: formats.iter().map(|f| f.to_string()).collect(),
        range: args.range_name().to_string(),
        per_channel: args.per_channel(),
        mantissa_search: args.mantissa_search,
        slots: &ctx.rows,
        summary,
        mix: None,
        skipped: ctx.skipped,
        not_weights: ctx.not_weights,
    };
    super::emit(args, &report)
}

/// A progress bar over `len` units on stderr (hidden when not wanted or not a terminal).
fn progress(len: u64, bytes: bool, shown: bool) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let template = if bytes {
        "analyse [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}  {msg}"
    } else {
        "analyse [{bar:30}] {pos}/{len} tensors  eta {eta}  {msg}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Convert little-endian `bytes` of `dtype` into `out` (same element count), in parallel.
fn decode(dtype: StDtype, bytes: &[u8], out: &mut [f32]) {
    const CH: usize = 1 << 16;
    let size = dtype.bitsize() / 8;
    out.par_chunks_mut(CH)
        .zip(bytes.par_chunks(CH * size))
        .for_each(|(o, b)| match dtype {
            StDtype::F32 => {
                for (o, b) in o.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            StDtype::BF16 => {
                for (o, b) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
                }
            }
            StDtype::F16 => {
                for (o, b) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *o = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            StDtype::F64 => {
                for (o, b) in o.iter_mut().zip(b.chunks_exact(8)) {
                    *o = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32;
                }
            }
            _ => unreachable!("only float dtypes are decoded"),
        });
}

fn safetensors_file(ctx: &mut Ctx<'_>, map: &[u8], bar_shown: bool) -> Result<()> {
    let st = SafeTensors::deserialize(map)
        .map_err(|e| anyhow!("{}: not a readable .safetensors file: {e}", ctx.path.display()))?;
    let mut tensors = st.tensors();
    // file order
    tensors.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let total: u64 = tensors.iter().map(|(_, v)| v.data().len() as u64).sum();
    let bar = progress(total, true, bar_shown);
    // weights stored as low-precision codes and scales, read back as f32 weights one at a time
    let raw = low_precision::raw_map(&tensors);
    let mut consumed = std::collections::BTreeSet::new();
    for m in low_precision::modules(&raw) {
        let d = low_precision::dequantize_module(&raw, m).map_err(|why| anyhow!("{}: {why}", ctx.path.display()))?;
        if let Some(d) = d {
            ctx.tensor(&d.name, &d.shape, &d.values)?;
            consumed.extend(d.parts);
        }
    }
    let mut buf: Vec<f32> = Vec::new();
    for (name, view) in &tensors {
        if consumed.contains(name) {
            bar.inc(view.data().len() as u64);
            continue;
        }
        bar.set_message(name.clone());
        let shape = view.shape();
        match view.dtype() {
            d @ (StDtype::F32 | StDtype::F16 | StDtype::BF16 | StDtype::F64) => {
                let n = view.data().len() / (d.bitsize() / 8);
                if shape.len() >= 2 && buf.len() < n {
                    buf.resize(n, 0.0);
                }
                if shape.len() >= 2 {
                    decode(d, view.data(), &mut buf[..n]);
                }
                ctx.tensor(name, shape, &buf[..n.min(buf.len())])?;
            }
            other => ctx.skip(name, format!("{other:?}"), shape),
        }
        bar.inc(view.data().len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn pth_file(ctx: &mut Ctx<'_>, map: &[u8], bar_shown: bool) -> Result<()> {
    let tensors = Checkpoint::from_bytes_typed(map).map_err(|why| anyhow!("{}: {why}", ctx.path.display()))?;
    let bar = progress(tensors.len() as u64, false, bar_shown);
    for (name, (t, dtype)) in &tensors {
        bar.set_message(name.clone());
        let shape = t.dims().to_vec();
        match dtype {
            Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16 => {
                let data: Vec<f32> = if shape.len() >= 2 {
                    t.flatten_all()?.to_vec1()?
                } else {
                    Vec::new()
                };
                ctx.tensor(name, &shape, &data)?;
            }
            other => ctx.skip(name, format!("{other:?}"), &shape),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
