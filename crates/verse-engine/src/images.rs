//! Images: builds from the spec, manifests, inspection, signatures, trust and collection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use verse_api::{
    BuildReport, BuildRequest, ExportReport, ExportRequest, ImageDetail, ImageGcReport, ImageInfo,
    LayerDetail, SignatureDetail, SignatureRequest,
};
use verse_runtime::ID_BASE;
use verse_spec::Spec;
use verse_store::{Hash, Manifest, ManifestLayer};

use crate::Engine;
use crate::db::now;
use crate::error::{EngineError, EngineResult};

fn not_found(name: &str) -> EngineError {
    EngineError::not_found(format!("no image named `{name}`")).hint("`verse image ls` lists images")
}

fn parse_hash(what: &str, s: &str) -> EngineResult<Hash> {
    s.parse()
        .map_err(|e| EngineError::internal(format!("{what} has a bad hash: {e}")))
}

/// The manifest of an image record (images imported before manifests existed get a
/// one-layer manifest on the fly).
pub fn manifest_of(daemon: &Engine, image: &ImageInfo) -> EngineResult<(Hash, Manifest)> {
    if image.manifest.is_empty() {
        let root = parse_hash(&image.name, &image.root)?;
        let m = Manifest {
            layers: vec![ManifestLayer {
                root,
                input: "import".into(),
            }],
            config: Default::default(),
        };
        return Ok((m.hash(), m));
    }
    let h = parse_hash(&image.name, &image.manifest)?;
    let m = daemon.store.manifest(&h).map_err(|e| {
        EngineError::internal(format!("image `{}`: {e}", image.name))
            .hint("re-import or rebuild the image")
    })?;
    Ok((h, m))
}

/// Records image `name` as the manifest `h`.
fn record(daemon: &Engine, name: &str, h: Hash) -> EngineResult<ImageInfo> {
    let m = daemon.store.manifest(&h).map_err(EngineError::internal)?;
    let (mut size, mut files) = (0, 0);
    for l in &m.layers {
        let info = daemon
            .store
            .layer_info(&l.root)
            .map_err(EngineError::internal)?;
        size += info.size;
        files += info.files;
    }
    let image = ImageInfo {
        name: name.to_string(),
        root: m
            .layers
            .last()
            .map(|l| l.root.to_string())
            .unwrap_or_default(),
        size,
        files,
        created_at: now(),
        manifest: h.to_string(),
        layers: m.layers.len(),
        unique_bytes: 0,
        shared_bytes: 0,
    };
    daemon.db.put_image(&image)?;
    Ok(image)
}

/// After `verse image import` of a directory or rootfs tar: a one-layer manifest.
pub fn record_single_layer(
    daemon: &Engine,
    name: &str,
    layer: &verse_store::Layer,
    path: &str,
) -> EngineResult<ImageInfo> {
    let m = Manifest {
        layers: vec![ManifestLayer {
            root: layer.root,
            input: format!("import {path}"),
        }],
        config: Default::default(),
    };
    let h = daemon
        .store
        .put_manifest(&m)
        .map_err(EngineError::internal)?;
    record(daemon, name, h)
}

/// After `verse image import` of an OCI layout or docker/podman save archive.
pub fn record_manifest(daemon: &Engine, name: &str, h: Hash) -> EngineResult<ImageInfo> {
    record(daemon, name, h)
}

fn builder<'a>(daemon: &'a Engine, spec_dir: &str) -> verse_image::Builder<'a> {
    verse_image::Builder {
        store: &daemon.store,
        exe: daemon.exe.clone(),
        id_base: ID_BASE,
        mirror: std::env::var("VERSE_DEBIAN_MIRROR")
            .unwrap_or_else(|_| verse_image::DEFAULT_MIRROR.to_string()),
        debootstrap_cache: std::env::var_os("VERSE_DEBOOTSTRAP_CACHE").map(Into::into),
        spec_dir: spec_dir.into(),
    }
}

fn run_builds(
    daemon: &Engine,
    spec: &Spec,
    spec_dir: &str,
    names: &[String],
    emit: &mut dyn FnMut(verse_api::ProgressEvent),
) -> EngineResult<BuildReport> {
    let started = Instant::now();
    let b = builder(daemon, spec_dir);
    let known: HashMap<String, String> = daemon
        .db
        .images()?
        .into_iter()
        .map(|i| (i.name, i.manifest))
        .collect();
    let lookup = |n: &str| known.get(n).and_then(|m| m.parse().ok());
    let mut log = Vec::new();
    let mut report = BuildReport {
        images: Vec::new(),
        built_layers: 0,
        cached_layers: 0,
        log: Vec::new(),
        millis: 0,
    };
    for name in names {
        let built = b
            .build(name, spec, &lookup, &mut |line| {
                tracing::info!(target: "verse::build", "{line}");
                emit(verse_api::ProgressEvent::from_line(line));
                log.push(line.to_string());
            })
            .map_err(|e| {
                EngineError::invalid(format!("building image `{name}`: {e}"))
                    .hint("the layers built before the failing step stay cached")
            })?;
        report.built_layers += built.built_layers;
        report.cached_layers += built.cached_layers;
        report.images.push(record(daemon, name, built.manifest)?);
    }
    report.log = log;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// A checked build request: the parsed spec and the images of it to build.
pub struct BuildJob {
    spec: Spec,
    spec_dir: String,
    names: Vec<String>,
}

/// Reads a build request; nothing is built yet.
pub fn build_job(request: BuildRequest) -> EngineResult<BuildJob> {
    let spec = verse_spec::parse_str(&request.source, &request.file_name)
        .map_err(|e| EngineError::invalid(e.to_string()).hint("nothing was built"))?;
    let names = if request.names.is_empty() {
        spec.images.keys().cloned().collect()
    } else {
        for n in &request.names {
            if !spec.images.contains_key(n) {
                return Err(EngineError::not_found(format!(
                    "{} declares no image `{n}`; declared: {}",
                    request.file_name,
                    spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        request.names.clone()
    };
    Ok(BuildJob {
        spec,
        spec_dir: request.spec_dir,
        names,
    })
}

impl BuildJob {
    /// Builds on this thread (it blocks), telling `emit` how it goes. The caller holds the
    /// engine's change lock.
    pub fn run(
        &self,
        daemon: &Engine,
        emit: &mut dyn FnMut(verse_api::ProgressEvent),
    ) -> EngineResult<BuildReport> {
        run_builds(daemon, &self.spec, &self.spec_dir, &self.names, emit)
    }
}

/// Builds under the change lock on a blocking thread.
pub async fn build(daemon: &Arc<Engine>, job: BuildJob) -> EngineResult<BuildReport> {
    let _changes = daemon.changes.lock().await;
    let worker = Arc::clone(daemon);
    tokio::task::spawn_blocking(move || job.run(&worker, &mut |_| {}))
        .await
        .map_err(EngineError::internal)?
}

/// `verse apply`: builds every declared image an env uses (cached layers make this cheap).
pub async fn build_declared(
    daemon: &Arc<Engine>,
    spec: &Spec,
    spec_dir: Option<&str>,
    dry_run: bool,
) -> EngineResult<()> {
    let mut names: Vec<String> = spec
        .envs
        .values()
        .filter(|e| spec.images.contains_key(&e.image))
        .map(|e| e.image.clone())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() || dry_run {
        return Ok(());
    }
    let worker = Arc::clone(daemon);
    let spec = spec.clone();
    let dir = spec_dir.unwrap_or("/").to_string();
    tokio::task::spawn_blocking(move || run_builds(&worker, &spec, &dir, &names, &mut |_| {}))
        .await
        .map_err(EngineError::internal)??;
    Ok(())
}

/// Refuses an image no trusted key signed, saying why.
pub fn check_trust(
    daemon: &Engine,
    image: &str,
    manifest: &Hash,
    keys: &[String],
) -> EngineResult<()> {
    let signatures = daemon
        .store
        .signatures(manifest)
        .map_err(EngineError::internal)?;
    if signatures
        .iter()
        .any(|(s, _)| s.valid && keys.contains(&s.key))
    {
        return Ok(());
    }
    let why = if signatures.is_empty() {
        "it is not signed".to_string()
    } else if signatures
        .iter()
        .any(|(s, _)| !s.valid && keys.contains(&s.key))
    {
        "its signature by a trusted key does not match its manifest (wrongly signed or altered)"
            .to_string()
    } else {
        format!(
            "it is signed only by keys the spec does not trust ({})",
            signatures
                .iter()
                .map(|(s, _)| s.key.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(EngineError::conflict(format!(
        "image `{image}` (manifest {manifest}) is refused by the trust policy: {why}"
    ))
    .hint(format!(
        "sign it with `verse image sign {image} --key KEYFILE` using a key listed in [trust] keys"
    )))
}

pub async fn list(daemon: &Arc<Engine>) -> EngineResult<Vec<ImageInfo>> {
    let worker = Arc::clone(daemon);
    let images = tokio::task::spawn_blocking(move || -> EngineResult<Vec<ImageInfo>> {
        let mut images = worker.db.images()?;
        let mut per_image = Vec::new();
        let mut holders: HashMap<Hash, usize> = HashMap::new();
        for image in &images {
            let mut objects = HashMap::new();
            if let Ok((_, m)) = manifest_of(&worker, image) {
                for l in &m.layers {
                    let _ = worker.store.layer_objects(&l.root, &mut objects);
                }
            }
            for h in objects.keys() {
                *holders.entry(*h).or_default() += 1;
            }
            per_image.push(objects);
        }
        for (image, objects) in images.iter_mut().zip(per_image) {
            for (h, size) in objects {
                if holders[&h] > 1 {
                    image.shared_bytes += size;
                } else {
                    image.unique_bytes += size;
                }
            }
        }
        Ok(images)
    })
    .await
    .map_err(EngineError::internal)??;
    Ok(images)
}

pub async fn inspect(daemon: &Arc<Engine>, name: String) -> EngineResult<ImageDetail> {
    let info = daemon.db.image(&name)?.ok_or_else(|| not_found(&name))?;
    let (h, m) = manifest_of(daemon, &info)?;
    let mut layers = Vec::new();
    for l in &m.layers {
        let li = daemon
            .store
            .layer_info(&l.root)
            .map_err(EngineError::internal)?;
        layers.push(LayerDetail {
            root: l.root.to_string(),
            input: l.input.clone(),
            size: li.size,
            files: li.files,
        });
    }
    let signatures = daemon
        .store
        .signatures(&h)
        .map_err(EngineError::internal)?
        .into_iter()
        .map(|(s, _)| SignatureDetail {
            key: s.key,
            valid: s.valid,
        })
        .collect();
    Ok(ImageDetail {
        info,
        layers,
        entrypoint: m.config.entrypoint,
        cmd: m.config.cmd,
        env: m.config.env,
        user: m.config.user,
        workdir: m.config.workdir,
        labels: m.config.labels,
        signatures,
    })
}

pub async fn remove(daemon: &Arc<Engine>, name: String) -> EngineResult<ImageInfo> {
    let _changes = daemon.changes.lock().await;
    let info = daemon.db.image(&name)?.ok_or_else(|| not_found(&name))?;
    let users: Vec<String> = daemon
        .db
        .envs()?
        .into_iter()
        .filter(|e| e.plan.image == name)
        .map(|e| e.name)
        .collect();
    if !users.is_empty() {
        return Err(EngineError::conflict(format!(
            "image `{name}` is used by env(s) {}",
            users.join(", ")
        ))
        .hint("remove those envs first (`verse rm NAME`)"));
    }
    daemon.db.remove_image(&name)?;
    Ok(info)
}

pub async fn add_signature(
    daemon: &Arc<Engine>,
    name: String,
    request: SignatureRequest,
) -> EngineResult<SignatureDetail> {
    let info = daemon.db.image(&name)?.ok_or_else(|| not_found(&name))?;
    let (h, _) = manifest_of(daemon, &info)?;
    let ok = daemon
        .store
        .add_signature(&h, &request.key, &request.signature)
        .map_err(EngineError::internal)?;
    if !ok {
        return Err(EngineError::invalid(format!(
            "the signature does not verify against manifest {h} with key {}",
            request.key
        )));
    }
    Ok(SignatureDetail {
        key: request.key,
        valid: true,
    })
}

/// What gc keeps: the manifest and layers of every image record, and the layers every env
/// was last started on (an env keeps running on its layers after its image is re-imported
/// or rebuilt under the same name, so those are kept until the env is removed or
/// restarted), and every snapshot. Generations name images, so they reach layers through the
/// image records.
fn gc_roots(daemon: &Engine) -> EngineResult<(HashSet<Hash>, Vec<Hash>)> {
    let mut manifests = HashSet::new();
    let mut roots = Vec::new();
    for image in daemon.db.images()? {
        let (h, m) = manifest_of(daemon, &image)?;
        manifests.insert(h);
        roots.extend(m.layers.iter().map(|l| l.root));
    }
    // Snapshots of envs are layers too.
    for snapshot in daemon.db.snapshots(None)? {
        let root = snapshot.root.parse().map_err(|e| {
            EngineError::internal(format!("snapshot {} of {}: {e}", snapshot.id, snapshot.env))
        })?;
        roots.push(root);
        // ...and so are the volumes copied with them.
        for volume in &snapshot.volumes {
            let root = volume.root.parse().map_err(|e| {
                EngineError::internal(format!(
                    "volume {} of snapshot {} of {}: {e}",
                    volume.path, snapshot.id, snapshot.env
                ))
            })?;
            roots.push(root);
        }
    }
    for env in daemon.db.envs()? {
        let path = verse_runtime::ShimConfig::config_path(&daemon.paths.env_dir(&env.name));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let config: verse_runtime::ShimConfig = serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::internal(format!(
                "{}: {e}; gc cannot tell which layers env `{}` runs on",
                path.display(),
                env.name
            ))
        })?;
        for lower in &config.lowers {
            // Checkouts are named "<root>-<uid_base>".
            let root = lower
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|h| h.parse::<Hash>().ok());
            roots.extend(root);
        }
    }
    Ok((manifests, roots))
}

pub async fn gc(daemon: &Arc<Engine>) -> EngineResult<ImageGcReport> {
    let _changes = daemon.changes.lock().await;
    let worker = Arc::clone(daemon);
    let report = tokio::task::spawn_blocking(move || -> EngineResult<ImageGcReport> {
        let (manifests, roots) = gc_roots(&worker)?;
        let manifests_removed = worker
            .store
            .remove_manifests_except(&manifests)
            .map_err(EngineError::internal)?;
        let r = worker.store.gc(&roots).map_err(EngineError::internal)?;
        // Build-cache entries naming layers that are gone now.
        let cache = worker.store.dir().join("build-cache");
        for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
            let root = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| t.trim().parse::<Hash>().ok());
            if !root.is_some_and(|r| worker.store.has(&r)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ImageGcReport {
            freed_bytes: r.freed_bytes,
            objects_removed: r.objects_removed,
            trees_removed: r.trees_removed,
            layers_removed: r.layers_removed,
            manifests_removed,
            checkouts_removed: r.checkouts_removed,
        })
    })
    .await
    .map_err(EngineError::internal)??;
    Ok(report)
}

pub async fn export(
    daemon: &Arc<Engine>,
    name: String,
    request: ExportRequest,
) -> EngineResult<ExportReport> {
    let info = daemon.db.image(&name)?.ok_or_else(|| not_found(&name))?;
    let path = std::path::PathBuf::from(&request.path);
    if !path.is_absolute() || path.file_name().is_none() {
        return Err(EngineError::invalid(format!(
            "the export path must be an absolute file path, got `{}`",
            request.path
        )));
    }
    let format: verse_image::ExportFormat = request
        .format
        .as_deref()
        .unwrap_or("oci-archive")
        .parse()
        .map_err(EngineError::invalid)?;
    let (h, _) = manifest_of(daemon, &info)?;
    let started = Instant::now();
    let worker = Arc::clone(daemon);
    let (image, target) = (name.clone(), path.clone());
    let r = tokio::task::spawn_blocking(move || {
        verse_image::export_archive(
            &worker.store,
            &image,
            &h,
            &target,
            format,
            &mut |line| tracing::info!(target: "verse::export", "{line}"),
        )
    })
    .await
    .map_err(EngineError::internal)?
    .map_err(|e| {
        EngineError::invalid(format!(
            "exporting image `{name}` to {}: {e}",
            path.display()
        ))
        .hint("nothing was written at that path")
    })?;
    Ok(ExportReport {
        reference: verse_image::export_reference(&name),
        image: name,
        manifest: h.to_string(),
        path: request.path,
        layers: r.layers,
        files: r.files,
        bytes: r.bytes,
        signatures: r.signatures,
        millis: started.elapsed().as_millis() as u64,
        format: request.format.unwrap_or_else(|| "oci-archive".into()),
    })
}
