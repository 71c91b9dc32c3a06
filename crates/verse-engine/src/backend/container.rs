//! The container backend: Verse's own runtime (verse-sandbox) under the shim. The env's ids
//! map onto a host range of its own through a user namespace, and the host reaches its root
//! directly.

use super::{EnvBackend, Files, HibernateWith, Launch, LaunchCtx};
use crate::error::EngineResult;
use verse_spec::Backend;

/// Namespaces, cgroups, an overlay root.
pub struct Container;

impl EnvBackend for Container {
    fn kind(&self) -> Backend {
        Backend::Container
    }
    fn own_id_range(&self) -> bool {
        true
    }
    fn files(&self) -> Files {
        Files::HostRoot
    }
    fn hibernate(&self) -> HibernateWith {
        HibernateWith::Criu
    }
    fn launch(&self, _: &LaunchCtx<'_>) -> EngineResult<Launch> {
        Ok(Launch::Container)
    }
}
