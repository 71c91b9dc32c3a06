//! What each backend takes: one table, read by the validator (which refuses a key a backend
//! cannot honour, at the key), by the engine (which refuses a lifecycle operation a backend
//! cannot do) and by docs/spec.md's "What each backend takes" (a test renders this table and
//! compares). A rule such as "routers run on containers only" is written here once.

use crate::Backend;

/// A key or operation whose support differs between backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Accel,
    Limits,
    Network,
    Router,
    Volumes,
    Desktop,
    Shm,
    Downloads,
    /// `release_to` / `[copy]` naming the env: the daemon writes files into it.
    Files,
    Snapshots,
    Hibernate,
    Pause,
}

/// Whether a backend takes a feature: how, or why not (a sentence a person can act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes(&'static str),
    Refused(&'static str),
}

impl Support {
    pub fn is_yes(self) -> bool {
        matches!(self, Support::Yes(_))
    }
}

/// One row: the feature, what the docs call it, and its support on container, vm, gvisor.
pub struct Row {
    pub feature: Feature,
    pub key: &'static str,
    pub container: Support,
    pub vm: Support,
    pub gvisor: Support,
}

use Support::{Refused, Yes};

/// The table. Rows without a refusal say how each backend does it.
pub const TABLE: &[Row] = &[
    Row {
        feature: Feature::Accel,
        key: "`accel`",
        container: Refused(
            "only vm envs run on an accelerator; this env's backend is \"container\"",
        ),
        vm: Yes("used"),
        gvisor: Refused("only vm envs run on an accelerator; this env's backend is \"gvisor\""),
    },
    Row {
        feature: Feature::Limits,
        key: "`cpu`, `memory`, `pids`",
        container: Yes("the env's cgroup"),
        vm: Yes(
            "the cgroup around QEMU; also vCPUs (`cpu` rounded up, default 1) and guest RAM (`memory`, default 256 MiB)",
        ),
        gvisor: Yes("the cgroup around runsc and its sandbox"),
    },
    Row {
        feature: Feature::Network,
        key: "`network`, `reach`",
        container: Yes("yes"),
        vm: Yes("yes (a tap and a virtio-net NIC)"),
        gvisor: Yes("yes (host networking inside a namespace Verse wires)"),
    },
    Row {
        feature: Feature::Router,
        key: "`router = true`",
        container: Yes("yes"),
        vm: Refused(
            "routers run on the container backend only for now; this env's backend is \"vm\"",
        ),
        gvisor: Refused(
            "routers run on the container backend only for now; this env's backend is \"gvisor\"",
        ),
    },
    Row {
        feature: Feature::Volumes,
        key: "`volumes`",
        container: Yes("yes"),
        vm: Refused(
            "the vm backend takes no volumes yet (its guest shares no filesystem with the host); move files in with `verse copy`, or use backend = \"container\" or \"gvisor\"",
        ),
        gvisor: Yes("yes"),
    },
    Row {
        feature: Feature::Desktop,
        key: "`desktop`",
        container: Yes("yes"),
        vm: Refused(
            "the vm backend has no desktop yet (the display's socket is a volume); use backend = \"container\"",
        ),
        gvisor: Yes("accepted; not yet tested on this backend"),
    },
    Row {
        feature: Feature::Shm,
        key: "`shm`",
        container: Yes("the size of the env's /dev/shm"),
        vm: Refused(
            "vm and gvisor envs size /dev/shm in their own kernel (half their memory); this env's backend is \"vm\"",
        ),
        gvisor: Refused(
            "vm and gvisor envs size /dev/shm in their own kernel (half their memory); this env's backend is \"gvisor\"",
        ),
    },
    Row {
        feature: Feature::Downloads,
        key: "`downloads`",
        container: Yes("yes"),
        vm: Yes("yes (`/downloads` on the guest's disk, taken out by the agent)"),
        gvisor: Refused(
            "downloads = \"quarantine\" works on container and vm envs only for now; this env's backend is \"gvisor\"",
        ),
    },
    Row {
        feature: Feature::Files,
        key: "`release_to` / `[copy]` naming the env",
        container: Yes("yes"),
        vm: Yes("yes (written by the agent, as the env's user)"),
        gvisor: Refused("files move only between container and vm envs for now"),
    },
    Row {
        feature: Feature::Snapshots,
        key: "`snapshots`, `verse snapshot`",
        container: Yes("yes"),
        vm: Refused(
            "a vm env keeps its writes in a disk image its guest has mounted, not in an overlay layer; snapshots of vm envs are not built",
        ),
        gvisor: Yes("accepted; not yet tested on this backend"),
    },
    Row {
        feature: Feature::Hibernate,
        key: "`verse hibernate`",
        container: Yes("CRIU"),
        vm: Yes("QEMU migration to a file"),
        gvisor: Refused("the gvisor backend has no hibernate yet"),
    },
    Row {
        feature: Feature::Pause,
        key: "`verse pause`",
        container: Yes("the cgroup freezer"),
        vm: Yes("QEMU stops its vCPUs"),
        gvisor: Yes("the cgroup freezer"),
    },
];

impl Row {
    pub fn on(&self, backend: Backend) -> Support {
        match backend {
            Backend::Container => self.container,
            Backend::Vm => self.vm,
            Backend::Gvisor => self.gvisor,
        }
    }
}

impl Backend {
    /// Every backend, in the table's column order.
    pub const ALL: [Backend; 3] = [Backend::Container, Backend::Vm, Backend::Gvisor];

    /// Whether this backend takes `feature`.
    pub fn takes(self, feature: Feature) -> Support {
        TABLE
            .iter()
            .find(|row| row.feature == feature)
            .map(|row| row.on(self))
            .expect("every feature has a row in caps::TABLE")
    }
}

/// The table as docs/spec.md shows it (a test keeps the two equal).
pub fn markdown() -> String {
    let mut out = String::from("| key | container | vm | gvisor |\n|---|---|---|---|\n");
    for row in TABLE {
        let cell = |s: Support| match s {
            Yes(how) => how.to_string(),
            Refused(why) => format!("refused: {why}"),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.key,
            cell(row.container),
            cell(row.vm),
            cell(row.gvisor)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_has_exactly_one_row() {
        let all = [
            Feature::Accel,
            Feature::Limits,
            Feature::Network,
            Feature::Router,
            Feature::Volumes,
            Feature::Desktop,
            Feature::Shm,
            Feature::Downloads,
            Feature::Files,
            Feature::Snapshots,
            Feature::Hibernate,
            Feature::Pause,
        ];
        for f in all {
            assert_eq!(TABLE.iter().filter(|r| r.feature == f).count(), 1, "{f:?}");
        }
        assert_eq!(TABLE.len(), all.len());
    }

    #[test]
    fn docs_show_the_table() {
        let doc = include_str!("../../../docs/spec.md");
        let table = markdown();
        assert!(
            doc.contains(&table),
            "docs/spec.md's \"What each backend takes\" differs from verse_spec::caps::TABLE; it should read:\n{table}"
        );
    }
}
