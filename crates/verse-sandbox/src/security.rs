//! Privilege reduction applied to every process started in an environment (PID 1 and
//! `exec`ed processes): capabilities, no_new_privs, Landlock and seccomp.

use std::collections::BTreeMap;

use caps::{CapSet, Capability, CapsHashSet};
use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, sock_filter,
};

use crate::child::{StepError, StepResult, step_io};
use crate::error::SandboxError;

/// Docker's default capability set minus NET_RAW (no raw sockets: no packet spoofing from
/// the env). Everything else, notably SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, is gone.
pub const ALLOWED_CAPS: [Capability; 13] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Cuts capabilities to [`ALLOWED_CAPS`]. Prevents: regaining dropped caps through exec of
/// file-capability binaries (bounding set), passing caps across exec to non-root programs
/// (ambient, inheritable).
pub(crate) fn drop_capabilities() -> StepResult<()> {
    let allowed: CapsHashSet = ALLOWED_CAPS.into_iter().collect();
    let cap_err = |e: caps::errors::CapsError| {
        // The caps crate does not expose errno; every failure here is a permission problem.
        StepError::new(format!("capabilities: {e}"), libc::EPERM)
    };
    for cap in caps::all() {
        if !allowed.contains(&cap) {
            // Needs CAP_SETPCAP, so before touching the effective set. EINVAL = the kernel
            // does not know this cap: nothing to drop.
            match caps::drop(None, CapSet::Bounding, cap) {
                Ok(()) => {}
                Err(_) if !caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(true) => {}
                Err(e) => return Err(cap_err(e)),
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(cap_err)?;
    caps::clear(None, CapSet::Inheritable).map_err(cap_err)?;
    caps::set(None, CapSet::Effective, &allowed).map_err(cap_err)?;
    caps::set(None, CapSet::Permitted, &allowed).map_err(cap_err)?;
    Ok(())
}

/// PR_SET_NO_NEW_PRIVS: execve can never grant privileges again (setuid/setgid bits and file
/// capabilities become inert), and it lets an unprivileged process install seccomp/Landlock.
pub(crate) fn set_no_new_privs() -> StepResult<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    step_io(rc, || "prctl(PR_SET_NO_NEW_PRIVS)".into())
}

/// Landlock, best effort (skipped on kernels without it).
///
/// The only rule is "full access beneath the env's `/`". What this buys: filesystem access
/// is then restricted to the env's own mount tree, so a file descriptor that points outside
/// it (leaked from the host, received over a unix socket, or reached via /proc/PID/fd of a
/// host-side process) cannot be used to open, create or execute anything; and the domain
/// blocks ptrace of processes outside it.
///
/// ABI 6 scopes (abstract unix sockets, signals) are deliberately NOT enabled: every
/// process we start (PID 1, each `exec`) gets its own sibling domain, and scopes would stop
/// `verse exec env kill -HUP 1` or an exec'd client connecting to the main service's
/// abstract socket. The env's own net and pid namespaces already give the isolation those
/// scopes would add (abstract sockets are per net ns, signals need a visible pid).
pub(crate) fn apply_landlock() -> StepResult<()> {
    let abi = ABI::V6;
    let all = AccessFs::from_all(abi);
    let root = PathFd::new("/")
        .map_err(|e| StepError::new(format!("landlock: open /: {e}"), libc::EIO))?;
    Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rule(PathBeneath::new(root, all)))
        .and_then(|r| r.restrict_self())
        .map(|_| ())
        .map_err(|e| StepError::new(format!("landlock: {e}"), libc::EPERM))
}

// clone(2)/unshare(2) namespace flags. CLONE_NEWTIME (0x80) overlaps clone's exit-signal
// byte, so it is only checked for unshare.
const NS_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The two seccomp programs, compiled before forking.
pub(crate) struct SeccompPrograms {
    main: BpfProgram,
    x32: Option<BpfProgram>,
}

/// Syscalls that fail with EPERM unconditionally. This is Docker's default profile's
/// "needs CAP_SYS_ADMIN/… or always denied" list, which the env never has anyway, so the
/// filter is a second wall in front of kernel code the env has no business reaching:
/// - mount API (mount, umount2, pivot_root, fsopen…): re-arranging the mount tree;
/// - kexec, modules, reboot, swap, acct, clock setting, syslog: whole-host operations;
/// - bpf, perf_event_open, userfaultfd, keyctl/add_key/request_key, io_uring_*: large
///   attack surface with a history of privilege escalation bugs (io_uring also bypasses
///   seccomp for the operations it performs, so it is denied as in current Docker);
/// - open_by_handle_at/name_to_handle_at: the "shocker" escape (open host files by handle);
/// - setns: joining other namespaces through leaked nsfs fds;
/// - kcmp, process_vm_readv/writev: cross-process memory inspection (Docker allows them only
///   with CAP_SYS_PTRACE, which the env never has). ptrace itself stays allowed, as in Docker.
/// - lookup_dcookie, quotactl, iopl/ioperm, uselib, ustat, sysfs: obsolete or hardware access.
fn denied_syscalls() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_setns,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_syslog,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_lookup_dcookie,
        libc::SYS_kcmp,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS_ustat,
        libc::SYS_sysfs,
    ]);
    v
}

fn masked_bit(arg: u8, bit: u64) -> SeccompRule {
    // Rule matches when (arg & bit) == bit.
    SeccompRule::new(vec![
        SeccompCondition::new(
            arg,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(bit),
            bit,
        )
        .expect("valid condition"),
    ])
    .expect("non-empty rule")
}

impl SeccompPrograms {
    /// Compiles the filters for the running architecture.
    pub(crate) fn build() -> Result<Self, SandboxError> {
        let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for nr in denied_syscalls() {
            rules.insert(nr, vec![]); // empty chain = always matches
        }
        // Creating namespaces (above all a user namespace, where the process would regain a
        // full capability set to attack kernel code with) is denied; plain fork/threads work.
        let clone_rules = NS_FLAGS.iter().map(|&f| masked_bit(0, f)).collect();
        rules.insert(libc::SYS_clone, clone_rules);
        let mut unshare_rules: Vec<_> = NS_FLAGS.iter().map(|&f| masked_bit(0, f)).collect();
        unshare_rules.push(masked_bit(0, libc::CLONE_NEWTIME as u64));
        rules.insert(libc::SYS_unshare, unshare_rules);
        // personality: only the values Docker allows (0, UNAME26, ADDR_NO_RANDOMIZE combos
        // and the 0xffffffff query); others (e.g. READ_IMPLIES_EXEC) weaken protections.
        let pers_ok: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
        let pers = pers_ok
            .iter()
            .map(|&v| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        rules.insert(
            libc::SYS_personality,
            vec![SeccompRule::new(pers).map_err(err)?],
        );

        let arch = std::env::consts::ARCH
            .try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )
        .map_err(err)?;
        let mut main: BpfProgram = filter.try_into().map_err(err)?;

        // clone3 passes its flags in a struct seccomp cannot read: answer ENOSYS so libc
        // falls back to clone(2), whose flags the main filter checks. Prepended to the main
        // program: load nr, if clone3 return ENOSYS.
        let clone3 = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_clone3 as u32, 0, 1),
            stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ];
        // seccompiler's program starts with its own arch check (kills on a foreign arch,
        // e.g. the i386 int 0x80 ABI) and loads what it needs, so prepending is safe.
        main.splice(0..0, clone3);

        Ok(SeccompPrograms {
            main,
            x32: x32_filter(),
        })
    }

    /// Installs the filters. Must be the last step before execve (needs no_new_privs).
    pub(crate) fn apply(&self) -> StepResult<()> {
        for prog in std::iter::once(&self.main).chain(self.x32.as_ref()) {
            seccompiler::apply_filter(prog).map_err(|e| {
                StepError::new(format!("install seccomp filter: {e}"), libc::EINVAL)
            })?;
        }
        Ok(())
    }
}

// Classic BPF opcodes (linux/filter.h) and seccomp_data offsets.
const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
#[cfg(target_arch = "x86_64")]
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_DATA_NR: u32 = 0;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// x32 syscalls share AUDIT_ARCH_X86_64 but have bit 30 set in the number; they would slip
/// past the main filter's per-number rules, so deny every number >= 0x40000000.
#[cfg(target_arch = "x86_64")]
fn x32_filter() -> Option<BpfProgram> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    Some(vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR),
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    ])
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_filter() -> Option<BpfProgram> {
    None
}
