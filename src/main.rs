//! The `metalgate` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

// jemalloc: under load the proxy allocates per request on every thread; glibc's malloc spent a
// sixth of the proxy's CPU in its arenas' locks and bookkeeping, and req/s varied by a third
// from run to run (perf and bench/proxy.sh).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = metalgate::cli::Cli::parse();
    metalgate_k8s::process::init_tracing_at(if cli.is_client_command() {
        "warn"
    } else {
        "info"
    });
    let runtime = cli.main_runtime();
    metalgate_k8s::process::block_on_main_in(runtime, metalgate::commands::dispatch(cli))
}
