//! `verse`: the command line of Verse. A thin layer over the library crates:
//! it parses arguments, talks to the daemon's API and prints for humans
//! (or `--json` for programs).

mod audit;
mod commands;
mod compose;
mod fs;
mod idmap_doctor;
mod images;
mod lifecycle;
mod net;
mod output;
mod progress;
mod quarantine;
mod stream;
mod token;
mod vm_doctor;
mod web;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Run many isolated environments on one host, each declared in verse.toml.";

const AFTER_HELP: &str = "\
Getting started:
  verse doctor                          check what this host can do
  verse daemon &                        start the daemon (as root)
  verse image import busybox ./rootfs   put a directory or tar in the store
  verse apply verse.toml                create and start the envs it declares
  verse exec novel -- uname -a          run a command inside an env
  verse shell novel                     open a shell inside an env

Every command finds the daemon through VERSE_ROOT (default /): its socket is
$VERSE_ROOT/run/verse/verse.sock.";

#[derive(Parser)]
#[command(name = "verse", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    /// Root of the Verse installation; every path derives from it.
    #[arg(
        long,
        global = true,
        env = "VERSE_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the host capabilities Verse uses; exit 0 when containers can run.
    Doctor {
        #[arg(long)]
        json: bool,
        /// Time a tiny guest under KVM now (up to 8 s) to decide the vm backend's
        /// accelerator, instead of showing the cached decision.
        #[arg(long)]
        probe_vm: bool,
    },
    /// Run the daemon in the foreground (serves the API on the unix socket, and the web UI).
    Daemon {
        /// Also serve the API over TCP with TLS at ADDR (e.g. 0.0.0.0:7443);
        /// it accepts only capability tokens (see `verse token`).
        #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
        listen: Option<std::net::SocketAddr>,
        /// PEM certificate (chain) for --listen.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --listen.
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Where the web UI listens: a loopback IP:PORT, or `off`.
        #[arg(long, env = "VERSE_WEB", value_name = "IP:PORT|off", default_value = verse_daemon::DEFAULT_WEB_ADDR)]
        web: String,
    },
    /// Print the URL of the web UI (with this daemon's secret: keep it to yourself).
    Web,
    /// Manage images in the content-addressed store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Make a new generation from a spec file and bring every env to its declared state.
    Apply {
        /// The spec, usually verse.toml.
        file: PathBuf,
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the generations made by `verse apply` (`generations gc --keep N` prunes them).
    Generations {
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<GenerationsCommand>,
    },
    /// Re-activate an earlier generation (default: the one before the active one).
    Rollback {
        generation: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// List envs: name, state, backend, image, limits, uptime.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Start envs.
    Up {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Stop envs (SIGTERM, then SIGKILL after their stop_timeout). Their writes persist unless ephemeral.
    Down {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Stop envs and delete them with their writable layers.
    Rm {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Run a command inside a running env; exits with the command's exit code.
    Exec {
        /// Allocate a pseudo-terminal (for interactive programs).
        #[arg(short = 't', long)]
        tty: bool,
        /// Extra environment variables, KEY=VALUE.
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the env.
        #[arg(short = 'w', long)]
        workdir: Option<String>,
        name: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Open an interactive shell inside a running env.
    Shell {
        name: String,
        /// The shell to run.
        #[arg(long, default_value = "/bin/sh")]
        shell: String,
    },
    /// Show an env's console output (its main process' stdout and stderr).
    Logs {
        name: String,
        /// Keep printing new output until the env stops.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Run a one-off env from an image, without a spec (like `docker run`).
    Run {
        /// Remove the env and everything it wrote when the command exits.
        #[arg(long)]
        rm: bool,
        /// Name the env (default: run-XXXXXXXX).
        #[arg(long)]
        name: Option<String>,
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Limit what the env can write to SIZE (e.g. 1GiB, at least 16MiB): its
        /// writable layer gets a filesystem of its own of that size.
        #[arg(long, value_name = "SIZE", value_parser = disk_size)]
        disk: Option<u64>,
        image: String,
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Manage signing keys for images.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Internal: one image build step in a build container, started by the daemon.
    #[command(name = "__build-step", hide = true)]
    BuildStep { config: PathBuf },
    /// Inspect envs' networks.
    #[command(subcommand)]
    Net(net::NetCommand),
    /// Describe an env in plain words; print a checked spec fragment and why.
    ///
    /// Offline by default (a catalog of Debian packages and rules in the repo). With
    /// VERSE_COMPOSE_ENDPOINT set to an OpenAI-compatible chat endpoint (http), a model is
    /// asked first; its answer is checked and any problem falls back to offline.
    /// The explanation goes to stderr, so `verse compose "..." > env.toml` keeps the spec.
    #[command(
        after_help = "Examples:\n  verse compose \"a python dev box with 2 cores, 4 GB and no internet\"\n  verse compose --name novel \"a writing desktop, four gigs\" --into verse.toml\n  verse compose \"throwaway firefox for banking, red\" --into verse.toml --apply"
    )]
    Compose {
        /// What you want, in your words.
        #[arg(required = true, value_name = "WORDS")]
        prompt: Vec<String>,
        /// Print {"image": {...}, "env": {...}, "pending", "notes", "unknown"} as JSON.
        #[arg(long)]
        json: bool,
        /// Name the env (default: from the words).
        #[arg(long)]
        name: Option<String>,
        /// Merge the fragment into this spec file (created if missing); refuses name clashes.
        #[arg(long, value_name = "FILE")]
        into: Option<PathBuf>,
        /// Show the plan, then apply the merged file through the daemon (needs --into).
        #[arg(long)]
        apply: bool,
    },
    #[command(flatten)]
    Lifecycle(lifecycle::LifecycleCommand),
    /// Mint, attenuate and revoke capability tokens for the TCP API.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Read, verify and checkpoint the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Files that left an env (its /downloads): scanned, held, released or rejected.
    #[command(subcommand)]
    Quarantine(quarantine::QuarantineCommand),
    /// Copy a file from one running env to another, as the spec's [copy] policy
    /// allows ("allow", "quarantine", default "deny"); audited.
    Copy {
        /// SRC_ENV:/path/to/file
        #[arg(value_name = "SRC_ENV:PATH")]
        from: String,
        /// DST_ENV or DST_ENV:/dir (default dir /inbox)
        #[arg(value_name = "DST_ENV[:PATH]")]
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a completion script for a shell.
    ///
    /// bash: `verse completions bash > /etc/bash_completion.d/verse`;
    /// zsh: `verse completions zsh > /usr/local/share/zsh/site-functions/_verse`;
    /// fish: `verse completions fish > ~/.config/fish/completions/verse.fish`.
    /// The Debian package installs all three.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The spec file's own tools.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Internal: write the man pages (verse.1, verse-apply.1, ...) into DIR.
    #[command(name = "__man", hide = true)]
    Man { dir: PathBuf },
    /// The control filesystem: envs, images and generations as files.
    #[command(subcommand)]
    Fs(fs::FsCommand),
    /// Internal: the per-env supervisor, started by the daemon.
    #[command(name = "__shim", hide = true)]
    Shim { config: PathBuf },
}

#[derive(Subcommand)]
enum SpecCommand {
    /// Print the JSON Schema of verse.toml, for editors (taplo, Even Better TOML).
    ///
    /// Point taplo at it with `#:schema ./verse.schema.json` on a spec's first line after
    /// `verse spec schema > verse.schema.json`, or in .taplo.toml; docs/verse.schema.json is
    /// the same document.
    Schema,
}

#[derive(Subcommand)]
enum GenerationsCommand {
    /// Delete old generations, keeping the newest N and always the active one.
    Gc {
        #[arg(long, value_name = "N")]
        keep: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import a directory, a tar (plain, gzip or zstd), an image archive (`podman save`,
    /// `docker save`, `buildah push oci-archive:`, `skopeo copy` to `oci:DIR` or
    /// `docker-archive:`), or a `verse image export` file (its manifest hash and signatures
    /// kept). FILE:TAG picks one image of an archive holding several. Device nodes in an
    /// archive's layers are left out (envs get their own /dev) and counted.
    Import {
        name: String,
        /// FILE, DIR, or FILE:TAG (e.g. `all.tar:localhost/app:1`).
        #[arg(value_name = "PATH[:TAG]")]
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// List images: name, layer root, size, file count.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Build the images a spec declares ([image.NAME]); each layer is built once and cached.
    Build {
        /// Images to build (default: all the spec declares).
        names: Vec<String>,
        /// The spec.
        #[arg(short = 'f', long, default_value = "verse.toml")]
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show an image's layers (inputs, sizes), run config (entrypoint, cmd, user, workdir,
    /// env, labels) and signatures.
    Inspect {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget an image (its layers stay until `verse image gc`).
    Rm { name: String },
    /// Remove every object, layer and manifest no image still reaches; print what was freed.
    Gc {
        #[arg(long)]
        json: bool,
    },
    /// Sign an image's manifest with an ed25519 key (see `verse key generate`).
    Sign {
        name: String,
        /// Secret key file (default: $VERSE_ROOT/etc/verse/keys/signing.key).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Re-hash every layer of an image and name every changed, added or missing path; exit 1 if any.
    Verify {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Write an image to FILE, tagged localhost/NAME:latest, for `podman load`, `docker load`,
    /// `skopeo` or `verse image import` on another host. oci-archive (the default) also
    /// carries Verse's manifest and signatures (same manifest hash there, signatures still
    /// valid); docker-archive is the `docker save` layout.
    Export {
        name: String,
        file: PathBuf,
        /// oci-archive or docker-archive.
        #[arg(long, default_value = "oci-archive", value_parser = ["oci-archive", "docker-archive"])]
        format: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make an ed25519 signing key; print its public key for [trust] keys.
    Generate {
        /// Where to write the secret key (default: $VERSE_ROOT/etc/verse/keys/signing.key);
        /// the public key goes next to it with `.pub` appended.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shim must stay single-threaded: no runtime, no logging threads.
    if let Command::Shim { config } = &cli.command {
        verse_runtime::run_shim(config);
    }
    // Build steps spawn containers, which needs a single-threaded process too.
    if let Command::BuildStep { config } = &cli.command {
        verse_image::run_step_main(config);
    }
    // Commands that need no daemon and no root.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "verse", &mut script);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => return man_pages(dir),
        Command::Spec(SpecCommand::Schema) => {
            println!("{}", verse_spec::schema::json_schema_text());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let paths = verse_api::Paths::new(cli.root.clone());
    match commands::dispatch(cli.command, paths) {
        Ok(code) => code,
        Err(error) => {
            output::report(&error);
            ExitCode::from(1)
        }
    }
}

/// Writes verse.1 and one page per subcommand (verse-apply.1, verse-image-import.1, ...),
/// as `man verse-apply` finds them once installed under a man1 directory.
fn man_pages(dir: &std::path::Path) -> ExitCode {
    fn write(command: &clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
        let command = command.clone().name(name.to_string());
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        for sub in command
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            write(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    match std::fs::create_dir_all(dir).and_then(|()| write(&command, "verse", dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing man pages into {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// `--disk SIZE`: a size as in the spec, at least the spec's minimum.
fn disk_size(text: &str) -> Result<u64, String> {
    let bytes = verse_spec::units::parse_size(text).map_err(|e| {
        format!(
            "{e}; write e.g. \"1GiB\" (units: {})",
            verse_spec::units::SIZE_UNITS
        )
    })?;
    if bytes < verse_spec::MIN_DISK {
        return Err(format!(
            "{bytes} bytes is too small; at least 16MiB ({} bytes)",
            verse_spec::MIN_DISK
        ));
    }
    Ok(bytes)
}
