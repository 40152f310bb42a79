//! # fp8q-export: low-precision checkpoints that serving stacks load
//!
//! `fp8q export` turns a float checkpoint into the layout vLLM (compressed-tensors) or
//! TensorRT-LLM (Model-Optimizer) loads, with the rounding and scale rules fp8q analysed:
//! FP8 (`float8_e4m3fn`, `float8_e5m2`, per tensor or per channel), `int8` per channel, the OCP MX
//! formats (`mxfp8_e4m3`, `mxfp4`) and NVFP4.
//!
//! * [`format`]: the deployed formats, parsed from fp8q's names.
//! * [`layout`]: compressed-tensors or Model-Optimizer.
//! * [`encode`]: one weight → the tensors a layout stores, and what a reader dequantizes them to.
//! * [`config`]: the `quantization_config` of `config.json`.
//! * [`source`]: the input checkpoint, memory-mapped (safetensors, sharded or not) or `.pth`.
//! * [`run`]: [`ExportConfig`] → the output folder and an [`ExportReport`].
//!
//! Data flows one way: files → tensors (`fp8q-tensors`) → quantizers and encodings
//! (`fp8q-core`) → files. Owns: the serving stacks' layouts and arithmetic. Must not know:
//! networks, images, PTQ runs.

pub mod config;
pub mod encode;
pub mod error;
pub mod format;
pub mod layout;
pub mod run;
pub mod source;

pub use error::{ExportError, Result};
pub use format::ExportFormat;
pub use layout::Layout;
pub use run::{export, ExportConfig, ExportReport};
