//! `fp8q validate-quantized`. PLACEHOLDER: being implemented.

/// Options of `fp8q validate-quantized`.
#[derive(clap::Args, Debug)]
pub struct ValidateQuantizedArgs {}

/// Run the command.
pub fn run(_args: &ValidateQuantizedArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
