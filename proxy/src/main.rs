//! `metalgate-proxy`: the ingress alone (what `metalgate proxy` runs), without the API store,
//! speaker and controller in the binary — less code paged in for a proxy Deployment.
#![forbid(unsafe_code)]

use clap::Parser;

// As in `metalgate`: glibc's malloc cost the proxy a sixth of its CPU under load.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// metalgate's Pingora ingress, against a cluster or a metalgate store.
#[derive(Debug, Parser)]
#[command(name = "metalgate-proxy", version, about)]
struct Cli {
    #[command(flatten)]
    args: metalgate_proxy::cli::ProxyArgs,
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(metalgate_proxy::cli::run(cli.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
