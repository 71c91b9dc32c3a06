//! A vm env's two consoles, read by its shim and written to capped logs: the
//! guest kernel's serial console (`kernel.log`) and the main command's output
//! port (`console.log`).
//!
//! QEMU serves each on a unix socket that it listens on with `wait=on`: it
//! does not start the guest until the shim has connected, so no early boot
//! line is lost, and QEMU writes to the sockets without blocking, so a guest
//! that floods its consoles only fills the socket buffer and then waits (its
//! port is throttled) while the shim writes at most the cap to disk.

use crate::console_log::ConsoleLog;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use verse_vm::qemu::VmFiles;

/// Cap of `kernel.log`: the guest kernel's messages are for diagnosing boots.
const KERNEL_LOG_MAX: u64 = 1 << 20;
/// How long QEMU may take to open its console sockets.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

struct Console {
    stream: Option<UnixStream>,
    log: ConsoleLog,
}

pub struct VmConsoles {
    consoles: [Console; 2],
}

impl VmConsoles {
    /// Connects to the kernel console, then the output port, in the order
    /// QEMU waits for them. Fails if QEMU exits first.
    pub fn connect(files: &VmFiles, qemu: Pid, log_max: u64) -> Result<VmConsoles, String> {
        let kernel = connect(&files.kernel_socket, qemu)?;
        let output = connect(&files.console_socket, qemu)?;
        let open = |path: &Path, cap| {
            ConsoleLog::open(path, cap).map_err(|e| format!("opening {}: {e}", path.display()))
        };
        Ok(VmConsoles {
            consoles: [
                Console {
                    stream: Some(kernel),
                    log: open(&files.kernel_log, KERNEL_LOG_MAX)?,
                },
                Console {
                    stream: Some(output),
                    log: open(&files.console_log, log_max)?,
                },
            ],
        })
    }

    /// The sockets still open, with the index [`VmConsoles::on_readable`] takes.
    pub fn fds(&self) -> Vec<(usize, BorrowedFd<'_>)> {
        self.consoles
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.stream.as_ref().map(|s| (i, s.as_fd())))
            .collect()
    }

    /// Copies what console `index` has into its log.
    pub fn on_readable(&mut self, index: usize) {
        if let Some(console) = self.consoles.get_mut(index) {
            console.pump();
        }
    }

    /// Copies whatever both consoles hold (before reading a log, or at exit).
    pub fn drain(&mut self) {
        for console in &mut self.consoles {
            console.pump();
        }
    }
}

impl Console {
    fn pump(&mut self) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded: a guest writing without pause must not hold the poll loop.
        for _ in 0..16 {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.stream = None;
                    return;
                }
                Ok(n) => {
                    if let Err(e) = self.log.write(&buf[..n]) {
                        tracing::warn!("writing a console log: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.stream = None;
                    return;
                }
            }
        }
    }
}

fn connect(path: &Path, qemu: Pid) -> Result<UnixStream, String> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => {
                stream.set_nonblocking(true).map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!("connecting to {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(qemu, Some(WaitPidFlag::WNOHANG))
        {
            return Err("QEMU exited before it opened its console sockets".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
