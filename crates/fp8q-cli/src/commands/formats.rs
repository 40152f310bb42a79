//! `fp8q formats`. PLACEHOLDER: being implemented.

/// Options of `fp8q formats`.
#[derive(clap::Args, Debug)]
pub struct FormatsArgs {}

/// Run the command.
pub fn run(_args: &FormatsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
