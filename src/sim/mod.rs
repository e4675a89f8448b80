//! The gauge simulator: a flood scenario on a river, or a replay of a CSV file, published to
//! any MQTT broker as stations would.

pub mod demo;

use clap::Args;

/// `hydrowatch simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Broker URL.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
}

/// Publishes until done.
pub async fn simulate(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("simulate is not implemented yet")
}
