//! `fp8q`: study and simulate low-bit floating-point quantization.
//!
//! A thin front end: each subcommand (`src/commands/`) parses its arguments into one
//! configuration value of a library crate (`fp8q-core`, `fp8q-tensors`, `fp8q-ptq`, `fp8q-export`), calls the
//! library's entry point and prints the report value it returns. It owns argument parsing,
//! terminal output and plots, and no quantization logic.

use clap::{Parser, Subcommand};

mod commands;
mod plot;
mod terminal;

/// fp8q — FP8 and INT quantization: formats, quantizers, the analytical SQNR study and
/// post-training quantization of CNNs (after "FP8 Quantization: The Power of the Exponent",
/// Kuzmin et al., NeurIPS 2022).
#[derive(Parser, Debug)]
#[command(name = "fp8q", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a table of number formats (ranges, precision, number of values).
    #[command(after_help = commands::formats::FORMAT_GRAMMAR)]
    Formats(commands::formats::FormatsArgs),
    /// Quantize–dequantize the tensors of a .npy or .safetensors file and report their SQNR.
    Quantize(commands::quantize::QuantizeArgs),
    /// Encode tensors in a block-scaled format: element codes and block scales (torchao's layout) in a .safetensors file.
    Encode(commands::encode::EncodeArgs),
    /// Decode a file written by `fp8q encode` back to f32 tensors.
    Decode(commands::encode::DecodeArgs),
    /// Write a low-precision checkpoint that serving stacks load (compressed-tensors for vLLM, or
    /// Model-Optimizer): FP8, INT8, MXFP8, MXFP4, NVFP4 weights with their scales.
    #[command(after_help = "The layouts, tensor names and arithmetic: docs/export.md (fp8q repository).")]
    Export(commands::export::ExportArgs),
    /// The analytical study: expected quantization error and SQNR of formats per distribution.
    #[command(after_help = "The study's definitions and accuracy: docs/analysis.md in the fp8q repository.")]
    Sqnr(commands::sqnr::SqnrArgs),
    /// Post-training quantization of a CNN checkpoint, evaluated on an ImageNet-layout folder.
    #[command(
        after_help = "The pipeline and where quantizers sit: docs/ptq.md; reproducing the paper: docs/reproduce.md; differences from the reference: docs/differences.md (fp8q repository)."
    )]
    ValidateQuantized(Box<commands::validate_quantized::ValidateQuantizedArgs>),
    /// Which format suits each tensor: statistics, measured and analytical SQNR per format, the
    /// network's sensitivity, and a recommendation per layer (a network on images, or the weights
    /// of any checkpoint).
    #[command(after_help = "What is computed and how: docs/analyze.md (fp8q repository).")]
    Analyze(Box<commands::analyze::AnalyzeArgs>),
    /// Combine the --json reports of `validate-quantized --shard I/N` runs into the unsharded run's.
    Merge(commands::merge::MergeArgs),
    /// Run a plan of PTQ configurations: --list, --index I (or a job array's index), --all, --report.
    #[command(after_help = "Plans, job arrays and Indexed Jobs: docs/sweeps.md (fp8q repository).")]
    Sweep(commands::sweep::SweepArgs),
    /// Measure kernel throughput against a plain copy of the same buffer.
    Bench(commands::bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Formats(args) => commands::formats::run(&args),
        Command::Encode(args) => commands::encode::run_encode(&args),
        Command::Decode(args) => commands::encode::run_decode(&args),
        Command::Export(args) => commands::export::run(&args),
        Command::Quantize(args) => commands::quantize::run(&args),
        Command::Sqnr(args) => commands::sqnr::run(&args),
        Command::ValidateQuantized(args) => commands::validate_quantized::run(&args),
        Command::Analyze(args) => commands::analyze::run(&args),
        Command::Merge(args) => commands::merge::run(&args),
        Command::Sweep(args) => commands::sweep::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
