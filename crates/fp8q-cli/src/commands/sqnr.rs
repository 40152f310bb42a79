//! `fp8q sqnr`. PLACEHOLDER: being implemented.

/// Options of `fp8q sqnr`.
#[derive(clap::Args, Debug)]
pub struct SqnrArgs {}

/// Run the command.
pub fn run(_args: &SqnrArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
