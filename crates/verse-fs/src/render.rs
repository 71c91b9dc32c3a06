//! What each readable file holds, and what each listed directory has in it:
//! from the view's cache where the follower keeps it current (state, envs),
//! from one API call otherwise (the same call the CLI makes to show it).

use crate::tree::{EnvFile, ImageFile, Kind, Limit, NetFile, Node, QuarantineFile, Stat};
use crate::view::{View, errno_of};
use fuser::Errno;
use verse_api::{
    ClientError, EnvInfo, GenerationDetail, GenerationInfo, ImageDetail, ImageInfo, NetInfo,
    SnapshotInfo,
};

type Result<T> = std::result::Result<T, Errno>;

fn api<T>(r: std::result::Result<T, ClientError>) -> Result<T> {
    r.map_err(|e| errno_of(&e))
}

fn line(text: impl std::fmt::Display) -> Vec<u8> {
    format!("{text}\n").into_bytes()
}

async fn live(view: &View, env: &str) -> Result<EnvInfo> {
    let info: EnvInfo = api(view.client.get(&format!("/v1/envs/{env}")).await)?;
    Ok(info)
}

/// A number as the spec writes it: whole numbers without a fraction.
fn number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

fn limit(info: &EnvInfo, which: Limit) -> String {
    let value = match which {
        Limit::Cpu => info.cpu.map(number),
        Limit::Memory => info.memory.map(|m| m.to_string()),
        Limit::Pids => info.pids.map(|p| p.to_string()),
    };
    value.unwrap_or_else(|| "max".into())
}

/// JSON without nulls (TOML has none), as TOML under `[prefix]`.
fn toml_of(header: &str, path: &[&str], value: serde_json::Value) -> Result<Vec<u8>> {
    fn strip(v: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match v {
            Value::Null => None,
            Value::Object(map) => Some(Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| strip(v).map(|v| (k, v)))
                    .collect(),
            )),
            Value::Array(items) => {
                Some(Value::Array(items.into_iter().filter_map(strip).collect()))
            }
            other => Some(other),
        }
    }
    let mut value = strip(value).unwrap_or_default();
    for key in path.iter().rev() {
        value = serde_json::json!({ *key: value });
    }
    let text = toml::to_string(&value).map_err(|e| {
        tracing::warn!("rendering TOML: {e}");
        Errno::EIO
    })?;
    Ok(format!("{header}\n{text}").into_bytes())
}

/// The bytes of a file answered from the view's cache alone, if `node` is one.
pub fn cached(view: &View, node: &Node) -> Option<Result<Vec<u8>>> {
    let env = |name: &str| view.env(name).ok_or(Errno::ENOENT);
    Some(match node {
        Node::Status => Ok(view.status().into_bytes()),
        Node::EnvFile(name, EnvFile::State) => env(name).map(|i| line(i.state)),
        Node::EnvFile(name, EnvFile::Error) => env(name).map(|info| match view.error(name) {
            Some(text) => line(text),
            None => info.error.map(line).unwrap_or_default(),
        }),
        Node::Limit(name, which) => env(name).map(|i| line(limit(&i, *which))),
        _ => return None,
    })
}

/// The bytes of a readable file (not `console` and `events`, which stream).
pub async fn content(view: &View, node: &Node) -> Result<Vec<u8>> {
    if let Some(bytes) = cached(view, node) {
        return bytes;
    }
    Ok(match node {
        Node::EnvFile(env, EnvFile::Spec) => {
            let plan: serde_json::Value =
                api(view.client.get(&format!("/v1/envs/{env}/spec")).await)?;
            toml_of(
                &format!(
                    "# env `{env}` as the daemon runs it (read-only; change it with `verse apply`)"
                ),
                &["env", env],
                plan,
            )?
        }
        Node::Stat(env, Stat::Cpu) => {
            let info = live(view, env).await?;
            line(
                info.cpu_usage_ns
                    .map_or("-".into(), |ns| format!("{ns} ns")),
            )
        }
        Node::Stat(env, Stat::Memory) => {
            let info = live(view, env).await?;
            line(info.memory_bytes.map_or("-".into(), |b| b.to_string()))
        }
        Node::Stat(env, Stat::Pids) => {
            let info = live(view, env).await?;
            line(info.pids_current.map_or("-".into(), |n| n.to_string()))
        }
        Node::Stat(env, Stat::Net) | Node::NetFile(env, NetFile::Counters) => {
            let net: NetInfo = api(view.client.get(&format!("/v1/envs/{env}/net")).await)?;
            format!("allowed {}\ndropped {}\n", net.allowed, net.dropped).into_bytes()
        }
        Node::NetFile(env, NetFile::Policy) => {
            let net: NetInfo = api(view.client.get(&format!("/v1/envs/{env}/net")).await)?;
            let mut out = format!("mode {}\n", net.mode);
            for p in net.policy {
                out.push_str(&p);
                out.push('\n');
            }
            out.into_bytes()
        }
        Node::Snapshot(env, id) => {
            let snapshot = snapshots(view, env)
                .await?
                .into_iter()
                .find(|s| &s.id == id)
                .ok_or(Errno::ENOENT)?;
            let mut text = serde_json::to_string_pretty(&snapshot).expect("serialises");
            text.push('\n');
            text.into_bytes()
        }
        Node::ImageFile(name, which) => {
            let detail: ImageDetail = api(view.client.get(&format!("/v1/images/{name}")).await)?;
            match which {
                ImageFile::Size => line(detail.info.size),
                ImageFile::Layers => detail
                    .layers
                    .iter()
                    .map(|l| format!("{} {} {} {}\n", l.root, l.size, l.files, l.input))
                    .collect::<String>()
                    .into_bytes(),
                ImageFile::Signatures => detail
                    .signatures
                    .iter()
                    .map(|s| format!("{} {}\n", s.key, if s.valid { "valid" } else { "INVALID" }))
                    .collect::<String>()
                    .into_bytes(),
            }
        }
        Node::GenerationSpec(n) => {
            let detail: GenerationDetail =
                api(view.client.get(&format!("/v1/generations/{n}")).await)?;
            toml_of(
                &format!(
                    "# generation {n}, from {}{} (read-only)",
                    detail.info.source_file,
                    if detail.info.active { ", active" } else { "" }
                ),
                &[],
                detail.spec,
            )?
        }
        Node::QuarantineFile(id, which) => {
            let item: serde_json::Value =
                api(view.client.get(&format!("/v1/quarantine/{id}")).await)?;
            match which {
                QuarantineFile::State => line(item["state"].as_str().unwrap_or("?")),
                QuarantineFile::Report => {
                    let mut text = serde_json::to_string_pretty(&item).expect("serialises");
                    text.push('\n');
                    text.into_bytes()
                }
                QuarantineFile::Error => view
                    .error(&format!("quarantine/{id}"))
                    .map(line)
                    .unwrap_or_default(),
                QuarantineFile::Ctl => Vec::new(),
            }
        }
        Node::EnvFile(_, EnvFile::Ctl) => Vec::new(),
        _ => return Err(Errno::EISDIR),
    })
}

async fn snapshots(view: &View, env: &str) -> Result<Vec<SnapshotInfo>> {
    api(view.client.get(&format!("/v1/envs/{env}/snapshots")).await)
}

async fn generations(view: &View) -> Result<Vec<GenerationInfo>> {
    api(view.client.get("/v1/generations").await)
}

/// Where `generations/current` points.
pub async fn current_generation(view: &View) -> Result<u64> {
    generations(view)
        .await?
        .into_iter()
        .find(|g| g.active)
        .map(|g| g.id)
        .ok_or(Errno::ENOENT)
}

/// Whether a node named by a dynamic directory's entry exists (for lookup).
pub async fn exists(view: &View, node: &Node) -> Result<bool> {
    if let Some(env) = node.env()
        && view.env(env).is_none()
    {
        return Ok(false);
    }
    Ok(match node {
        Node::Snapshot(env, id) => snapshots(view, env).await?.iter().any(|s| &s.id == id),
        Node::Image(name) | Node::ImageFile(name, _) => {
            images(view).await?.iter().any(|i| &i.name == name)
        }
        Node::Generation(n) | Node::GenerationSpec(n) => {
            generations(view).await?.iter().any(|g| g.id == *n)
        }
        Node::Current => current_generation(view).await.is_ok(),
        Node::QuarantineItem(id) | Node::QuarantineFile(id, _) => quarantine(view)
            .await?
            .iter()
            .any(|i| i["id"].as_str() == Some(id)),
        _ => true,
    })
}

async fn images(view: &View) -> Result<Vec<ImageInfo>> {
    api(view.client.get("/v1/images").await)
}

async fn quarantine(view: &View) -> Result<Vec<serde_json::Value>> {
    api(view.client.get("/v1/quarantine").await)
}

/// The entries of a directory.
pub async fn list(view: &View, node: &Node) -> Result<Vec<(String, Kind)>> {
    if let Some(fixed) = node.fixed_children() {
        return Ok(fixed.into_iter().map(|(n, k)| (n.to_string(), k)).collect());
    }
    let dirs = |names: Vec<String>| names.into_iter().map(|n| (n, Kind::Dir)).collect();
    Ok(match node {
        Node::Envs => dirs(view.env_names()),
        Node::Snapshots(env) => snapshots(view, env)
            .await?
            .into_iter()
            .map(|s| (s.id, Kind::File))
            .collect(),
        Node::Images => dirs(images(view).await?.into_iter().map(|i| i.name).collect()),
        Node::Generations => {
            let all = generations(view).await?;
            let mut out: Vec<(String, Kind)> =
                all.iter().map(|g| (g.id.to_string(), Kind::Dir)).collect();
            if all.iter().any(|g| g.active) {
                out.push(("current".into(), Kind::Symlink));
            }
            out
        }
        Node::Quarantine => dirs(
            quarantine(view)
                .await?
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect(),
        ),
        Node::EnvPath(env, path) => {
            let at = env_path(view, env, path).await?;
            if at.entry.kind != "dir" {
                return Err(Errno::ENOTDIR);
            }
            at.entries
                .into_iter()
                .map(|e| {
                    let kind = entry_kind(&e);
                    (e.name, kind)
                })
                .collect()
        }
        _ => return Err(Errno::ENOTDIR),
    })
}

/// What `path` of `env` is (and a directory's entries).
pub async fn env_path(view: &View, env: &str, path: &str) -> Result<verse_api::EnvPath> {
    let query = verse_api::EnvFilesQuery {
        path: path.to_string(),
        ..Default::default()
    };
    api(view.client.get(&query.uri(env)).await)
}

/// Up to `length` bytes of the env's file `path` from `offset`.
pub async fn env_read(
    view: &View,
    env: &str,
    path: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>> {
    let query = verse_api::EnvFilesQuery {
        path: path.to_string(),
        read: true,
        offset,
        length: Some(length),
    };
    api(view.client.get_bytes(&query.uri(env)).await)
}

/// How an env's file shows: anything that is neither a directory nor a
/// symlink (devices, fifos, sockets too) as a file.
pub fn entry_kind(entry: &verse_api::FileEntry) -> Kind {
    match entry.kind.as_str() {
        "dir" => Kind::Dir,
        "symlink" => Kind::Symlink,
        _ => Kind::File,
    }
}
