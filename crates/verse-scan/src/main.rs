//! `verse-scan`: YARA rules (yara-x) over files, in a process of its own.
//!
//!     verse-scan [--sandbox] [--rules PATH]... [FILE...]
//!
//! The rules shipped with Verse (`rules/*.yar` in the repository) are built
//! in; `--rules` adds a rule file, or every `*.yar`/`*.yara` file of a
//! directory (a missing directory is skipped). Without FILE it scans its
//! standard input and prints one JSON object
//! `{"matches": [{"rule", "namespace", "tags"}], "error": null}`; with
//! FILEs, one such object per line with `"file"` set.
//!
//! `--sandbox` (how the daemon runs it, on stdin): once the rules are
//! compiled and the input is read, and before any of the input is looked
//! at, a seccomp filter refuses sockets, exec, fork, ptrace, mounts,
//! namespaces, module and key syscalls, and every way to open or change a
//! file. The daemon also starts it in an empty network namespace.

#![forbid(unsafe_code)]

use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Rules built into the binary: (file name, source).
const BUILTIN: &[(&str, &str)] = &[
    ("eicar.yar", include_str!("../../../rules/eicar.yar")),
    ("generic.yar", include_str!("../../../rules/generic.yar")),
];

#[derive(Serialize)]
struct RuleMatch {
    rule: String,
    namespace: String,
    tags: Vec<String>,
}

#[derive(Serialize)]
struct Output {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    matches: Vec<RuleMatch>,
    error: Option<String>,
}

fn usage() -> ! {
    eprintln!("usage: verse-scan [--sandbox] [--rules PATH]... [FILE...]");
    std::process::exit(2);
}

fn fail(message: String) -> ! {
    let out = Output {
        file: None,
        matches: Vec::new(),
        error: Some(message.clone()),
    };
    println!("{}", serde_json::to_string(&out).expect("serialises"));
    eprintln!("verse-scan: {message}");
    std::process::exit(2);
}

fn rule_files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "yar" || e == "yara"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    }
}

fn compile(extra: &[PathBuf]) -> yara_x::Rules {
    let mut compiler = yara_x::Compiler::new();
    compiler.new_namespace("verse");
    for (name, source) in BUILTIN {
        if let Err(e) = compiler.add_source(yara_x::SourceCode::from(*source).with_origin(*name)) {
            fail(format!("built-in rules {name}: {e}"));
        }
    }
    compiler.new_namespace("host");
    for dir in extra {
        for file in rule_files(dir) {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| fail(format!("reading {}: {e}", file.display())));
            let origin = file.display().to_string();
            if let Err(e) =
                compiler.add_source(yara_x::SourceCode::from(text.as_str()).with_origin(&origin))
            {
                fail(format!("rules {origin}: {e}"));
            }
        }
    }
    compiler.build()
}

fn scan(scanner: &mut yara_x::Scanner<'_>, data: &[u8], file: Option<String>) -> Output {
    match scanner.scan(data) {
        Ok(results) => Output {
            file,
            matches: results
                .matching_rules()
                .map(|r| RuleMatch {
                    rule: r.identifier().to_string(),
                    namespace: r.namespace().to_string(),
                    tags: r.tags().map(|t| t.identifier().to_string()).collect(),
                })
                .collect(),
            error: None,
        },
        Err(e) => Output {
            file,
            matches: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Refuses (EPERM; ENOSYS for clone3, so the C library falls back to
/// clone) every syscall the scan has no need for. What stays allowed is
/// memory management, reading and writing the descriptors already open,
/// time, signals and exit: a compromised scanner can print, and nothing else.
fn sandbox() -> Result<(), String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    use std::collections::BTreeMap;
    let denied: &[i64] = &[
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_creat,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
        libc::SYS_mknod,
        libc::SYS_mknodat,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_rmdir,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_link,
        libc::SYS_linkat,
        libc::SYS_symlink,
        libc::SYS_symlinkat,
        libc::SYS_truncate,
        libc::SYS_chmod,
        libc::SYS_fchmodat,
        libc::SYS_chown,
        libc::SYS_lchown,
        libc::SYS_fchownat,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_userfaultfd,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied.iter().map(|s| (*s, Vec::new())).collect();
    // clone: only threads (CLONE_THREAD set) pass; a new process is refused.
    let no_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| e.to_string())?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![no_thread]).map_err(|e| e.to_string())?],
    );
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let program: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    // clone3 passes its flags in memory the filter cannot read: ENOSYS.
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let clone3: seccompiler::BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    // Both filters apply (the kernel runs every installed filter; the
    // strictest answer wins). apply_filter sets no_new_privs first.
    seccompiler::apply_filter(&clone3).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut sandboxed, mut rules, mut files) = (false, Vec::new(), Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sandbox" => sandboxed = true,
            "--rules" => rules.push(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "-h" | "--help" => usage(),
            _ if arg.starts_with("--") => usage(),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let compiled = compile(&rules);
    let mut scanner = yara_x::Scanner::new(&compiled);
    scanner.set_timeout(std::time::Duration::from_secs(60));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if files.is_empty() {
        let mut data = Vec::new();
        if let Err(e) = std::io::stdin().lock().read_to_end(&mut data) {
            fail(format!("reading standard input: {e}"));
        }
        if sandboxed && let Err(e) = sandbox() {
            fail(format!("installing the seccomp filter: {e}"));
        }
        let result = scan(&mut scanner, &data, None);
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&result).expect("serialises")
        );
        return;
    }
    if sandboxed {
        usage();
    }
    for file in files {
        let shown = file.display().to_string();
        let result = match std::fs::read(&file) {
            Ok(data) => scan(&mut scanner, &data, Some(shown)),
            Err(e) => Output {
                file: Some(shown),
                matches: Vec::new(),
                error: Some(e.to_string()),
            },
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&result).expect("serialises")
        );
    }
}
