//! `ssm-injector`: parse the command line, set up logging, run, exit with the app's code.
#![forbid(unsafe_code)]

use clap::Parser;
use ssm_injector::{app, cli::Cli, exit, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match app::runtime(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("could not start the async runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    ExitCode::from(runtime.block_on(app::run(cli)))
}
