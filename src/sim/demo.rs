//! `hydrowatch demo`.

use clap::Args;

/// `hydrowatch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Runs the demo until Ctrl-C.
pub async fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("demo is not implemented yet")
}
