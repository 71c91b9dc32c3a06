//! Request and response bodies of the HTTP API (JSON).

use crate::words;
use serde::{Deserialize, Serialize};

/// The one state vocabulary used everywhere (CLI, API, UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvState {
    Created,
    Running,
    Stopped,
    Failed,
    Paused,
    Hibernated,
}

impl std::fmt::Display for EnvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = match self {
            EnvState::Created => "created",
            EnvState::Running => "running",
            EnvState::Stopped => "stopped",
            EnvState::Failed => "failed",
            EnvState::Paused => "paused",
            EnvState::Hibernated => "hibernated",
        };
        f.write_str(word)
    }
}

/// Where an env came from: the applied spec, or a one-off `verse run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Spec,
    Run,
}

words! {
    /// How an env is isolated: the spec's `backend`, as the API reports it.
    pub enum Backend("backend") {
        /// Linux namespaces, cgroups, overlayfs, seccomp, landlock.
        Container = "container",
        /// A QEMU microVM with its own guest kernel.
        Vm = "vm",
        /// gVisor's user-space kernel (runsc).
        Gvisor = "gvisor",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvInfo {
    pub name: String,
    pub state: EnvState,
    pub backend: Backend,
    pub image: String,
    pub origin: Origin,
    pub ephemeral: bool,
    /// Declared cpu limit in cores.
    pub cpu: Option<f64>,
    /// Declared memory limit in bytes.
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// Host pid of the env's PID 1 while running.
    pub pid: Option<u32>,
    /// Unix seconds of the last start.
    pub started_at: Option<i64>,
    pub uptime_secs: Option<u64>,
    /// Exit code of the env's main process once it stopped or failed.
    pub exit_code: Option<i32>,
    /// Why the env failed, when it did.
    pub error: Option<String>,
    /// Measured use while running.
    pub cpu_usage_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Result of the env's health check: "healthy", "unhealthy", "starting", or
    /// `None` when it declares none.
    #[serde(default)]
    pub health: Option<String>,
    /// What the daemon did on its own, e.g. a fallback to the previous definition.
    #[serde(default)]
    pub note: Option<String>,
    /// The env's virtual display, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<DesktopInfo>,
    /// Colour and name shown on its tab and around its desktop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<EnvLabel>,
    /// Network mode: none, nat, allow, proxy or via (`None` from older daemons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// What the mode lets through, in a few words ("example.org:443, 10.0.0.0/8:*").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_detail: Option<String>,
    /// `downloads = "quarantine"`: its `/downloads` is watched and held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<DownloadsInfo>,
    /// Container envs: the host uid and gid of the env's root; its ids 0..65536 are
    /// host ids `host_id_base..+65536`, a range no other env has (`chown` a volume
    /// directory to it to let the env's root write there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id_base: Option<u32>,
    /// Processes (and threads) in the env's cgroup now, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_current: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadsInfo {
    pub hold_ms: u64,
    /// `ENV[:PATH]` clean files go to once held long enough; `None`: they wait
    /// for a person.
    #[serde(default)]
    pub release_to: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesktopInfo {
    pub wm: String,
    /// "WIDTHxHEIGHT".
    pub size: String,
    /// Which way cut text may cross: "none", "in" (browser to env), "out"
    /// (env to browser) or "both".
    #[serde(default = "clipboard_none")]
    pub clipboard: String,
}

fn clipboard_none() -> String {
    "none".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvLabel {
    /// "#rrggbb".
    pub color: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    /// The top layer's root tree hash (BLAKE3, hex).
    pub root: String,
    /// Sum of file sizes over all layers.
    pub size: u64,
    pub files: u64,
    pub created_at: i64,
    /// The image manifest's hash (layers + run config); names what is signed.
    #[serde(default)]
    pub manifest: String,
    /// Number of layers.
    #[serde(default)]
    pub layers: usize,
    /// Bytes of file content no other image holds (filled by `GET /v1/images`).
    #[serde(default)]
    pub unique_bytes: u64,
    /// Bytes of file content this image shares with at least one other image.
    #[serde(default)]
    pub shared_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRequest {
    pub name: String,
    /// Absolute host path of a directory or a tar (plain, gzip, zstd), an image archive
    /// (OCI layout, docker/podman save) or an OCI layout directory.
    pub path: String,
    /// Which image of an archive holding several (`verse image import NAME FILE:TAG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    pub image: ImageInfo,
    /// Bytes the store did not already hold.
    pub new_bytes: u64,
    pub millis: u64,
    /// The image's name in the archive it came from, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Device nodes left out of an image archive's layers (envs get their own /dev).
    #[serde(default)]
    pub devices_left_out: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathChange {
    pub path: String,
    /// "changed", "added" or "missing".
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub image: String,
    pub root: String,
    pub changes: Vec<PathChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The name shown in diagnostics (usually the path the user gave).
    pub file_name: String,
    pub source: String,
    /// Compute and return the plan without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Absolute directory of the spec file: `"./path"` files of images are read from it.
    #[serde(default)]
    pub spec_dir: Option<String>,
}

words! {
    /// What `verse apply` does to one env to reach the spec (also the audit log's action).
    pub enum ApplyAction("apply action") {
        /// A new env: recorded and started.
        Create = "create",
        /// Only its network policy changed and it is running: new rules, same env.
        Network = "network",
        /// Its definition changed: applied live or by a restart (see [`Applies`]).
        Update = "update",
        /// Declared and unchanged, but not running: started.
        Start = "start",
        Unchanged = "unchanged",
        /// No longer in the spec: stopped and removed.
        Remove = "remove",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedAction {
    pub env: String,
    pub action: ApplyAction,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyReport {
    pub generation: Option<u64>,
    pub actions: Vec<PlannedAction>,
    /// Envs that failed to reach their declared state, with the reason.
    pub failures: Vec<PlannedAction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationInfo {
    pub id: u64,
    pub created_at: i64,
    pub digest: String,
    pub source_file: String,
    pub active: bool,
    pub envs: Vec<String>,
}

/// `POST /v1/generations/gc`: keep the newest `keep` generations and the active one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GenerationsGcRequest {
    pub keep: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GenerationsGcReport {
    pub removed: Vec<u64>,
    pub kept: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// Generation to re-activate; default: the one before the active one.
    pub generation: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub tty: bool,
    pub cwd: Option<String>,
    #[serde(default)]
    pub rows: u16,
    #[serde(default)]
    pub cols: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRequest {
    pub image: String,
    pub name: Option<String>,
    /// Remove the env, its writable layer and its record when the command exits.
    #[serde(default)]
    pub rm: bool,
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub rows: u16,
    #[serde(default)]
    pub cols: u16,
    /// `verse run --disk SIZE`: the env's writes go to a filesystem of this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
}

/// A spec diagnostic, positioned in the user's file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every non-2xx response carries this body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub hint: Option<String>,
    #[serde(default)]
    pub diagnostics: Vec<Diagnostic>,
    /// Paths found changed when a layer failed verification.
    #[serde(default)]
    pub changes: Vec<PathChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub root: String,
    pub pid: u32,
}

/// `verse net show NAME`: an env's network, policy in words, effective rules, counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetInfo {
    pub env: String,
    /// none, nat, allow, proxy or via.
    pub mode: String,
    pub address: Option<String>,
    pub gateway: Option<String>,
    /// Host-side interface.
    pub interface: Option<String>,
    /// The policy in words.
    pub policy: Vec<String>,
    /// The env's nftables chain as installed.
    pub rules: Vec<String>,
    /// New connections let through.
    pub allowed: u64,
    /// Packets dropped by the env's policy.
    pub dropped: u64,
    pub router: bool,
}

/// `POST /v1/compose`: natural language in, a checked spec fragment out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComposeRequest {
    /// What the person asked for, in their words.
    pub prompt: String,
    /// The env's name; derived from the words when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/compose/add`: add a composed fragment's new envs (and images) to the active
/// generation's spec, leaving every env already declared as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComposeAddRequest {
    /// The fragment, as TOML (what `POST /v1/compose` answered, possibly edited).
    pub toml: String,
    /// Only say what would change.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComposeAddReport {
    /// The generation the fragment was merged into (`None`: no spec applied yet).
    pub base_generation: Option<u64>,
    /// The new generation, once applied.
    pub generation: Option<u64>,
    /// Env names the fragment adds.
    pub added: Vec<String>,
    /// What applying the merged spec changes, per env (only the added envs are acted on).
    pub diff: DiffReport,
    /// What was done, once applied.
    pub report: Option<ApplyReport>,
}

words! {
    /// What an event says happened to an env.
    pub enum EventKind("event kind") {
        Created = "created",
        Started = "started",
        Stopped = "stopped",
        /// Its main process ended on its own.
        Exited = "exited",
        Failed = "failed",
        Paused = "paused",
        Unpaused = "unpaused",
        Snapshot = "snapshot",
        SnapshotFailed = "snapshot-failed",
        SnapshotRemoved = "snapshot-removed",
        Restored = "restored",
        /// The restart policy will start it again after a backoff.
        Restarting = "restarting",
        /// Its health check's verdict changed.
        Health = "health",
        /// A new definition did not prove healthy; the previous one is back.
        Fallback = "fallback",
        Updated = "updated",
        Removed = "removed",
        Hibernated = "hibernated",
        HibernateRefused = "hibernate-refused",
        Resumed = "resumed",
        /// Its network policy dropped packets.
        NetDrop = "net-drop",
    }
}

/// One lifecycle transition of an env, as `verse events` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventInfo {
    /// Increases by one per event, across daemon restarts.
    pub id: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    pub env: String,
    pub kind: EventKind,
    /// The state the env is in after the event, when it has one.
    pub state: Option<EnvState>,
    /// Why: who asked, or what was observed.
    pub cause: String,
}

/// `POST /v1/diff`: what applying a spec would change, env by env.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiffReport {
    pub envs: Vec<EnvDiff>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvDiff {
    pub env: String,
    pub action: ApplyAction,
    pub applies: Applies,
    pub changes: Vec<FieldChange>,
}

words! {
    /// How applying a spec reaches one env.
    pub enum Applies("way a diff applies") {
        /// Applied to the running env in place.
        Live = "live",
        /// The env is stopped and started again.
        Restart = "restart",
        Start = "start",
        Stop = "stop",
        /// Nothing to do.
        Nothing = "none",
    }
}

words! {
    /// How one changed field reaches a running env.
    pub enum ChangeApplies("way a change applies") {
        /// Applied in place (cgroup limits, what only the daemon acts on).
        Live = "live",
        /// Needs the env stopped and started again.
        Restart = "restart",
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    pub applies: ChangeApplies,
}

/// A point-in-time copy of an env's writable layer, stored as a layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Short id, unique per env (`s1`, `s2`, ...).
    pub id: String,
    pub env: String,
    pub label: Option<String>,
    /// Layer root hash in the store.
    pub root: String,
    /// Bytes of file content in the snapshot (shared with the store, not copied).
    pub size: u64,
    pub files: u64,
    /// Bytes the store did not already hold when it was taken.
    pub new_bytes: u64,
    pub created_at: i64,
    /// "user" or "schedule".
    pub origin: String,
    /// How long the env was frozen while it was taken, milliseconds.
    pub frozen_ms: u64,
    /// The read-write volumes copied with it (`verse snapshot --volumes`); empty otherwise.
    #[serde(default)]
    pub volumes: Vec<VolumeSnapshot>,
}

/// A read-write volume's host directory as it was when a snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSnapshot {
    /// Where the volume is mounted inside the env.
    pub path: String,
    /// The host directory.
    pub host: String,
    /// Layer root hash in the store (host ids kept as they are).
    pub root: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotRequest {
    pub label: Option<String>,
    /// Also copy the env's read-write volumes.
    #[serde(default)]
    pub volumes: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub snapshot: String,
}

/// Where the daemon serves the web UI (`verse web`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebInfo {
    /// The URL to open, with the daemon's secret; `None` when not serving.
    pub url: Option<String>,
    /// Why the UI is not served, when it is not.
    pub error: Option<String>,
}

/// The answer of `DELETE /v1/envs/NAME` and `DELETE /v1/envs/NAME/snapshots/ID`: what
/// was removed (the env's name, or the snapshot's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: String,
}

/// `GET /v1/events?follow=&after=&env=&limit=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventQuery {
    /// Keep the response open and send new events as they happen.
    #[serde(default)]
    pub follow: bool,
    /// Only events with a larger id.
    #[serde(default)]
    pub after: u64,
    /// Only events of this env.
    pub env: Option<String>,
    /// At most this many past events (the newest); default 1000.
    pub limit: Option<u64>,
}

/// A line of `GET /v1/events?follow=true` that is not an event: this many events
/// happened too fast for this follower and were not sent (`verse events` from the
/// log sees them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsLagged {
    pub lagged: u64,
}

/// `GET /v1/envs/NAME/logs?follow=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogsQuery {
    /// Keep the response open and send new output as it is written.
    #[serde(default)]
    pub follow: bool,
}

/// `?progress=true` on a long route (image import and build) asks for a stream of
/// progress events instead of one answer at the end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgressQuery {
    #[serde(default)]
    pub progress: bool,
}

/// `POST /v1/envs/NAME/hibernate?discard=&timeout_ms=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HibernateQuery {
    /// Drop the saved processes of a hibernated env instead.
    #[serde(default)]
    pub discard: bool,
    /// How long CRIU may take to stop the env's processes (its `--timeout`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `POST /v1/envs/{name}/limits` (`verse limit`): new cgroup limits, applied
/// to the running env in place (a stopped env gets them at its next start).
/// The query of `GET /v1/envs/{name}/files`: without `read`, the answer is a
/// JSON [`EnvPath`] (what `path` is, and a directory's entries); with
/// `read=true`, it is up to `length` raw bytes of the regular file `path`
/// from `offset` (`application/octet-stream`; at most [`MAX_FILE_CHUNK`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvFilesQuery {
    /// An absolute path as the env sees it.
    pub path: String,
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub length: Option<u64>,
}

impl EnvFilesQuery {
    /// `GET /v1/envs/{env}/files?...` for this query.
    pub fn uri(&self, env: &str) -> String {
        let query = serde_urlencoded::to_string(self).expect("plain fields encode");
        format!("/v1/envs/{env}/files?{query}")
    }
}

/// The most bytes one `read=true` call returns.
pub const MAX_FILE_CHUNK: u64 = 1 << 20;

/// What a path of an env is, and (a directory) what is in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvPath {
    pub path: String,
    /// The path itself, not followed if it is a symlink.
    pub entry: FileEntry,
    /// A directory's entries (names that are not UTF-8 are left out);
    /// empty for anything else.
    #[serde(default)]
    pub entries: Vec<FileEntry>,
}

/// One file of an env, as `lstat` sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
    /// Permission bits (`0o7777` of `st_mode`).
    pub mode: u32,
    /// Unix seconds of the last change of its content.
    pub mtime: i64,
    /// A symlink's target, as written in the env (never followed on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A field left out keeps its value. They hold until the next `verse apply`
/// declares the env again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LimitsRequest {
    /// Cores, fractions allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// `GET /v1/generations/{id}`: one generation and the spec it recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationDetail {
    pub info: GenerationInfo,
    /// The spec as the daemon keeps it (canonical JSON of the parsed spec).
    pub spec: serde_json::Value,
}
