//! `fp8q quantize`. PLACEHOLDER: being implemented.

/// Options of `fp8q quantize`.
#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {}

/// Run the command.
pub fn run(_args: &QuantizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
