//! The gvisor backend: the env runs on gVisor's user-space kernel (`runsc`, an OCI bundle the
//! shim writes). Its root is an overlay on the host like a container's, seen through the
//! image's own ids (gVisor's kernel, not a user namespace, separates it from the host).

use super::{EnvBackend, Files, HibernateWith, Launch, LaunchCtx};
use crate::error::{EngineError, EngineResult};
use verse_runtime::GvisorConfig;
use verse_spec::Backend;

/// runsc per env.
pub struct Gvisor;

impl EnvBackend for Gvisor {
    fn kind(&self) -> Backend {
        Backend::Gvisor
    }
    fn files(&self) -> Files {
        Files::Unsupported
    }
    fn hibernate(&self) -> HibernateWith {
        HibernateWith::Unsupported
    }
    fn launch(&self, ctx: &LaunchCtx<'_>) -> EngineResult<Launch> {
        prepare_gvisor(ctx.networked).map(Launch::Gvisor)
    }
}

/// runsc for a gvisor env; `networked`: host networking inside the namespace the shim
/// prepares and wires (`--network=host`), else no NIC (`--network=none`).
pub fn prepare_gvisor(networked: bool) -> EngineResult<GvisorConfig> {
    let runsc = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("runsc"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            EngineError::internal("gvisor envs need runsc, which is not installed")
                .hint("install Debian's runsc (scripts/install-deps.sh does)")
        })?;
    Ok(GvisorConfig {
        runsc,
        // gVisor's kvm platform hangs on nested-KVM hosts; ptrace works anywhere.
        platform: "ptrace".into(),
        network: networked,
    })
}
