//! Which serving stack's checkpoint layout is written: the tensor names and dtypes of each
//! format, and the `quantization_config` of `config.json`.

use std::fmt;
use std::str::FromStr;

use crate::error::ExportError;

/// A checkpoint layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// compressed-tensors (vLLM, llm-compressor): `weight` / `weight_packed`, `weight_scale`,
    /// `weight_global_scale`; `quant_method: "compressed-tensors"`.
    CompressedTensors,
    /// NVIDIA Model-Optimizer (TensorRT-LLM, vLLM's modelopt loader): `weight`, `weight_scale`,
    /// `weight_scale_2`; `quant_method: "modelopt"`.
    ModelOpt,
}

impl Layout {
    /// The option's spelling.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::CompressedTensors => "compressed-tensors",
            Layout::ModelOpt => "modelopt",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = ExportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compressed-tensors" | "compressed_tensors" => Ok(Layout::CompressedTensors),
            "modelopt" => Ok(Layout::ModelOpt),
            other => Err(ExportError::Invalid(format!(
                "unknown layout '{other}': expected compressed-tensors or modelopt"
            ))),
        }
    }
}
