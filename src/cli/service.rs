//! `aes67 run` (the service) and `aes67 status` (its client).

use std::path::PathBuf;

use clap::Args;

use aes67::service::config::{Config, DEFAULT_STATUS_SOCKET};

/// Arguments of `aes67 run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The config file (TOML, docs/config.md).
    #[arg(long, short, default_value = "/etc/aes67/aes67.toml")]
    config: PathBuf,
    /// Validate the config and exit: 0 when valid, 2 with one line per
    /// problem (each naming its field) when not.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    check: Option<PathBuf>,
}

/// Arguments of `aes67 status`.
#[derive(Args)]
pub(crate) struct StatusArgs {
    /// Print the raw JSON status instead of the summary.
    #[arg(long)]
    json: bool,
    /// The service's status socket.
    #[arg(long, default_value = DEFAULT_STATUS_SOCKET)]
    socket: PathBuf,
}

/// Logs through tracing: to the journal with its fields when stderr is
/// the journal (`JOURNAL_STREAM`), else as text on stderr. The level comes
/// from `RUST_LOG` (default `info`).
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(j) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(j.with_syslog_identifier("aes67".into()))
            .try_init();
        return;
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init();
}

/// `aes67 run`: 0 after a clean stop, 2 when the config is invalid at start.
pub(crate) fn run(a: RunArgs) -> i32 {
    if let Some(p) = a.check {
        let p = if p.as_os_str().is_empty() {
            a.config
        } else {
            p
        };
        return match Config::load(&p) {
            Ok(c) => {
                println!(
                    "{}: ok ({} PTP port(s), {} receiver(s), {} sender(s))",
                    p.display(),
                    c.ptp.len(),
                    c.receivers.len(),
                    c.senders.len()
                );
                0
            }
            Err(e) => {
                for l in &e.0 {
                    eprintln!("{}: {l}", p.display());
                }
                2
            }
        };
    }
    init_logging();
    match aes67::service::run(&a.config, super::signal::flag()) {
        Ok(()) => 0,
        Err(e) => {
            for l in &e.0 {
                eprintln!("aes67: {}: {l}", a.config.display());
            }
            2
        }
    }
}

/// `aes67 status`: 0 with the summary (or JSON), 1 when no service answers.
pub(crate) fn status(a: StatusArgs) -> i32 {
    match aes67::service::control::query(&a.socket) {
        Ok(st) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
            } else {
                print!("{}", st.screen());
            }
            0
        }
        Err(e) => {
            eprintln!("aes67 status: {e}");
            1
        }
    }
}
