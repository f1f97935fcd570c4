//! `incidentflow`: the command line. Parses the flags (`cli`) and hands each command to the
//! library. Exit status: 0 on success; 1 with a one-line reason on a configuration or I/O error.
//! Bad records never change the exit status.

use std::process::ExitCode;

use clap::Parser;

use incidentflow::cli::{Cli, Command, ConfigCommand};
use incidentflow::config::{self, JobConfig};
use incidentflow::error::JobError;
use incidentflow::ops::log;
use incidentflow::ops::shutdown::Shutdown;
use incidentflow::report::review;

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init();
    let result = match cli.command {
        Command::Run(args) => Shutdown::on_signals()
            .map_err(|e| JobError::Startup(format!("cannot handle SIGTERM: {e}")))
            .and_then(|stop| incidentflow::run::run(*args, stop)),
        Command::Eval(args) => incidentflow::evaluate::command(args),
        Command::Review { incidents } => review::run(&incidents).map(|text| print!("{text}")),
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", config::DEFAULT_FILE);
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file }) => {
            JobConfig::load_layered(Some(&file), std::env::vars()).map(|c| {
                println!(
                    "{}: valid ({} alert outputs, {} runbooks, {} silences)",
                    file.display(),
                    c.alerts.len(),
                    c.runbooks.len(),
                    c.silences.len()
                )
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("incidentflow: error: {message}");
            ExitCode::FAILURE
        }
    }
}
