//! Child processes with a log file, bounded waits and a certain end.
//!
//! [`LoggedChild`] runs a command in its own process group with stdout and stderr appended to
//! one log file; tests read the log line by line ([`LoggedChild::next_line`]), signal the
//! process and wait for its exit, each with a timeout. Dropping it sends SIGTERM to the process, waits a few seconds for a clean exit,
//! then sends SIGKILL to the whole group (snitun's worker mode leaves worker, manager and
//! forkserver processes behind otherwise) and reaps the process. The process is never reaped
//! before the group is killed, so its process group id cannot have been reused by then.
//!
//! [`run_bounded`] runs a short command to completion with a timeout.

use std::fs::OpenOptions;
use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use crate::error::{Error, IoContext as _, Result};
use crate::rundir::RunDir;

/// How long a child gets to exit after SIGTERM before its process group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running child process whose stdout and stderr go to a log file.
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// let mut cmd = Command::new("sh");
/// cmd.args(["-c", "echo one; echo ready at 5; exec sleep 30"]);
/// let mut child = sluice_testkit::LoggedChild::start(cmd, "sh").unwrap();
/// let line = child.next_line("the ready line", Duration::from_secs(10), |l| l.starts_with("ready")).unwrap();
/// assert_eq!(line, "ready at 5");
/// child.signal(sluice_testkit::Signal::SIGTERM).unwrap();
/// assert!(!child.wait_exit(Duration::from_secs(10)).unwrap().success());
/// ```
#[derive(Debug)]
pub struct LoggedChild {
    what: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
    /// Complete log lines already handed out by [`Self::next_line`].
    lines_read: usize,
    /// The folder of the log, when this child made its own.
    _dir: Option<RunDir>,
}

impl LoggedChild {
    /// Starts `cmd` as [`Self::spawn`] does, with its log in a run folder of its own (kept when
    /// the test fails).
    pub fn start(cmd: Command, what: &str) -> Result<Self> {
        let dir = RunDir::new(&format!("sluice-{what}-"))?;
        let mut child = Self::spawn(cmd, &dir.path().join(format!("{what}.log")), what)?;
        child._dir = Some(dir);
        Ok(child)
    }

    /// Starts `cmd` in a new process group, stdin from /dev/null, stdout and stderr appended
    /// to `log` (created if needed). `what` names the process in errors.
    pub fn spawn(mut cmd: Command, log: &Path, what: impl Into<String>) -> Result<Self> {
        let what = what.into();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("opening log file {}", log.display()))?;
        let err = out
            .try_clone()
            .context(|| format!("duplicating log file {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .context(|| format!("starting {what}: {cmd:?}"))?;
        Ok(Self {
            what,
            child,
            log: log.to_owned(),
            stopped: false,
            lines_read: 0,
            _dir: None,
        })
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (lossy UTF-8; empty if it cannot be read).
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, in words, or `None` while it runs. Does not reap it.
    pub fn exit_status(&self) -> Option<String> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.nix_pid()), flags) {
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exit status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("killed by {sig}")),
            // Still running, or stopped/continued: still there.
            Ok(_) => None,
            // ECHILD: already reaped, i.e. stopped by us.
            Err(_) => Some("already reaped".to_owned()),
        }
    }

    /// Waits until `parse` accepts a line of the log, and returns what it made of it.
    ///
    /// Fails with [`Error::Exited`] when the process exits first, and with [`Error::Timeout`]
    /// after `timeout`; both carry the tail of the log.
    pub fn wait_line<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut parse: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        self.wait_log(what, timeout, |log| log.lines().find_map(&mut parse))
    }

    /// Waits until `check` finds something in the whole log; see [`Self::wait_line`].
    pub fn wait_log<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            // Look at the exit status first: a process that printed and then exited still
            // counts as found.
            let exited = self.exit_status();
            if let Some(found) = check(&self.log()) {
                return Ok(found);
            }
            if let Some(status) = exited {
                return Err(Error::Exited {
                    what: format!("{} (while waiting for {what})", self.what),
                    status,
                    log: Some(self.log.clone()),
                    log_tail: self.log_tail(40),
                });
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Err(Error::Timeout {
                    what: format!("{what} from {}", self.what),
                    after: timeout,
                    log: Some(self.log.clone()),
                    log_tail: self.log_tail(40),
                });
            }
            std::thread::sleep(pause.min(timeout - elapsed));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The next complete line of the log (after those this returned before) that `matches`
    /// accepts; lines it passes over are not looked at again. Fails as [`Self::wait_line`].
    pub fn next_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        let from = self.lines_read;
        let (at, line) = self.wait_log(what, timeout, |log| {
            // Only lines already ended: a line being written could match on half its words.
            let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
            whole
                .lines()
                .enumerate()
                .skip(from)
                .find(|(_, l)| matches(l))
                .map(|(i, l)| (i, l.to_owned()))
        })?;
        self.lines_read = at + 1;
        Ok(line)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        kill(self.nix_pid(), signal)
            .map_err(|e| Error::Other(format!("sending {signal} to {}: {e}", self.what)))
    }

    /// Waits up to `timeout` for the process to exit by itself and reaps it; on timeout it is
    /// left running (and stopped on drop) and the error carries the tail of the log.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if !self.stopped {
            crate::wait::wait_for(&format!("{} to exit", self.what), timeout, || {
                self.exit_status().is_some()
            })
            .map_err(|_| Error::Timeout {
                what: format!("{} to exit", self.what),
                after: timeout,
                log: Some(self.log.clone()),
                log_tail: self.log_tail(40),
            })?;
            self.stopped = true;
            // Not reaped yet, so the group id is still ours: sweep what it left behind.
            let _ = killpg(self.nix_pid(), Signal::SIGKILL);
        }
        self.child
            .wait()
            .context(|| format!("reaping {}", self.what))
    }

    /// Stops the process: SIGTERM, up to `grace` for it to exit, then SIGKILL to its whole
    /// process group, then reaps it. Returns its exit status (`None` if it could not be
    /// reaped). Idempotent.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.stopped {
            return self.child.try_wait().ok().flatten();
        }
        self.stopped = true;
        let pid = self.nix_pid();
        if self.exit_status().is_none() {
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while self.exit_status().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The leader is not reaped yet (at worst a zombie), so the group id is still ours.
        // This also sweeps workers, managers and forkservers the process left behind.
        let _ = killpg(pid, Signal::SIGKILL);
        self.child.wait().ok()
    }

    fn nix_pid(&self) -> Pid {
        // A pid always fits: the kernel hands out positive i32s.
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// Reads a file as lossy UTF-8; empty if it cannot be read.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What a finished [`run_bounded`] command said.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` to completion with stdin from /dev/null and stdout/stderr captured, for at most
/// `timeout`; on timeout the process group is killed and an [`Error::Timeout`] returned.
///
/// With `log`, stdout and stderr go to that file instead (appended) and come back empty.
pub(crate) fn run_bounded(
    mut cmd: Command,
    timeout: Duration,
    what: &str,
    log: Option<&Path>,
) -> Result<Finished> {
    cmd.stdin(Stdio::null()).process_group(0);
    let mut readers = Vec::new();
    if let Some(log) = log {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("opening {}", log.display()))?;
        let err = out
            .try_clone()
            .context(|| format!("duplicating {}", log.display()))?;
        cmd.stdout(out).stderr(err);
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().context(|| format!("starting {what}"))?;
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        readers.push(std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        }));
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context(|| format!("waiting for {what}"))? {
            break status;
        }
        if start.elapsed() >= timeout {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait();
            if let Some(Ok(mut f)) = log.map(|l| OpenOptions::new().append(true).open(l)) {
                let _ = writeln!(f, "[sluice-testkit] killed after {timeout:?}");
            }
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
                log: log.map(Path::to_owned),
                log_tail: log.map(|l| tail(&read_lossy(l), 30)).unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut texts = readers
        .into_iter()
        .map(|r| r.join().unwrap_or_default())
        .collect::<Vec<_>>()
        .into_iter();
    Ok(Finished {
        status,
        stdout: texts.next().unwrap_or_default(),
        stderr: texts.next().unwrap_or_default(),
    })
}
