//! `metalgate-proxy`: the ingress alone (what `metalgate proxy` runs), without the API store,
//! speaker and controller in the binary — less code paged in when it runs by itself (the
//! benchmarks). The image ships `metalgate` only: on a node its processes share that binary's
//! code pages, which a separate proxy binary would not (`bench/node_memory.py`).
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
    metalgate_k8s::process::init_tracing();
    let cli = Cli::parse();
    metalgate_k8s::process::block_on_main_in(metalgate_proxy::cli::MAIN_RUNTIME, async {
        metalgate_proxy::cli::run(cli.args)
            .await
            .map(|()| std::process::ExitCode::SUCCESS)
    })
}
