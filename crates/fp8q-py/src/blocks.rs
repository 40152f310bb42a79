//! Block-scaled formats from Python: the `block_size`, `block_axis` and `scale_rule` keywords
//! resolved against a format name (`fp8q_core::format::Format::with_block_options`), and the
//! shapes of the codes `encode` returns for them.

use crate::errors::value_error;
use fp8q_core::format::{BlockFormat, Format, ScaleFormat, ScaleRule};
use pyo3::prelude::*;

/// The block keywords of a call, as Python passes them (`None`: the format's own).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BlockOptions<'a> {
    pub(crate) block_size: Option<i64>,
    pub(crate) block_axis: Option<isize>,
    pub(crate) scale_rule: Option<&'a str>,
}

impl BlockOptions<'_> {
    /// The axis the blocks run along (the last by default).
    pub(crate) fn axis(&self) -> isize {
        self.block_axis.unwrap_or(-1)
    }

    /// `format` with these options applied: the block format, or `None` for a format that is
    /// not block-scaled (giving any option then is an error).
    pub(crate) fn resolve(&self, format: Format) -> PyResult<Option<BlockFormat>> {
        let Some(block) = format.as_block() else {
            let given = [
                ("block_size", self.block_size.is_some()),
                ("block_axis", self.block_axis.is_some()),
                ("scale_rule", self.scale_rule.is_some()),
            ];
            if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
                return Err(value_error(format!(
                    "{name} applies to block-scaled formats only (mxfp4, nvfp4, e2m1@32, ...), not to {format}"
                )));
            }
            return Ok(None);
        };
        let size = match self.block_size {
            None => None,
            Some(k) if k < 1 => return Err(value_error(format!("invalid block_size: must be at least 1 (got {k})"))),
            Some(k) => Some(usize::try_from(k).map_err(value_error)?),
        };
        let rule = match self.scale_rule {
            None => None,
            Some(r) => {
                let rule = r.parse::<ScaleRule>().map_err(value_error)?;
                if block.scale() != ScaleFormat::E8m0 {
                    return Err(value_error(format!(
                        "scale_rule applies to E8M0 block scales only; {block} has {} block scales",
                        block.scale().spelling()
                    )));
                }
                Some(rule)
            }
        };
        let resolved = format.with_block_options(size, rule).map_err(value_error)?;
        Ok(resolved.as_block())
    }
}

/// Parse `fmt` and apply `opts`: `Some` for a block-scaled format.
pub(crate) fn parse_block(fmt: &str, opts: BlockOptions<'_>) -> PyResult<Option<BlockFormat>> {
    let format: Format = fmt.parse().map_err(value_error)?;
    opts.resolve(format)
}

/// The block axis in `0..rank`, or the error naming it.
pub(crate) fn normalize_axis(shape: &[usize], axis: isize) -> PyResult<usize> {
    fp8q_core::quantizer::block_quantizer::BlockLayout::new(shape, axis).map_err(value_error)?;
    Ok(if axis < 0 { axis + shape.len() as isize } else { axis } as usize)
}

/// The shape of the code array of a tensor of `shape`: the tensor's, except for 4-bit elements
/// (two codes per byte in tensor order): the last dimension halved when it is even (torchao's
/// `qdata`), else one flat dimension of `ceil(numel / 2)` bytes.
pub(crate) fn codes_shape(format: BlockFormat, shape: &[usize]) -> Vec<usize> {
    if format.element().n_bits() != 4 {
        return shape.to_vec();
    }
    match shape.split_last() {
        Some((&last, rest)) if last % 2 == 0 => rest.iter().copied().chain([last / 2]).collect(),
        _ => vec![shape.iter().product::<usize>().div_ceil(2)],
    }
}

/// The tensor shape that codes of `codes_shape` stand for, when they do not say otherwise:
/// the codes' own, or for 4-bit elements the last dimension doubled.
pub(crate) fn tensor_shape_of_codes(format: BlockFormat, codes_shape: &[usize]) -> PyResult<Vec<usize>> {
    if format.element().n_bits() != 4 {
        return Ok(codes_shape.to_vec());
    }
    match codes_shape.split_last() {
        Some((&last, rest)) => Ok(rest.iter().copied().chain([last * 2]).collect()),
        None => Err(value_error(format!(
            "{format} codes hold two elements per byte: a 0-d codes array has no tensor shape (pass shape=)"
        ))),
    }
}
