//! The `metalgate` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

// jemalloc: under load the proxy allocates per request on every thread; glibc's malloc spent a
// sixth of the proxy's CPU in its arenas' locks and bookkeeping, and req/s varied by a third
// from run to run (perf and bench/proxy.sh).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    metalgate::cli::init_tracing();
    let cli = metalgate::cli::Cli::parse();
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
    match rt.block_on(metalgate::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
