//! PTP driver and precision harness.
//!
//! - `ptp_harness run <aes67 ptp args>`: the same as `aes67 ptp …` (calls
//!   `aes67::ptp::run`), until the lead wires the subcommand into the CLI.
//! - `ptp_harness bench [--seconds S]`: the precision harness (needs root,
//!   ptp4l): see `aes67::ptp::harness`.
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the PTP ordinary clock (as `aes67 ptp`).
    Run(aes67::ptp::PtpArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => aes67::ptp::run(a),
    };
    std::process::exit(code);
}
