//! `modelcall plugin check|run`: inspect and exercise one plugin with the real limits.
//! (Owned by the plugin-runtime work; placeholder until it lands.)

#[derive(clap::Subcommand)]
pub enum PluginCommand {}

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {}
}
