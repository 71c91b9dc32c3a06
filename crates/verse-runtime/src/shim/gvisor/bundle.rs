//! The gvisor backend's OCI bundle and runsc command lines: an env runs on
//! gVisor's user-space kernel (runsc), from a bundle generated here.
//!
//! The rootfs is the same overlay of read-only layers and a per-env upper
//! directory as a container's, with unshifted ids, mounted by the shim in a
//! private mount namespace (so it vanishes with the shim). runsc runs with
//! `--network=none` (no network device at all besides loopback) or, for a
//! networked env, `--network=host` inside the network namespace the shim made
//! and Verse wired and filters (see [`GvisorConfig::network`]); and the ptrace
//! platform: the kvm platform hangs under nested KVM. Volumes are OCI bind mounts.

use crate::config::ShimConfig;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a gVisor env runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GvisorConfig {
    /// The runsc binary.
    pub runsc: PathBuf,
    /// gVisor platform: "ptrace" (works everywhere) or "kvm".
    pub platform: String,
    /// The sandbox has a network: `--network=host` inside the network namespace named in
    /// the bundle (one Verse made and wired, filtered by the host's rules); otherwise
    /// `--network=none`. gVisor's own netstack (`--network=sandbox`) would be the narrower
    /// surface, but Debian's runsc (20221219) refuses it on current kernels: it mistakes
    /// every namespace for the root one (it tests for /proc/sys/net/core/rmem_default).
    #[serde(default)]
    pub network: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GvisorError {
    #[error("building the OCI spec: {0}")]
    Spec(String),
    #[error("writing the OCI bundle {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// CFS period for the cpu quota (the kernel's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

/// Writes `dir/config.json` for the env of `config`, on its mounted rootfs;
/// `netns`: the network namespace the sandbox joins (a file it is
/// bind-mounted on), else a new, empty one. Returns the bundle directory.
pub fn write_bundle(
    dir: &Path,
    config: &ShimConfig,
    netns: Option<&Path>,
) -> Result<PathBuf, GvisorError> {
    let spec_err = |e: oci_spec::OciSpecError| GvisorError::Spec(e.to_string());
    let user = UserBuilder::default()
        .uid(config.uid)
        .gid(config.gid)
        .build()
        .map_err(spec_err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(config.argv.clone())
        .env(
            config
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(config.cwd.clone())
        .user(user)
        .no_new_privileges(true)
        .build()
        .map_err(spec_err)?;
    let root = RootBuilder::default()
        .path(config.mountpoint())
        .readonly(false)
        .build()
        .map_err(spec_err)?;
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(bytes) = config.memory {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(bytes as i64)
                .build()
                .map_err(spec_err)?,
        );
    }
    if let Some(cores) = config.cpu {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota((cores * CPU_PERIOD_US as f64) as i64)
                .period(CPU_PERIOD_US)
                .build()
                .map_err(spec_err)?,
        );
    }
    if let Some(max) = config.pids {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(max as i64)
                .build()
                .map_err(spec_err)?,
        );
    }
    // The default namespaces (pid, network, ipc, uts, mount) are the
    // sandbox's own, inside gVisor's kernel.
    let default_linux = Spec::default().linux().clone().unwrap_or_default();
    let mut namespaces = default_linux.namespaces().clone().unwrap_or_default();
    if let Some(path) = netns {
        for ns in &mut namespaces {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(path.to_path_buf()));
            }
        }
    }
    let mut mounts = Spec::default().mounts().clone().unwrap_or_default();
    for volume in &config.volumes {
        let mut options = vec!["rbind".to_string()];
        options.push(if volume.readonly { "ro" } else { "rw" }.to_string());
        mounts.push(
            MountBuilder::default()
                .destination(volume.path.clone())
                .typ("bind")
                .source(volume.host.clone())
                .options(options)
                .build()
                .map_err(spec_err)?,
        );
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(default_linux.masked_paths().clone().unwrap_or_default())
        .readonly_paths(default_linux.readonly_paths().clone().unwrap_or_default())
        .resources(resources.build().map_err(spec_err)?)
        .build()
        .map_err(spec_err)?;
    let mut spec = Spec::default();
    spec.set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(config.hostname.clone()))
        .set_mounts(Some(mounts))
        .set_linux(Some(linux));
    std::fs::create_dir_all(dir).map_err(|source| GvisorError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join("config.json");
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| GvisorError::Spec(e.to_string()))?;
    std::fs::write(&path, json).map_err(|source| GvisorError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(dir.to_path_buf())
}

impl GvisorConfig {
    /// `runsc` with the global flags every call of one env shares.
    pub fn runsc(&self, state_dir: &Path) -> Command {
        let mut c = Command::new(&self.runsc);
        c.arg("--root")
            .arg(state_dir)
            .arg(format!("--platform={}", self.platform))
            .arg(if self.network {
                "--network=host"
            } else {
                "--network=none"
            })
            // The shim puts runsc in the env's cgroup, which holds the
            // limits; runsc must not make cgroups of its own.
            .arg("--ignore-cgroups");
        c
    }

    /// `runsc run`: creates and starts the sandbox, runs the main command in
    /// the foreground, forwards signals to it, exits with its status.
    pub fn run_command(&self, state_dir: &Path, bundle: &Path, id: &str) -> Command {
        let mut c = self.runsc(state_dir);
        c.arg("run").arg("--bundle").arg(bundle).arg(id);
        c
    }

    /// `runsc exec`: another process in the running sandbox.
    pub fn exec_command(
        &self,
        state_dir: &Path,
        id: &str,
        argv: &[String],
        env: &[(String, String)],
        cwd: &Path,
        (uid, gid): (u32, u32),
    ) -> Command {
        let mut c = self.runsc(state_dir);
        c.arg("exec").arg("--cwd").arg(cwd);
        c.arg("--user").arg(format!("{uid}:{gid}"));
        for (k, v) in env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        c.arg(id).args(argv);
        c
    }

    /// `runsc state`: JSON with the sandbox's `status`.
    pub fn state_command(&self, state_dir: &Path, id: &str) -> Command {
        let mut c = self.runsc(state_dir);
        c.arg("state").arg(id);
        c
    }

    /// `runsc delete --force`: ends the sandbox and forgets its state.
    pub fn delete_command(&self, state_dir: &Path, id: &str) -> Command {
        let mut c = self.runsc(state_dir);
        c.arg("delete").arg("--force").arg(id);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_carries_command_limits_and_root() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundle");
        let config = ShimConfig {
            hostname: "h".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![("PATH".into(), "/bin".into())],
            cpu: Some(0.5),
            memory: Some(64 << 20),
            pids: Some(100),
            volumes: vec![crate::config::VolumeMount {
                host: "/host".into(),
                path: "/data".into(),
                readonly: true,
            }],
            ..ShimConfig::sample()
        };
        write_bundle(&dir, &config, Some(Path::new("/n"))).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(json["root"]["path"], "/e/rootfs");
        assert_eq!(json["hostname"], "h");
        assert_eq!(json["process"]["args"][2], "true");
        assert_eq!(json["process"]["env"][0], "PATH=/bin");
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 100);
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n["path"] == "/n")
        );
        let mount = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .expect("the volume's mount");
        assert_eq!(
            (mount["source"].as_str(), mount["options"][1].as_str()),
            (Some("/host"), Some("ro"))
        );
    }
}
