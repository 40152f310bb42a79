//! An export run: [`ExportConfig`] in, the output folder written, [`ExportReport`] out.
//!
//! 1. The input is opened (memory-mapped) and the tensors to quantize are chosen: 2-D float
//!    tensors named `*.weight` (or those `tensors` globs name), each in the uniform format or
//!    in the format a layer-formats file gives its module.
//! 2. The output's tensors, dtypes and shapes follow from the formats without reading any data,
//!    so the file's header (and the shards, above `shard_bytes`) is fixed first.
//! 3. Each input tensor is then quantized (or copied unchanged) and written, one at a time and
//!    piece by piece ([`crate::encode::WeightEncoder`], pieces of 1 Mi values): memory holds
//!    the pages of the tensor being read (released once it is written), one piece in `f32` with
//!    its codes, and the tensor's scales. A per-tensor scale reads the tensor's pages twice, the
//!    second time from memory; the file is read from disk once.
//! 4. Everything is written into a temporary folder beside the output, renamed into place at
//!    the end: an error leaves no half-written output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fp8q_core::format::ScaleRule;
use fp8q_tensors::safetensors_stream::{byte_size, StreamPlan, StreamWriter};
use serde::Serialize;

use crate::config::quantization_config;
use crate::encode::{needs_tensor_amax, parts, WeightEncoder};
use crate::error::{file_error, ExportError, Result};
use crate::format::ExportFormat;
use crate::layout::Layout;
use crate::source::{is_float, Source};

/// Largest shard by default: 5 GB, as Hugging Face writes them.
pub const DEFAULT_SHARD_BYTES: u64 = 5_000_000_000;

/// What to export (`fp8q export`'s options).
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The checkpoint: `.safetensors`, a sharded index, a folder with either, or `.pth`.
    pub input: PathBuf,
    /// The folder to write.
    pub out_dir: PathBuf,
    /// The format of every quantized tensor (unless the layer formats give another).
    pub format: Option<String>,
    /// One scale per output channel (the 8-bit floats).
    pub per_channel: bool,
    /// `{module: {"weight": format}}` (what `fp8q analyze --write-layer-formats` writes).
    pub layer_formats: Option<BTreeMap<String, BTreeMap<String, Option<String>>>>,
    /// Globs of the tensors to quantize (default: 2-D float tensors named `*.weight`).
    pub tensors: Vec<String>,
    /// E8M0 scale rule of the MX formats.
    pub scale_rule: Option<String>,
    /// The checkpoint layout.
    pub layout: Layout,
    /// Replace an output folder that exists and is not empty.
    pub force: bool,
    /// Largest shard in bytes.
    pub shard_bytes: u64,
}

impl ExportConfig {
    /// A config with the defaults: per tensor, the 2-D `*.weight` tensors, compressed-tensors.
    pub fn new(input: impl Into<PathBuf>, out_dir: impl Into<PathBuf>, format: Option<&str>) -> Self {
        ExportConfig {
            input: input.into(),
            out_dir: out_dir.into(),
            format: format.map(String::from),
            per_channel: false,
            layer_formats: None,
            tensors: Vec::new(),
            scale_rule: None,
            layout: Layout::CompressedTensors,
            force: false,
            shard_bytes: DEFAULT_SHARD_BYTES,
        }
    }
}

/// One quantized tensor in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedTensor {
    /// The input tensor.
    pub name: String,
    /// Its format.
    pub format: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// SQNR of the dequantized values against the input, dB.
    pub sqnr_db: f64,
    /// The tensors stored for it.
    pub stored: Vec<String>,
}

/// What an export did (`fp8q_export.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The input.
    pub input: String,
    /// The output folder.
    pub output: String,
    /// The layout.
    pub layout: String,
    /// The uniform format, if one was given.
    pub format: Option<String>,
    /// Scales per output channel.
    pub per_channel: bool,
    /// The quantized tensors.
    pub tensors: Vec<ExportedTensor>,
    /// The tensors copied unchanged.
    pub copied: Vec<String>,
    /// The files written.
    pub files: Vec<String>,
    /// Bytes of tensor data read and written.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The tensor name a quantized weight's module has (`layers.0.proj` of `layers.0.proj.weight`).
fn module_of(name: &str) -> Option<&str> {
    name.strip_suffix(".weight")
}

/// Which tensors are quantized, in which format.
fn choose(cfg: &ExportConfig, src: &Source) -> Result<BTreeMap<String, ExportFormat>> {
    let rule = cfg
        .scale_rule
        .as_deref()
        .map(|r| {
            r.parse::<ScaleRule>()
                .map_err(|e| ExportError::Invalid(format!("--scale-rule: {e}")))
        })
        .transpose()?;
    let uniform = cfg
        .format
        .as_deref()
        .map(|f| ExportFormat::parse(f, cfg.per_channel, rule))
        .transpose()?;
    if uniform.is_none() && cfg.layer_formats.is_none() {
        return Err(ExportError::Invalid(
            "give a format (--format) or layer formats (--layer-formats)".into(),
        ));
    }
    let globs: Vec<glob::Pattern> = cfg
        .tensors
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| ExportError::Invalid(format!("--tensors '{g}': {e}"))))
        .collect::<Result<_>>()?;
    for (g, p) in cfg.tensors.iter().zip(&globs) {
        if !src.names().any(|n| p.matches(n)) {
            return Err(ExportError::Invalid(format!(
                "--tensors '{g}' matches no tensor of {}",
                src.path.display()
            )));
        }
    }
    let selected = |name: &str| -> bool {
        if globs.is_empty() {
            let e = src.entry(name).expect("a listed tensor");
            name.ends_with(".weight") && e.shape.len() == 2 && is_float(e.dtype)
        } else {
            globs.iter().any(|p| p.matches(name))
        }
    };
    let mut per_module: BTreeMap<String, Option<ExportFormat>> = BTreeMap::new();
    if let Some(lf) = &cfg.layer_formats {
        for (module, sides) in lf {
            let name = format!("{module}.weight");
            if src.entry(&name).is_none() {
                return Err(ExportError::Invalid(format!(
                    "--layer-formats names '{module}', but {} has no tensor '{name}'",
                    src.path.display()
                )));
            }
            let f = match sides.get("weight") {
                None => continue,
                Some(None) => None,
                Some(Some(f)) => {
                    Some(
                        ExportFormat::parse(f, cfg.per_channel, rule).map_err(|e| ExportError::Tensor {
                            name: name.clone(),
                            why: format!("its layer format: {e}"),
                        })?,
                    )
                }
            };
            per_module.insert(module.clone(), f);
        }
    }
    let mut out = BTreeMap::new();
    for name in src.names() {
        let from_file = module_of(name).and_then(|m| per_module.get(m)).copied();
        let format = match from_file {
            Some(f) => f,
            None if selected(name) => uniform,
            None => None,
        };
        let Some(format) = format else { continue };
        let e = src.entry(name).expect("a listed tensor");
        if !is_float(e.dtype) {
            return Err(ExportError::Tensor {
                name: name.to_string(),
                why: format!("is {:?}, not a floating-point tensor; it cannot be quantized", e.dtype),
            });
        }
        if module_of(name).is_none() {
            return Err(ExportError::Tensor {
                name: name.to_string(),
                why: "serving stacks read quantized weights as '<module>.weight'; this name does not end in .weight"
                    .into(),
            });
        }
        out.insert(name.to_string(), format);
    }
    Ok(out)
}

/// One output tensor: its source and what it is.
#[derive(Debug, Clone)]
struct Planned {
    /// The input tensor it comes from.
    source: String,
    /// Quantized (with its format), or copied.
    format: Option<ExportFormat>,
    /// The stored tensors (name, dtype, shape).
    stored: Vec<(String, safetensors::Dtype, Vec<usize>)>,
}

fn plan(cfg: &ExportConfig, src: &Source, chosen: &BTreeMap<String, ExportFormat>) -> Result<Vec<Planned>> {
    let mut out = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for name in src.names() {
        let e = src.entry(name).expect("a listed tensor");
        let (format, stored) = match chosen.get(name) {
            Some(f) => {
                let module = module_of(name).expect("checked");
                let specs = parts(f, cfg.layout, name, &e.shape)?;
                (
                    Some(*f),
                    specs
                        .into_iter()
                        .map(|p| (format!("{module}.{}", p.suffix), p.dtype, p.shape))
                        .collect(),
                )
            }
            None => (None, vec![(name.to_string(), e.dtype, e.shape.clone())]),
        };
        for (n, ..) in &stored {
            if let Some(other) = names.insert(n.clone(), name.to_string()) {
                return Err(ExportError::Tensor {
                    name: name.to_string(),
                    why: format!("its output '{n}' is also the output of '{other}'"),
                });
            }
        }
        out.push(Planned {
            source: name.to_string(),
            format,
            stored,
        });
    }
    Ok(out)
}

/// Group the planned tensors into shards of at most `limit` bytes (a tensor and its scales stay
/// together; one group larger than the limit gets a shard of its own).
fn shards(planned: &[Planned], limit: u64) -> Vec<Vec<usize>> {
    let size = |p: &Planned| -> u64 { p.stored.iter().map(|(_, d, s)| byte_size(*d, s).unwrap_or(0)).sum() };
    let mut out: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0u64;
    for (i, p) in planned.iter().enumerate() {
        let s = size(p);
        if used > 0 && used + s > limit {
            out.push(Vec::new());
            used = 0;
        }
        out.last_mut().expect("one shard").push(i);
        used += s;
    }
    out
}

/// Elements of a piece: what an export holds of a tensor at a time (4 MiB of `f32`).
const PIECE: usize = 1 << 20;

/// The buffers of one piece, reused from tensor to tensor.
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    values: Vec<f32>,
    stored: Vec<u8>,
}

/// Stream one weight through its encoder into the file, piece by piece: its values are read
/// from the map once more only when a per-tensor scale needs its largest magnitude first (the
/// pages are then in memory already). Returns its SQNR and the bytes written.
fn write_quantized(
    cfg: &ExportConfig,
    src: &Source,
    p: &Planned,
    f: ExportFormat,
    w: &mut StreamWriter<'_>,
    buf: &mut Buffers,
) -> Result<(f64, u64)> {
    let e = src.entry(&p.source).expect("a listed tensor");
    let n: usize = e.shape.iter().product();
    let amax = if needs_tensor_amax(&f) {
        Some(src.abs_max(&p.source)?)
    } else {
        None
    };
    let mut enc = WeightEncoder::new(&f, cfg.layout, &p.source, &e.shape, amax)?;
    let unit = enc.piece_unit();
    let piece = (PIECE / unit).max(1) * unit;
    let first = &p.stored[0].0;
    let (mut signal, mut noise, mut written) = (0f64, 0f64, 0u64);
    let mut at = 0;
    while at < n {
        let len = piece.min(n - at);
        buf.x.resize(len, 0.0);
        buf.values.resize(len, 0.0);
        src.read_f32(&p.source, at, &mut buf.x)?;
        buf.stored.clear();
        let (s, e) = enc.encode_piece(&buf.x, &mut buf.stored, &mut buf.values)?;
        w.write_piece(first, &buf.stored)?;
        written += buf.stored.len() as u64;
        signal += s;
        noise += e;
        at += len;
    }
    if n == 0 {
        w.write_piece(first, &[])?;
    }
    for ((name, ..), data) in p.stored[1..].iter().zip(enc.finish()?) {
        w.write(name, &data)?;
        written += data.len() as u64;
    }
    let sqnr = if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    };
    Ok((sqnr, written))
}

/// Whether `dir` exists and holds anything.
fn non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// Run an export (see the module's documentation).
pub fn export(cfg: &ExportConfig) -> Result<ExportReport> {
    let start = Instant::now();
    let out = &cfg.out_dir;
    if out.exists() && !out.is_dir() {
        return Err(file_error(out, "exists and is not a folder"));
    }
    if non_empty(out) && !cfg.force {
        return Err(file_error(out, "exists and is not empty (give --force to replace it)"));
    }
    let src = Source::open(&cfg.input)?;
    let chosen = choose(cfg, &src)?;
    let planned = plan(cfg, &src, &chosen)?;
    let groups = shards(&planned, cfg.shard_bytes.max(1));
    let file_names: Vec<String> = if groups.len() == 1 {
        vec!["model.safetensors".into()]
    } else {
        (1..=groups.len())
            .map(|i| format!("model-{i:05}-of-{:05}.safetensors", groups.len()))
            .collect()
    };

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| file_error(parent, format!("cannot create: {e}")))?;
    let leaf = out.file_name().and_then(|n| n.to_str()).unwrap_or("export");
    let tmp = parent.join(format!(".{leaf}.fp8q-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| file_error(&tmp, format!("cannot create: {e}")))?;
    let result = write_all(cfg, &src, &planned, &groups, &file_names, &tmp, start);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // into place: the old folder (with --force) is moved aside first and removed last
    let old = parent.join(format!(".{leaf}.fp8q-old-{}", std::process::id()));
    if out.exists() {
        std::fs::rename(out, &old).map_err(|e| file_error(out, format!("cannot replace: {e}")))?;
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        if old.exists() {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(file_error(out, format!("cannot write: {e}")));
    }
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(report)
}

fn write_all(
    cfg: &ExportConfig,
    src: &Source,
    planned: &[Planned],
    groups: &[Vec<usize>],
    file_names: &[String],
    dir: &Path,
    start: Instant,
) -> Result<ExportReport> {
    let mut tensors = Vec::new();
    let mut copied = Vec::new();
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let mut weight_map = serde_json::Map::new();
    let metadata: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let mut buffers = Buffers::default();
    for (group, file) in groups.iter().zip(file_names) {
        let mut sp = StreamPlan::default();
        for &i in group {
            for (n, d, s) in &planned[i].stored {
                sp.push(n.clone(), *d, s.clone())?;
                weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
            }
        }
        let path = dir.join(file);
        let mut w = StreamWriter::create(&path, &sp, &metadata)?;
        for &i in group {
            let p = &planned[i];
            let e = src.entry(&p.source).expect("a listed tensor");
            bytes_in += byte_size(e.dtype, &e.shape).unwrap_or(0);
            match p.format {
                None => {
                    let raw = src.raw(&p.source)?;
                    w.write(&p.stored[0].0, &raw)?;
                    bytes_out += raw.len() as u64;
                    copied.push(p.source.clone());
                }
                Some(f) => {
                    let (sqnr, written) = write_quantized(cfg, src, p, f, &mut w, &mut buffers)?;
                    bytes_out += written;
                    tensors.push(ExportedTensor {
                        name: p.source.clone(),
                        format: f.name(),
                        shape: e.shape.clone(),
                        sqnr_db: sqnr,
                        stored: p.stored.iter().map(|(n, ..)| n.clone()).collect(),
                    });
                }
            }
            src.release(&p.source);
        }
        w.finish()?;
    }
    if groups.len() > 1 {
        let index = serde_json::json!({
            "metadata": { "total_size": bytes_out },
            "weight_map": serde_json::Value::Object(weight_map),
        });
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    // config.json: the input folder's, with the quantization_config added
    let modules: BTreeMap<String, ExportFormat> = planned
        .iter()
        .filter_map(|p| {
            p.format
                .map(|f| (module_of(&p.source).expect("checked").to_string(), f))
        })
        .collect();
    let mut config = match src
        .folder
        .as_ref()
        .map(|f| f.join("config.json"))
        .filter(|p| p.is_file())
    {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| file_error(&p, format!("cannot read: {e}")))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| file_error(&p, format!("invalid JSON: {e}")))?;
            if !v.is_object() {
                return Err(file_error(&p, "config.json is not a JSON object"));
            }
            v
        }
        None => serde_json::json!({}),
    };
    // the modules with a 2-D float weight left in floating point
    let excluded: Vec<String> = planned
        .iter()
        .filter(|p| p.format.is_none())
        .filter_map(|p| {
            let e = src.entry(&p.source)?;
            (e.shape.len() == 2 && is_float(e.dtype)).then(|| module_of(&p.source).map(String::from))?
        })
        .collect();
    config["quantization_config"] = quantization_config(cfg.layout, &modules, &excluded);
    write_json(&dir.join("config.json"), &config)?;
    if cfg.layout == Layout::ModelOpt {
        write_json(
            &dir.join("hf_quant_config.json"),
            &crate::config::modelopt_hf_quant_config(&excluded),
        )?;
    }
    let mut files = file_names.to_vec();
    if groups.len() > 1 {
        files.push("model.safetensors.index.json".into());
    }
    files.push("config.json".into());
    if cfg.layout == Layout::ModelOpt {
        files.push("hf_quant_config.json".into());
    }
    files.push("fp8q_export.json".into());
    let report = ExportReport {
        input: src.path.display().to_string(),
        output: cfg.out_dir.display().to_string(),
        layout: cfg.layout.to_string(),
        format: cfg.format.clone(),
        per_channel: cfg.per_channel,
        tensors,
        copied,
        files,
        bytes_in,
        bytes_out,
        seconds: start.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_value(&report).map_err(|e| ExportError::Invalid(e.to_string()))?;
    write_json(&dir.join("fp8q_export.json"), &json)?;
    Ok(report)
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ExportError::Invalid(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| file_error(path, format!("cannot write: {e}")))
}
