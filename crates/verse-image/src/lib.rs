//! verse-image: builders that produce layers and image manifests.
//!
//! [`Builder::build`] turns an `[image.NAME]` recipe into a manifest in the store:
//!
//! 1. the base: `debian:SUITE` is `debootstrap --variant=minbase SUITE` run on the host, one
//!    layer; another image's name (declared in the spec, or in the store) stacks on its layers;
//! 2. `packages`: `apt-get install` inside a build container (verse-sandbox) that shares the
//!    host's network, one layer;
//! 3. `files`: written straight into a fresh layer;
//! 4. each `run` step: `/bin/sh -c STEP` as root inside a build container with loopback only,
//!    one layer each.
//!
//! A step's layer is the overlay upper dir its container wrote (whiteouts included), imported
//! with owners shifted back. Every layer is cached by the hash of its inputs and of every layer
//! below it (`<store>/build-cache/<key>` holds the layer root), so a rebuild with nothing
//! changed runs nothing, and editing one step rebuilds from that step on.

#![forbid(unsafe_code)]

mod export;
mod oci;
pub mod step;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use verse_spec::{FileSource, ImageBase, ImageSpec, Spec};
use verse_store::{Hash, ImportOptions, Manifest, ManifestLayer, RunConfig, Store};

pub use export::{ExportFormat, Exported, export_archive, export_reference};
pub use oci::{Imported, import_archive, is_image_archive};
pub use step::{StepConfig, run_step_main};

/// Debian mirror used by debootstrap and apt.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Everything that can go wrong building or importing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] verse_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("build step `{step}` failed (exit status {status}); its last output:\n{output}")]
    StepFailed {
        step: String,
        status: i32,
        output: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ImageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Builds images of a spec into a store.
pub struct Builder<'a> {
    pub store: &'a Store,
    /// The `verse` binary, run as `verse __build-step CONFIG` for each container step.
    pub exe: PathBuf,
    /// Host id that the build container's root maps to (checkouts are shifted by it).
    pub id_base: u32,
    /// Debian mirror.
    pub mirror: String,
    /// Where debootstrap output is kept as `debootstrap-SUITE-ARCH.tar` between stores (and
    /// debootstrap's own .deb cache), so a fresh store does not download the base again.
    pub debootstrap_cache: Option<PathBuf>,
    /// The directory holding the spec; `"./path"` files are read relative to it.
    pub spec_dir: PathBuf,
}

/// What one build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub manifest: Hash,
    /// Layers built now (not taken from the cache).
    pub built_layers: usize,
    /// Layers taken from the cache.
    pub cached_layers: usize,
}

fn cache_key(parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"verse-build-v1");
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    Hash::from(h.finalize())
}

fn debian_arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| match std::env::consts::ARCH {
            "x86_64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            other => other.into(),
        })
}

impl Builder<'_> {
    fn cache_path(&self, key: &Hash) -> PathBuf {
        self.store.dir().join("build-cache").join(key.to_hex())
    }

    fn cached(&self, key: &Hash) -> Option<Hash> {
        let text = fs::read_to_string(self.cache_path(key)).ok()?;
        let root: Hash = text.trim().parse().ok()?;
        self.store.has(&root).then_some(root)
    }

    fn remember(&self, key: &Hash, root: &Hash) -> Result<(), ImageError> {
        let path = self.cache_path(key);
        let dir = path.parent().expect("has a parent");
        fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, root.to_hex()).map_err(|e| ImageError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| ImageError::io(&path, e))
    }

    /// Builds image `name` of `spec` (and the spec images it stacks on) and stores its
    /// manifest. `lookup` finds a store image's manifest by name, for bases the spec does not
    /// declare. `progress` gets one line per step and the steps' output.
    pub fn build(
        &self,
        name: &str,
        spec: &Spec,
        lookup: &dyn Fn(&str) -> Option<Hash>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Built, ImageError> {
        let mut built = Built {
            manifest: Hash([0; 32]),
            built_layers: 0,
            cached_layers: 0,
        };
        built.manifest = self.build_rec(name, spec, lookup, progress, &mut built)?;
        Ok(built)
    }

    fn build_rec(
        &self,
        name: &str,
        spec: &Spec,
        lookup: &dyn Fn(&str) -> Option<Hash>,
        progress: &mut dyn FnMut(&str),
        built: &mut Built,
    ) -> Result<Hash, ImageError> {
        let recipe = spec
            .images
            .get(name)
            .ok_or_else(|| ImageError::Invalid(format!("the spec declares no image `{name}`")))?;
        let steps = 1
            + usize::from(!recipe.packages.is_empty())
            + usize::from(!recipe.files.is_empty())
            + recipe.run.len();
        let mut n = 0;
        let mut manifest = match &recipe.base {
            ImageBase::Debian { suite } => {
                n += 1;
                let what = format!("debootstrap --variant=minbase {suite}");
                let (root, cached) = self.debootstrap(suite, &mut |s| {
                    progress(&format!("{name} [{n}/{steps}] {what}: {s}"))
                })?;
                count(built, cached);
                Manifest {
                    layers: vec![ManifestLayer { root, input: what }],
                    config: RunConfig::default(),
                }
            }
            ImageBase::Image { name: base } => {
                n += 1;
                let hash = if spec.images.contains_key(base) {
                    self.build_rec(base, spec, lookup, progress, built)?
                } else {
                    lookup(base).ok_or_else(|| {
                        ImageError::Invalid(format!(
                            "image `{name}`: its base `{base}` is neither declared in the spec nor in the store; import it with `verse image import {base} FILE` or declare [image.{base}]"
                        ))
                    })?
                };
                progress(&format!("{name} [{n}/{steps}] base {base}: ready"));
                self.store.manifest(&hash)?
            }
        };
        let mut line = |n: usize, what: &str, state: &str| {
            progress(&format!("{name} [{n}/{steps}] {what}: {state}"));
        };
        if !recipe.packages.is_empty() {
            n += 1;
            let packages = recipe.packages.join(" ");
            let what = format!("apt-get install {packages}");
            let script = format!(
                "set -e\napt-get update -q\napt-get install -y -q --no-install-recommends {packages}\napt-get clean\nrm -rf /var/lib/apt/lists/*\n"
            );
            let key = self.key(&manifest, "packages", packages.as_bytes());
            let (root, cached) =
                self.container_step(&manifest, &key, &what, &script, true, &mut |s| {
                    line(n, &what, s)
                })?;
            count(built, cached);
            manifest.layers.push(ManifestLayer { root, input: what });
        }
        if !recipe.files.is_empty() {
            n += 1;
            let what = format!(
                "files {}",
                recipe
                    .files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let (root, cached) = self.files_step(&manifest, recipe, &mut |s| line(n, &what, s))?;
            count(built, cached);
            manifest.layers.push(ManifestLayer { root, input: what });
        }
        for step in &recipe.run {
            n += 1;
            let what = format!("run: {step}");
            let key = self.key(&manifest, "run", step.as_bytes());
            let (root, cached) =
                self.container_step(&manifest, &key, &what, step, false, &mut |s| {
                    line(n, &what, s)
                })?;
            count(built, cached);
            manifest.layers.push(ManifestLayer { root, input: what });
        }
        self.apply_config(&mut manifest.config, recipe)?;
        if let Some(user) = &recipe.user {
            manifest.config.user = Some(self.resolve_user(&manifest, name, user)?);
        }
        Ok(self.store.put_manifest(&manifest)?)
    }

    /// Cache key of a step: its kind and input over every layer below it.
    fn key(&self, below: &Manifest, kind: &str, input: &[u8]) -> Hash {
        let roots: Vec<u8> = below.layers.iter().flat_map(|l| l.root.0).collect();
        cache_key(&[&roots, kind.as_bytes(), input])
    }

    fn apply_config(&self, config: &mut RunConfig, recipe: &ImageSpec) -> Result<(), ImageError> {
        if let Some(w) = &recipe.workdir {
            config.workdir = Some(w.clone());
        }
        let mut env: BTreeMap<String, String> = config.env.iter().cloned().collect();
        env.extend(recipe.env.clone());
        config.env = verse_store::env_list(&env);
        Ok(())
    }

    /// "writer" → "1000:1000" from the image's /etc/passwd; numeric forms pass through.
    fn resolve_user(
        &self,
        manifest: &Manifest,
        image: &str,
        user: &str,
    ) -> Result<String, ImageError> {
        if user == "root" {
            return Ok("0:0".into());
        }
        if user.chars().all(|c| c.is_ascii_digit() || c == ':') {
            return Ok(if user.contains(':') {
                user.to_string()
            } else {
                format!("{user}:{user}")
            });
        }
        for root in manifest.roots_top_first() {
            let passwd = self.store.checkout(&root, self.id_base)?.join("etc/passwd");
            let Ok(text) = fs::read_to_string(&passwd) else {
                continue;
            };
            let found = text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] == user).then(|| format!("{}:{}", f[2], f[3]))
            });
            return found.ok_or_else(|| {
                ImageError::Invalid(format!(
                    "image `{image}`: user `{user}` is not in the image's /etc/passwd; add a run step such as \"useradd -m {user}\""
                ))
            });
        }
        Err(ImageError::Invalid(format!(
            "image `{image}`: it has no /etc/passwd to look user `{user}` up in; give a uid such as \"1000\""
        )))
    }

    /// The debootstrap base layer: from the store's cache, the host cache tar, or a fresh
    /// debootstrap run.
    fn debootstrap(
        &self,
        suite: &str,
        line: &mut dyn FnMut(&str),
    ) -> Result<(Hash, bool), ImageError> {
        let arch = debian_arch();
        let key = cache_key(&[
            b"debootstrap",
            b"minbase",
            suite.as_bytes(),
            arch.as_bytes(),
            self.mirror.as_bytes(),
        ]);
        if let Some(root) = self.cached(&key) {
            line("cached");
            return Ok((root, true));
        }
        let tar = self
            .debootstrap_cache
            .as_ref()
            .map(|d| d.join(format!("debootstrap-{suite}-{arch}.tar")));
        if let Some(tar) = tar.as_ref().filter(|t| t.is_file()) {
            line(&format!("importing {}", tar.display()));
            let layer = self.store.import_tar(tar, &mut verse_store::NoProgress)?;
            self.remember(&key, &layer.root)?;
            line("done");
            return Ok((layer.root, true));
        }
        which("debootstrap").ok_or_else(|| {
            ImageError::Invalid(
                "debootstrap is not installed; `apt-get install debootstrap` (Debian's package)"
                    .into(),
            )
        })?;
        let target = self.tmp_dir("debootstrap")?;
        let rootfs = target.join("rootfs");
        line("running (this downloads the base system, a few minutes the first time)");
        let mut cmd = Command::new("debootstrap");
        cmd.arg("--variant=minbase").arg(format!("--arch={arch}"));
        if let Some(cache) = &self.debootstrap_cache {
            let debs = cache.join("debs");
            fs::create_dir_all(&debs).map_err(|e| ImageError::io(&debs, e))?;
            cmd.arg(format!("--cache-dir={}", debs.display()));
        }
        cmd.arg(suite).arg(&rootfs).arg(&self.mirror);
        let result = (|| {
            let out = cmd
                .output()
                .map_err(|e| ImageError::io(Path::new("debootstrap"), e))?;
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                return Err(ImageError::StepFailed {
                    step: format!("debootstrap --variant=minbase {suite}"),
                    status: out.status.code().unwrap_or(-1),
                    output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            // The host's resolver config is not the image's business.
            let _ = fs::remove_file(rootfs.join("etc/resolv.conf"));
            line("importing into the store");
            let layer = self
                .store
                .import_dir(&rootfs, &mut verse_store::NoProgress)?;
            if let Some(tar) = &tar {
                let part = tar.with_extension("tar.part");
                let ok = Command::new("tar")
                    .arg("--numeric-owner")
                    .arg("-C")
                    .arg(&rootfs)
                    .arg("-cf")
                    .arg(&part)
                    .arg(".")
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    let _ = fs::rename(&part, tar);
                } else {
                    let _ = fs::remove_file(&part);
                }
            }
            Ok(layer)
        })();
        let _ = fs::remove_dir_all(&target);
        let layer = result?;
        self.remember(&key, &layer.root)?;
        line("done");
        Ok((layer.root, false))
    }

    fn tmp_dir(&self, prefix: &str) -> Result<PathBuf, ImageError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .store
            .dir()
            .join("tmp")
            .join(format!("{prefix}.{}.{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| ImageError::io(&dir, e))?;
        Ok(dir)
    }

    /// Upper, work and mountpoint dirs for a step, the upper owned by the build's root.
    fn step_dirs(&self) -> Result<(PathBuf, PathBuf, PathBuf, PathBuf), ImageError> {
        let dir = self.tmp_dir("build")?;
        let (upper, work, mnt) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &mnt] {
            fs::create_dir(d).map_err(|e| ImageError::io(d, e))?;
        }
        for d in [&upper, &work] {
            std::os::unix::fs::chown(d, Some(self.id_base), Some(self.id_base))
                .map_err(|e| ImageError::io(d, e))?;
        }
        Ok((dir, upper, work, mnt))
    }

    fn capture(&self, upper: &Path) -> Result<Hash, ImageError> {
        let options = ImportOptions {
            id_base: self.id_base,
            whiteouts: true,
            refuse_devices: false,
            skip_devices: false,
        };
        Ok(self
            .store
            .import_dir_with(upper, options, &mut verse_store::NoProgress)?
            .root)
    }

    fn container_step(
        &self,
        below: &Manifest,
        key: &Hash,
        what: &str,
        script: &str,
        network: bool,
        line: &mut dyn FnMut(&str),
    ) -> Result<(Hash, bool), ImageError> {
        if let Some(root) = self.cached(key) {
            line("cached");
            return Ok((root, true));
        }
        line("running");
        let lowers = below
            .roots_top_first()
            .iter()
            .map(|r| self.store.checkout(r, self.id_base))
            .collect::<Result<Vec<_>, _>>()?;
        let (dir, upper, work, mountpoint) = self.step_dirs()?;
        let config = StepConfig {
            lowers,
            upper: upper.clone(),
            work,
            mountpoint,
            script: script.to_string(),
            env: vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("HOME".into(), "/root".into()),
                ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
                ("LC_ALL".into(), "C".into()),
            ],
            id_base: self.id_base,
            share_host_network: network,
            binds: if network {
                vec![("/etc/resolv.conf".into(), "/etc/resolv.conf".into())]
            } else {
                Vec::new()
            },
            cgroup: format!(
                "verse-build/{}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
        };
        let started = std::time::Instant::now();
        let result = step::run_step(&self.exe, &config, &dir.join("step.json"), what, &mut |l| {
            line(&format!("| {l}"))
        })
        .and_then(|()| self.capture(&upper));
        let _ = fs::remove_dir_all(&dir);
        let root = result?;
        self.remember(key, &root)?;
        line(&format!("done in {:.1}s", started.elapsed().as_secs_f64()));
        Ok((root, false))
    }

    fn files_step(
        &self,
        below: &Manifest,
        recipe: &ImageSpec,
        line: &mut dyn FnMut(&str),
    ) -> Result<(Hash, bool), ImageError> {
        // Contents first: the cache key covers what the files hold, not just their names.
        let mut contents = Vec::new();
        let mut input = Vec::new();
        for f in &recipe.files {
            let (bytes, mode) = match &f.source {
                FileSource::Text(t) => (t.as_bytes().to_vec(), 0o644),
                FileSource::Host(rel) => {
                    let p = self.spec_dir.join(rel);
                    let md = fs::metadata(&p).map_err(|e| ImageError::io(&p, e))?;
                    if !md.is_file() {
                        return Err(ImageError::Invalid(format!(
                            "file {} for {} is not a regular file",
                            p.display(),
                            f.path
                        )));
                    }
                    (
                        fs::read(&p).map_err(|e| ImageError::io(&p, e))?,
                        md.mode() & 0o7777,
                    )
                }
            };
            input.extend_from_slice(f.path.as_bytes());
            input.push(0);
            input.extend_from_slice(&Hash::of(&bytes).0);
            input.extend_from_slice(&mode.to_le_bytes());
            contents.push((f.path.clone(), bytes, mode));
        }
        let key = self.key(below, "files", &input);
        if let Some(root) = self.cached(&key) {
            line("cached");
            return Ok((root, true));
        }
        let lowers = below
            .roots_top_first()
            .iter()
            .map(|r| self.store.checkout(r, self.id_base))
            .collect::<Result<Vec<_>, _>>()?;
        let (dir, upper, _, _) = self.step_dirs()?;
        let result = (|| {
            for (path, bytes, mode) in &contents {
                let rel = path.trim_start_matches('/');
                let target = upper.join(rel);
                // Parent dirs keep the metadata they have in the layers below (a new layer's
                // directory replaces the owner and mode of the one below it).
                let mut cur = PathBuf::new();
                let parents: Vec<_> = Path::new(rel)
                    .parent()
                    .map(|p| p.components().collect())
                    .unwrap_or_default();
                for c in parents {
                    cur.push(c);
                    let d = upper.join(&cur);
                    if d.exists() {
                        continue;
                    }
                    fs::create_dir(&d).map_err(|e| ImageError::io(&d, e))?;
                    let below = lowers
                        .iter()
                        .find_map(|l| fs::symlink_metadata(l.join(&cur)).ok());
                    let (mode, uid, gid) = match below {
                        Some(md) if md.is_dir() => (md.mode() & 0o7777, md.uid(), md.gid()),
                        _ => (0o755, self.id_base, self.id_base),
                    };
                    std::os::unix::fs::lchown(&d, Some(uid), Some(gid))
                        .map_err(|e| ImageError::io(&d, e))?;
                    fs::set_permissions(&d, fs::Permissions::from_mode(mode))
                        .map_err(|e| ImageError::io(&d, e))?;
                }
                fs::write(&target, bytes).map_err(|e| ImageError::io(&target, e))?;
                std::os::unix::fs::lchown(&target, Some(self.id_base), Some(self.id_base))
                    .map_err(|e| ImageError::io(&target, e))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(*mode))
                    .map_err(|e| ImageError::io(&target, e))?;
            }
            self.capture(&upper)
        })();
        let _ = fs::remove_dir_all(&dir);
        let root = result?;
        self.remember(&key, &root)?;
        line("done");
        Ok((root, false))
    }
}

fn count(built: &mut Built, cached: bool) {
    if cached {
        built.cached_layers += 1;
    } else {
        built.built_layers += 1;
    }
}

/// The image architecture in OCI's words (Debian's amd64 and arm64 are OCI's too).
pub(crate) fn oci_arch() -> String {
    debian_arch()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    //! What the builder decides before it runs anything: cache keys, the run config and user
    //! lookups, against a real store in a temporary directory (no root, no debootstrap).

    use super::*;

    fn builder(store: &Store) -> Builder<'_> {
        Builder {
            store,
            exe: PathBuf::from("/nonexistent/verse"),
            id_base: 0,
            mirror: DEFAULT_MIRROR.into(),
            debootstrap_cache: None,
            spec_dir: PathBuf::from("/nonexistent"),
        }
    }

    fn layer(byte: u8, input: &str) -> ManifestLayer {
        ManifestLayer {
            root: Hash([byte; 32]),
            input: input.into(),
        }
    }

    fn manifest(layers: Vec<ManifestLayer>) -> Manifest {
        Manifest {
            layers,
            config: RunConfig::default(),
        }
    }

    fn spec(source: &str) -> Spec {
        verse_spec::parse_str(source, "verse.toml").expect("test spec parses")
    }

    #[test]
    fn cache_keys_do_not_confuse_where_one_part_ends_and_the_next_begins() {
        assert_ne!(cache_key(&[b"ab", b"c"]), cache_key(&[b"a", b"bc"]));
        assert_ne!(cache_key(&[b"abc"]), cache_key(&[b"abc", b""]));
        assert_eq!(cache_key(&[b"ab", b"c"]), cache_key(&[b"ab", b"c"]));
        // Tagged with the key scheme's version: not the plain hash of the bytes.
        assert_ne!(cache_key(&[b"abc"]), Hash::from(blake3::hash(b"abc")));
    }

    #[test]
    fn a_step_key_changes_with_any_layer_below_its_kind_or_its_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b = builder(&store);
        let below = manifest(vec![layer(1, "debootstrap"), layer(2, "run: a")]);
        let key = b.key(&below, "run", b"useradd -m writer");
        assert_eq!(
            key,
            b.key(&below, "run", b"useradd -m writer"),
            "rebuild hits"
        );
        let mut other_base = below.clone();
        other_base.layers[0].root = Hash([9; 32]);
        assert_ne!(key, b.key(&other_base, "run", b"useradd -m writer"));
        assert_ne!(key, b.key(&below, "packages", b"useradd -m writer"));
        assert_ne!(key, b.key(&below, "run", b"useradd -m reader"));
        // What produced a layer is a description; only its content names it.
        let mut relabelled = below.clone();
        relabelled.layers[1].input = "run: something else".into();
        assert_eq!(key, b.key(&relabelled, "run", b"useradd -m writer"));
    }

    #[test]
    fn a_remembered_layer_is_reused_only_while_the_store_still_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b = builder(&store);
        let key = cache_key(&[b"step"]);
        assert_eq!(b.cached(&key), None);
        let gone = Hash([7; 32]);
        b.remember(&key, &gone).unwrap();
        assert_eq!(
            b.cached(&key),
            None,
            "a layer no longer in the store is rebuilt"
        );
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("hello"), "hi\n").unwrap();
        let root = store
            .import_dir(src.path(), &mut verse_store::NoProgress)
            .unwrap()
            .root;
        b.remember(&key, &root).unwrap();
        assert_eq!(b.cached(&key), Some(root));
    }

    #[test]
    fn the_recipe_env_overrides_the_base_env_and_sets_the_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = spec(
            "[image.app]\nbase = \"debian:bookworm\"\nworkdir = \"/srv\"\nenv = { LANG = \"C.UTF-8\", MODE = \"prod\" }\n",
        );
        let mut config = RunConfig {
            env: vec![("PATH".into(), "/bin".into()), ("LANG".into(), "C".into())],
            ..RunConfig::default()
        };
        builder(&store)
            .apply_config(&mut config, &spec.images["app"])
            .unwrap();
        assert_eq!(config.workdir.as_deref(), Some("/srv"));
        assert_eq!(
            config.env,
            [
                ("LANG".to_string(), "C.UTF-8".to_string()),
                ("MODE".to_string(), "prod".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ]
        );
    }

    #[test]
    fn users_given_as_root_or_numbers_need_no_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b = builder(&store);
        let empty = manifest(Vec::new());
        assert_eq!(b.resolve_user(&empty, "app", "root").unwrap(), "0:0");
        assert_eq!(b.resolve_user(&empty, "app", "1000").unwrap(), "1000:1000");
        assert_eq!(
            b.resolve_user(&empty, "app", "1000:100").unwrap(),
            "1000:100"
        );
    }

    #[test]
    fn a_user_name_is_looked_up_in_the_top_most_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b = builder(&store);
        let import = |passwd: &str| {
            let src = tempfile::tempdir().unwrap();
            fs::create_dir(src.path().join("etc")).unwrap();
            fs::write(src.path().join("etc/passwd"), passwd).unwrap();
            let root = store
                .import_dir(src.path(), &mut verse_store::NoProgress)
                .unwrap()
                .root;
            ManifestLayer {
                root,
                input: "test".into(),
            }
        };
        let base = import("root:x:0:0:root:/root:/bin/sh\n");
        let top =
            import("root:x:0:0:root:/root:/bin/sh\nwriter:x:1001:1002::/home/writer:/bin/sh\n");
        let image = manifest(vec![base.clone(), top]);
        assert_eq!(
            b.resolve_user(&image, "app", "writer").unwrap(),
            "1001:1002"
        );
        let error = b
            .resolve_user(&manifest(vec![base]), "app", "writer")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "image `app`: user `writer` is not in the image's /etc/passwd; add a run step such as \"useradd -m writer\""
        );
    }

    #[test]
    fn a_user_name_in_an_image_without_passwd_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let error = builder(&store)
            .resolve_user(&manifest(Vec::new()), "app", "writer")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "image `app`: it has no /etc/passwd to look user `writer` up in; give a uid such as \"1000\""
        );
    }

    #[test]
    fn a_base_neither_declared_nor_stored_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = spec("[image.app]\nbase = \"missing\"\nrun = [\"true\"]\n");
        let mut lines = Vec::new();
        let error = builder(&store)
            .build("app", &spec, &|_| None, &mut |l| lines.push(l.to_string()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "image `app`: its base `missing` is neither declared in the spec nor in the store; import it with `verse image import missing FILE` or declare [image.missing]"
        );
        assert!(lines.is_empty(), "nothing ran: {lines:?}");
        let error = builder(&store)
            .build("other", &spec, &|_| None, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert_eq!(error, "the spec declares no image `other`");
    }
}
