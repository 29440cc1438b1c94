//! `campaign sandbox`: a local Intercom to rehearse against, until Ctrl-C.
use crate::cli::SandboxArgs;

pub(super) fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let (config, listen) = args.settings();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(crate::sandbox::serve_forever(config, listen))
}
