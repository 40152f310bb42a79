//! `fp8q export`: a float checkpoint written as a low-precision checkpoint that serving stacks
//! load (`fp8q_export::export`; the layouts: docs/export.md).

use anyhow::{Context, Result};
use fp8q_export::{ExportConfig, Layout};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Write a quantized checkpoint: each selected weight in a deployed format (codes and scales in
/// the layout's names and dtypes), every other tensor copied unchanged, `config.json` with the
/// `quantization_config`, and `fp8q_export.json` (the SQNR of each tensor).
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The checkpoint: .safetensors, a sharded model.safetensors.index.json, a folder holding
    /// either, or a PyTorch .pth; f32, bf16 or f16.
    pub input: PathBuf,
    /// The output folder (written whole or not at all).
    #[arg(long, short)]
    pub output: PathBuf,
    /// The format of every quantized tensor: float8_e4m3fn, float8_e5m2, int8 (per channel),
    /// mxfp8_e4m3, mxfp6_e2m3, mxfp4 or nvfp4 (e4m3 and e5m2 name the float8 encodings).
    #[arg(long)]
    pub format: Option<String>,
    /// One scale per output channel (float8 formats).
    #[arg(long = "per-channel")]
    pub per_channel: bool,
    /// The format of each module's weight, `{module: {"weight": fmt}}` as `fp8q analyze
    /// --write-layer-formats` writes it (overrides --format for the modules it names).
    #[arg(long = "layer-formats", value_name = "FILE")]
    pub layer_formats: Option<PathBuf>,
    /// Quantize the tensors these globs match (default: the 2-D float tensors named *.weight).
    #[arg(long = "tensors", value_name = "GLOB")]
    pub tensors: Vec<String>,
    /// E8M0 scale rule of the MX formats: floor (OCP v1.0, default), ceil, even or rceil.
    #[arg(long = "scale-rule", value_name = "RULE")]
    pub scale_rule: Option<String>,
    /// The checkpoint layout: compressed-tensors (vLLM) or modelopt.
    #[arg(long, default_value = "compressed-tensors")]
    pub layout: String,
    /// Replace an output folder that exists and is not empty.
    #[arg(long)]
    pub force: bool,
    /// Largest shard in bytes (default 5 GB).
    #[arg(long = "shard-bytes", value_name = "BYTES", hide = true)]
    pub shard_bytes: Option<u64>,
}

/// Run `fp8q export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let layer_formats = match &args.layer_formats {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            let map: BTreeMap<String, BTreeMap<String, Option<String>>> = serde_json::from_str(&text)
                .with_context(|| format!("{}: expected {{module: {{\"weight\": format}}}}", p.display()))?;
            Some(map)
        }
    };
    let cfg = ExportConfig {
        per_channel: args.per_channel,
        layer_formats,
        tensors: args.tensors.clone(),
        scale_rule: args.scale_rule.clone(),
        layout: args.layout.parse::<Layout>()?,
        force: args.force,
        shard_bytes: args.shard_bytes.unwrap_or(fp8q_export::run::DEFAULT_SHARD_BYTES),
        ..ExportConfig::new(&args.input, &args.output, args.format.as_deref())
    };
    let report = fp8q_export::export(&cfg)?;
    for t in &report.tensors {
        println!("{:<48} {:<14} {:>8.2} dB  {:?}", t.name, t.format, t.sqnr_db, t.shape);
    }
    let gb = report.bytes_in as f64 / 1e9;
    println!(
        "{} tensors quantized, {} copied; {} files in {}; read {:.3} GB in {:.2} s ({:.2} GB/s)",
        report.tensors.len(),
        report.copied.len(),
        report.files.len(),
        args.output.display(),
        gb,
        report.seconds,
        gb / report.seconds.max(1e-9)
    );
    Ok(())
}
