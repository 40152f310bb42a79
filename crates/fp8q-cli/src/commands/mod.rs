//! One module per subcommand: arguments become a configuration value, then the libraries work.

pub mod analyze;
pub mod bench;
pub mod encode;
pub mod export;
pub mod formats;
pub mod merge;
pub mod quantize;
pub mod sqnr;
pub mod sqnr_splits;
pub mod sweep;
pub mod validate_quantized;
