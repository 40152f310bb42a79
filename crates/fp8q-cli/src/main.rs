//! `fp8q`: study and simulate low-bit floating-point quantization.

use clap::{Parser, Subcommand};

mod commands;

/// fp8q — FP8 and INT quantization: formats, quantizers, the analytical SQNR study and
/// post-training quantization of CNNs (after "FP8 Quantization: The Power of the Exponent").
#[derive(Parser, Debug)]
#[command(name = "fp8q", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a table of number formats (ranges, precision, number of values).
    Formats(commands::formats::FormatsArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Formats(args) => commands::formats::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
