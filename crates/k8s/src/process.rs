//! What every metalgate binary does around its command: logging to stderr and a runtime.

use std::future::Future;
use std::process::ExitCode;

/// Set up logging from `RUST_LOG` (default `info`), to stderr.
pub fn init_tracing() {
    init_tracing_at("info");
}

/// [`init_tracing`] with another default level (`RUST_LOG` still wins): client commands log
/// only warnings, so their output is theirs.
pub fn init_tracing_at(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A closed stderr (the reader of a pipe gone) must not turn a log line into a panic:
    // tracing-subscriber reports its own write errors with eprintln!, which panics then.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

/// Run a binary's command on a multi-threaded runtime; an error is printed and fails the exit.
pub fn block_on_main(command: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
