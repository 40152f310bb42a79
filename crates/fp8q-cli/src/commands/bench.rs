//! `fp8q bench`. PLACEHOLDER: being implemented.

/// Options of `fp8q bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Run the command.
pub fn run(_args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
