//! `fp8q encode` / `fp8q decode`: block-scaled tensors stored as codes and scales in a
//! `.safetensors` file, laid out as torchao lays them out.

use anyhow::{bail, Context, Result};
use fp8q_core::format::{BlockElement, BlockFormat, Format, ScaleRule, StandardFp8};
use fp8q_core::quantizer::block_codes::{decode_blocks, encode_blocks, BlockEncoding, BlockScales};
use fp8q_tensors::tensor_files::{self, NamedTensor};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Encode every float tensor of a `.npy` or `.safetensors` file in a block-scaled format, as
/// element codes and block scales, into a `.safetensors` file.
///
/// For a tensor `NAME` the output holds `NAME.codes` (one byte per element; 4-bit elements two to
/// a byte, low nibble first, the last dimension halved when it is even — torchao's `qdata`; float8 elements as `F8_E4M3`/`F8_E5M2`, INT8 as `I8`),
/// `NAME.scales` (E8M0 as `F8_E8M0`, E4M3 block scales as `F8_E4M3`, F32 scales as `F32`; the
/// tensor's shape with the block axis `ceil(len / K)` long) and, for two-level formats,
/// `NAME.tensor_scale` (`F32`, one value). The header's metadata records the format, the block
/// axis and each tensor's shape, so `fp8q decode` needs nothing else. Other tensors are copied.
#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Input tensor file (.npy or .safetensors).
    pub input: PathBuf,
    /// A block-scaled format with elements of at most 8 bits (mxfp8_e4m3, mxfp4, nvfp4, e3m4@32, ...;
    /// see `fp8q formats --help`).
    #[arg(long)]
    pub format: String,
    /// The dimension the blocks run along (negative counts from the end).
    #[arg(long = "block-axis", value_name = "D", default_value_t = -1, allow_negative_numbers = true)]
    pub block_axis: isize,
    /// Block size (overrides the format's).
    #[arg(long = "block-size", value_name = "K")]
    pub block_size: Option<usize>,
    /// E8M0 scale rule: floor (OCP v1.0), ceil, even or rceil.
    #[arg(long = "scale-rule", value_name = "RULE")]
    pub scale_rule: Option<ScaleRule>,
    /// Output file (.safetensors).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Decode a file written by `fp8q encode` back to `f32` tensors (`.safetensors`, or `.npy` for a
/// single tensor).
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// A `.safetensors` file written by `fp8q encode`.
    pub input: PathBuf,
    /// Output file (.safetensors or .npy).
    #[arg(long, short)]
    pub output: PathBuf,
}

const FORMAT_KEY: &str = "fp8q.format";
const AXIS_KEY: &str = "fp8q.block_axis";
const SHAPE_KEY: &str = "fp8q.shape.";

type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

/// Run `fp8q encode`.
pub fn run_encode(args: &EncodeArgs) -> Result<()> {
    let format: Format = args.format.parse().context("--format")?;
    let Some(format) = format.with_block_options(args.block_size, args.scale_rule)?.as_block() else {
        bail!("--format {format}: fp8q encode writes block-scaled formats (mxfp8_e4m3, mxfp4, nvfp4, ...)");
    };
    let file = tensor_files::read(&args.input)?;
    let mut raw: Vec<Raw> = Vec::new();
    let mut metadata = BTreeMap::from([
        (FORMAT_KEY.to_string(), format.generic_spelling()),
        (AXIS_KEY.to_string(), args.block_axis.to_string()),
    ]);
    for t in &file.tensors {
        let shape = if t.shape.is_empty() {
            vec![t.data.len()]
        } else {
            t.shape.clone()
        };
        let enc =
            encode_blocks(format, &t.data, &shape, args.block_axis).with_context(|| format!("tensor '{}'", t.name))?;
        println!(
            "{}: {:?} -> {} code bytes, {} scales{}",
            t.name,
            t.shape,
            enc.codes.len(),
            enc.scales.len(),
            if enc.tensor_scale.is_some() {
                ", a tensor scale"
            } else {
                ""
            }
        );
        raw.push((
            format!("{}.codes", t.name),
            code_dtype(format.element()),
            code_shape(format, &shape, enc.codes.len()),
            enc.codes,
        ));
        let (dtype, bytes) = match enc.scales {
            BlockScales::E8m0(v) => (Dtype::F8_E8M0, v),
            BlockScales::E4m3(v) => (Dtype::F8_E4M3, v),
            BlockScales::F32(v) => (Dtype::F32, v.iter().flat_map(|s| s.to_le_bytes()).collect()),
        };
        raw.push((format!("{}.scales", t.name), dtype, enc.scale_shape, bytes));
        if let Some(s) = enc.tensor_scale {
            raw.push((
                format!("{}.tensor_scale", t.name),
                Dtype::F32,
                vec![1],
                s.to_le_bytes().to_vec(),
            ));
        }
        metadata.insert(format!("{SHAPE_KEY}{}", t.name), serde_json::to_string(&t.shape)?);
    }
    raw.extend(file.passthrough);
    tensor_files::write_with_metadata(&args.output, &[], &raw, &metadata)?;
    println!("wrote {} ({format})", args.output.display());
    Ok(())
}

/// Run `fp8q decode`.
pub fn run_decode(args: &DecodeArgs) -> Result<()> {
    let file = tensor_files::read(&args.input)?;
    let path = args.input.display();
    let Some(spelling) = file.metadata.get(FORMAT_KEY) else {
        bail!("{path}: no '{FORMAT_KEY}' in the header's metadata: not a file written by fp8q encode");
    };
    let format: BlockFormat = spelling
        .parse()
        .with_context(|| format!("{path}: the recorded format"))?;
    let axis: isize = file
        .metadata
        .get(AXIS_KEY)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("{path}: no valid '{AXIS_KEY}' in the metadata"))?;
    // F32 entries (F32 scales, tensor scales) are read as float tensors, the others as raw bytes
    let find = |name: &str| -> Option<(Dtype, Vec<u8>)> {
        file.passthrough
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, d, _, b)| (*d, b.clone()))
            .or_else(|| {
                file.tensors
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| (Dtype::F32, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
            })
    };
    let mut tensors = Vec::new();
    let mut rest = Vec::new();
    for (key, value) in &file.metadata {
        let Some(name) = key.strip_prefix(SHAPE_KEY) else {
            continue;
        };
        let shape: Vec<usize> =
            serde_json::from_str(value).with_context(|| format!("{path}: the recorded shape of '{name}'"))?;
        let full = if shape.is_empty() { vec![1] } else { shape.clone() };
        let Some((_, codes)) = find(&format!("{name}.codes")) else {
            bail!("{path}: '{name}.codes' is missing");
        };
        let Some((dtype, scales)) = find(&format!("{name}.scales")) else {
            bail!("{path}: '{name}.scales' is missing");
        };
        let scales = match dtype {
            Dtype::F32 => BlockScales::F32(
                scales
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Dtype::F8_E4M3 => BlockScales::E4m3(scales),
            _ => BlockScales::E8m0(scales),
        };
        let tensor_scale = find(&format!("{name}.tensor_scale"))
            .filter(|(_, b)| b.len() == 4)
            .map(|(_, b)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let enc = BlockEncoding {
            codes,
            scales,
            tensor_scale,
            scale_shape: vec![],
        };
        let data = decode_blocks(format, &enc, &full, axis).with_context(|| format!("{path}: tensor '{name}'"))?;
        tensors.push(NamedTensor {
            name: name.to_string(),
            shape,
            data,
            stored_dtype: "f32",
        });
    }
    let owned = |n: &str| {
        tensors.iter().any(|t: &NamedTensor| {
            [".codes", ".scales", ".tensor_scale"]
                .iter()
                .any(|s| n == format!("{}{s}", t.name))
        })
    };
    let others: Vec<NamedTensor> = file.tensors.iter().filter(|t| !owned(&t.name)).cloned().collect();
    for entry in &file.passthrough {
        if !owned(&entry.0) {
            rest.push(entry.clone());
        }
    }
    tensors.extend(others);
    tensor_files::write(&args.output, &tensors, &rest)?;
    println!(
        "decoded {} tensor(s) of {format} into {}",
        tensors.len(),
        args.output.display()
    );
    Ok(())
}

fn code_dtype(e: BlockElement) -> Dtype {
    match e {
        BlockElement::Standard(StandardFp8::E4M3FN) => Dtype::F8_E4M3,
        BlockElement::Standard(StandardFp8::E5M2) => Dtype::F8_E5M2,
        BlockElement::Int(8) => Dtype::I8,
        _ => Dtype::U8,
    }
}

/// torchao's `qdata` shape: the tensor's, with the last dimension halved for 4-bit elements (the
/// codes are packed in tensor order, so pairs stay within a row when it is even); flat otherwise.
fn code_shape(format: BlockFormat, shape: &[usize], bytes: usize) -> Vec<usize> {
    if format.element().n_bits() != 4 {
        return shape.to_vec();
    }
    match shape.last() {
        Some(&l) if l % 2 == 0 => {
            let mut s = shape.to_vec();
            *s.last_mut().expect("non-empty") = l / 2;
            s
        }
        _ => vec![bytes],
    }
}
