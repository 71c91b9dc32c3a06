//! A small typed QMP client: JSON lines over QEMU's unix socket.

use crate::{Result, VmError};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// What `query-status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    pub running: bool,
    pub status: String,
}

impl Qmp {
    /// Connects (retrying until `timeout` while QEMU creates the socket),
    /// reads the greeting and leaves capabilities negotiation mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(VmError::Qmp {
                        path: path.display().to_string(),
                        detail: format!("connecting: {e}"),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let writer = stream.try_clone().map_err(|e| VmError::Qmp {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut qmp = Qmp {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.err(format!("expected the QMP greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn err(&self, detail: String) -> VmError {
        VmError::Qmp {
            path: self.path.display().to_string(),
            detail,
        }
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| self.err(format!("reading: {e}")))?;
        if n == 0 {
            return Err(self.err("QEMU closed the connection".into()));
        }
        serde_json::from_str(&line).map_err(|e| self.err(format!("unreadable reply {line:?}: {e}")))
    }

    /// Runs one command and returns its `return` value; events in between
    /// are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| self.err(format!("sending {command}: {e}")))?;
        loop {
            let reply = self.read()?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                return Err(self.err(format!("{command}: {}", error["desc"])));
            }
        }
    }

    pub fn status(&mut self) -> Result<VmStatus> {
        let value = self.execute("query-status", None)?;
        Ok(VmStatus {
            running: value["running"].as_bool().unwrap_or(false),
            status: value["status"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub fn stop(&mut self) -> Result<()> {
        self.execute("stop", None).map(drop)
    }

    pub fn cont(&mut self) -> Result<()> {
        self.execute("cont", None).map(drop)
    }

    /// Saves the whole VM (RAM and device state) to `path` through QMP
    /// `migrate` to `exec:cat > PATH` (QEMU 7.2 has no `file:` URI) and waits
    /// until QEMU reports the migration complete; block devices are flushed
    /// by then. Stop the VM first for a one-pass, consistent save. Returns the
    /// bytes QEMU wrote. On a failure or after `timeout` the migration is
    /// cancelled and the VM is left as it was (stopped, if it was).
    pub fn migrate_to_file(&mut self, path: &Path, timeout: Duration) -> Result<u64> {
        let quoted = shell_quote(path).ok_or_else(|| {
            self.err(format!(
                "cannot save the VM to {}: the path holds a quote",
                path.display()
            ))
        })?;
        // QEMU 7.2 caps migration at 32 MiB/s by default: lift the cap, the
        // stream goes to a local file.
        self.execute(
            "migrate-set-parameters",
            Some(json!({ "max-bandwidth": 1u64 << 40 })),
        )?;
        self.execute(
            "migrate",
            Some(json!({ "uri": format!("exec:cat > {quoted}") })),
        )?;
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.execute("query-migrate", None)?;
            match info["status"].as_str().unwrap_or_default() {
                "completed" => {
                    return Ok(info["ram"]["total"].as_u64().unwrap_or(0));
                }
                status @ ("failed" | "cancelled") => {
                    return Err(self.err(format!(
                        "saving the VM to {} {status}: {}",
                        path.display(),
                        info["error-desc"].as_str().unwrap_or("no reason given")
                    )));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                let _ = self.execute("migrate_cancel", None);
                return Err(self.err(format!(
                    "saving the VM to {} took longer than {} s; cancelled",
                    path.display(),
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until an incoming migration (`-incoming`) has been loaded:
    /// QEMU's status leaves `inmigrate`. Returns the status it reached.
    pub fn await_incoming(&mut self, timeout: Duration) -> Result<VmStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status()?;
            if status.status != "inmigrate" {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(self.err(format!(
                    "loading the saved VM took longer than {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Ends QEMU at once (the guest gets no say).
    pub fn quit(&mut self) -> Result<()> {
        self.execute("quit", None).map(drop)
    }
}

/// `path` in single quotes for `/bin/sh` (QEMU runs `exec:` URIs through it);
/// None when the path itself holds a single quote.
pub fn shell_quote(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    (!text.contains('\'')).then(|| format!("'{text}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell_or_refused() {
        assert_eq!(
            shell_quote(Path::new("/var/lib/verse/envs/a b/vm.state")).as_deref(),
            Some("'/var/lib/verse/envs/a b/vm.state'")
        );
        assert_eq!(shell_quote(Path::new("/tmp/it's")), None);
    }
}
