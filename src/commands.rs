//! From a parsed command line to the code that does it.

use std::process::ExitCode;

use crate::cli::{Cli, Command, GitopsCommand};
use crate::{gitops_cli, run};

/// Run a parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(*args).await.map(|_| ExitCode::SUCCESS),
        #[cfg(feature = "lab")]
        Command::Lab(cmd) => metalgate_lab::dispatch(cmd).await,
        Command::Controller(a) => run::controller(a).await.map(|_| ExitCode::SUCCESS),
        Command::Speaker(a) => run::speaker(a).await.map(|_| ExitCode::SUCCESS),
        Command::Gitops(GitopsCommand::Run(a)) => run::gitops(a).await.map(|_| ExitCode::SUCCESS),
        Command::Gitops(cmd) => gitops_cli::dispatch(cmd).await,
        Command::Proxy(a) => metalgate_proxy::cli::run(a)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Crdgen => {
            print!("{}", metalgate_k8s::crd::yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "lab")]
        Command::DemoBackend(a) => {
            let settings = metalgate_lab::demo::Settings::from_env(a.kind, a.hostname);
            metalgate_lab::demo::serve(a.listen, settings)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
    }
}
