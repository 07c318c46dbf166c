//! The real SniTun peers: two releases from PyPI, each in its own venv.
//!
//! | release | Python | speaks |
//! |---|---|---|
//! | [`Release::V040`] (snitun 0.40.0) | ≥ 3.10 (`$PEER040_PYTHON`, else `python3`) | protocol 0, aes-cbc |
//! | [`Release::V047`] (snitun 0.47.0) | ≥ 3.13 (searched, see below) | protocols 0–2, aes-cbc, aes-gcm, aes-gcm-siv |
//!
//! 0.40.0 is the newest release that installs on Python 3.10/3.11; 0.47.0 is the one
//! hass-nabucasa pins. The venvs live in `$SLUICE_PEER_CACHE`, else
//! `${XDG_CACHE_HOME:-$HOME/.cache}/sluice/snitun-peers`, as `venv-<release>`. Setting one up
//! runs `python -m venv` and `pip install snitun==<release>` (a minute or so, the first time);
//! a venv that already imports the right snitun is kept as it is. A lock file per release
//! (`venv-<release>.lock`, [`std::fs::File::lock`]) keeps concurrently running test processes
//! from building the same venv twice. pip's output goes to `venv-<release>.setup.log`.
//!
//! The interpreter for 0.47.0 is the first of these that runs and is new enough:
//! `$PEER047_PYTHON` (then nothing else is tried), `python3.13` and `python3` on `PATH`, then
//! `$(pyenv root)/versions/*/bin/python3`, oldest first. A pyenv shim can exist for a version
//! that is not selected and then fails to run: every candidate is run to learn its version.
//!
//! When no such Python exists, 0.47.0 is unavailable and
//! [`SnitunPeers::unavailable_reason`] says why; tests print it and run the 0.40.0 part.
//! Progress and the outcome go to the process's real stderr (not captured by the test
//! harness), once per release and process.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;

use crate::error::{Error, Result};
use crate::process::{Finished, run_bounded};
use crate::wait::wait_for_value;

/// Environment variable naming the cache folder that holds the venvs.
pub const CACHE_ENV: &str = "SLUICE_PEER_CACHE";
/// How long a `pip install` may take.
const PIP_TIMEOUT: Duration = Duration::from_secs(900);
/// How long to wait for another process that holds a venv's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(1200);
/// How long probing one interpreter may take (pyenv shims are slow).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder that holds this crate's Python scripts (`server.py`, `client.py`).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// A SniTun release the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Release {
    /// snitun 0.40.0: protocol 0 and aes-cbc only; the newest release for Python < 3.12.
    V040,
    /// snitun 0.47.0: protocols 0, 1 and 2 with aes-cbc, aes-gcm and aes-gcm-siv; Python ≥ 3.13.
    V047,
}

impl Release {
    /// Both releases, oldest first.
    pub const ALL: [Release; 2] = [Release::V040, Release::V047];

    /// The PyPI version, e.g. `"0.40.0"`.
    pub fn version(self) -> &'static str {
        match self {
            Release::V040 => "0.40.0",
            Release::V047 => "0.47.0",
        }
    }

    /// The oldest Python minor version (3.x) this release installs on.
    pub fn min_python_minor(self) -> u32 {
        match self {
            Release::V040 => 10,
            Release::V047 => 13,
        }
    }

    /// Whether this release speaks `version` with `cipher`.
    pub fn supports(self, version: ProtocolVersion, cipher: CipherKind) -> bool {
        match self {
            Release::V040 => version == ProtocolVersion::V0 && cipher == CipherKind::AesCbc,
            Release::V047 => true,
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.version())
    }
}

/// One installed release: a venv whose python imports `snitun==<release>`.
#[derive(Debug, Clone)]
pub struct Peer {
    release: Release,
    venv: PathBuf,
    python_version: String,
}

impl Peer {
    /// The release.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The venv folder.
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// The venv's python.
    pub fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    /// The venv's Python version, e.g. `"3.13.0"`.
    pub fn python_version(&self) -> &str {
        &self.python_version
    }

    /// Whether this peer speaks `version` with `cipher`.
    pub fn supports(&self, version: ProtocolVersion, cipher: CipherKind) -> bool {
        self.release.supports(version, cipher)
    }

    /// A command that runs one of this crate's scripts (`server.py`, `client.py`) with the
    /// venv's python, unbuffered and without writing `__pycache__` into the source tree.
    pub fn script_command(&self, script: &str) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.arg("-B")
            .arg(scripts_dir().join(script))
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }
}

/// The peers of this process, set up on first use (per release).
#[derive(Debug)]
pub struct SnitunPeers {
    cache: PathBuf,
    v040: OnceLock<Result<Peer, String>>,
    v047: OnceLock<Result<Peer, String>>,
}

impl SnitunPeers {
    /// The peers in the default cache folder ([`default_cache_dir`]), shared by the whole
    /// process. Nothing is set up until a release is asked for.
    pub fn get() -> &'static SnitunPeers {
        static PEERS: OnceLock<SnitunPeers> = OnceLock::new();
        PEERS.get_or_init(|| SnitunPeers::in_dir(default_cache_dir()))
    }

    /// Peers in another cache folder (mostly for testing the setup itself).
    pub fn in_dir(cache: impl Into<PathBuf>) -> SnitunPeers {
        SnitunPeers {
            cache: cache.into(),
            v040: OnceLock::new(),
            v047: OnceLock::new(),
        }
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The peer for `release`, setting it up if this is the first ask in this process; `None`
    /// when it cannot be set up ([`Self::unavailable_reason`] says why).
    pub fn peer(&self, release: Release) -> Option<&Peer> {
        self.state(release).as_ref().ok()
    }

    /// The peer for `release` in a test, by the project's rule: 0.40.0 runs on the Python
    /// 3.11 every machine has, so its absence fails the test (panics with the reason); a
    /// newer release may be missing, and then the test is skipped: `None`, with a `SKIPPED`
    /// line naming `what` and the reason on stderr.
    pub fn for_test(&self, release: Release, what: &str) -> Option<&Peer> {
        if let Some(peer) = self.peer(release) {
            return Some(peer);
        }
        let why = self.unavailable_reason(release).unwrap_or("unknown");
        assert_ne!(release, Release::V040, "snitun 0.40.0 is required: {why}");
        eprintln!("SKIPPED snitun {release} {what}: {why}");
        None
    }

    /// Why `release` cannot be used, in plain words; `None` when it can.
    pub fn unavailable_reason(&self, release: Release) -> Option<&str> {
        self.state(release).as_ref().err().map(String::as_str)
    }

    /// The peer for `release`, or [`Error::Unavailable`] with the reason.
    pub fn require(&self, release: Release) -> Result<&Peer> {
        match self.state(release) {
            Ok(peer) => Ok(peer),
            Err(reason) => Err(Error::Unavailable {
                release: release.version(),
                reason: reason.clone(),
            }),
        }
    }

    fn state(&self, release: Release) -> &Result<Peer, String> {
        let cell = match release {
            Release::V040 => &self.v040,
            Release::V047 => &self.v047,
        };
        cell.get_or_init(|| {
            let start = Instant::now();
            let outcome = setup(&self.cache, release);
            match &outcome {
                Ok((peer, how)) => progress(&format!(
                    "snitun {release} ready: Python {}, {} ({how}, {:.1} s)",
                    peer.python_version,
                    peer.venv.display(),
                    start.elapsed().as_secs_f64()
                )),
                Err(why) => progress(&format!("snitun {release} UNAVAILABLE: {why}")),
            }
            outcome.map(|(peer, _)| peer)
        })
    }
}

/// `$SLUICE_PEER_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/sluice/snitun-peers`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sluice").join("snitun-peers")
}

/// One progress line on the real stderr (the test harness captures only `eprintln!`).
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "sluice-testkit: {line}");
}

/// Sets `release` up in `cache`; on success also says whether it was already there.
fn setup(cache: &Path, release: Release) -> Result<(Peer, &'static str), String> {
    let scripts = scripts_dir();
    if !scripts.join("server.py").is_file() || !scripts.join("client.py").is_file() {
        return Err(format!(
            "the peer scripts are missing from {}",
            scripts.display()
        ));
    }
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the cache folder {}: {e}", cache.display()))?;
    let venv = cache.join(format!("venv-{release}"));
    let lock_path = cache.join(format!("venv-{release}.lock"));
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot create the lock file {}: {e}", lock_path.display()))?;
    let mut announced = false;
    wait_for_value(
        &format!("the lock {}", lock_path.display()),
        LOCK_TIMEOUT,
        || match lock.try_lock() {
            Ok(()) => Some(Ok(())),
            Err(TryLockError::WouldBlock) => {
                if !announced {
                    progress(&format!(
                        "snitun {release}: another process is setting up {}; waiting",
                        venv.display()
                    ));
                    announced = true;
                }
                None
            }
            Err(TryLockError::Error(e)) => Some(Err(e)),
        },
    )
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // The lock is released when `lock` is dropped, at the end of this function.

    if let Ok(python_version) = check_venv(&venv, release) {
        return Ok((
            Peer {
                release,
                venv,
                python_version,
            },
            "already set up",
        ));
    }
    let python = find_python(release)?;
    if venv.exists() && !venv.join("pyvenv.cfg").is_file() {
        let empty = std::fs::read_dir(&venv)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(format!(
                "{} exists, is not empty and is not a venv; refusing to touch it",
                venv.display()
            ));
        }
    }
    let log = cache.join(format!("venv-{release}.setup.log"));
    let _ = std::fs::remove_file(&log);
    progress(&format!(
        "snitun {release}: creating {} with Python {} ({}) and installing snitun=={release} \
         from PyPI; this takes a minute the first time (log: {})",
        venv.display(),
        python.version,
        python.exe.display(),
        log.display()
    ));
    let mut mk = Command::new(&python.exe);
    mk.args(["-m", "venv", "--clear"]).arg(&venv);
    must_succeed(run_bounded(
        mk,
        Duration::from_secs(180),
        "python -m venv",
        Some(&log),
    ))?;
    let mut pip = Command::new(venv.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .arg(format!("snitun=={release}"));
    must_succeed(run_bounded(
        pip,
        PIP_TIMEOUT,
        &format!("pip install snitun=={release}"),
        Some(&log),
    ))?;
    let python_version = check_venv(&venv, release).map_err(|why| {
        format!(
            "snitun {release} was installed in {} but does not work: {why}",
            venv.display()
        )
    })?;
    Ok((
        Peer {
            release,
            venv,
            python_version,
        },
        "created",
    ))
}

fn must_succeed(outcome: Result<Finished>) -> Result<(), String> {
    let finished = outcome.map_err(|e| e.to_string())?;
    if finished.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({}{})",
            finished.status, finished.stdout, finished.stderr
        )
        .replace('\n', " "))
    }
}

/// The Python version of `venv` when it imports everything the scripts use and snitun is
/// `release`; else why not.
fn check_venv(venv: &Path, release: Release) -> Result<String, String> {
    const CHECK: &str = "\
import importlib.metadata as md, sys
import aiohttp, cryptography
import snitun.client.client_peer, snitun.client.connector, snitun.server.run
v = md.version('snitun')
print('%d.%d.%d' % sys.version_info[:3])
sys.exit(0 if v == sys.argv[1] else 'snitun is ' + v)
";
    let python = venv.join("bin").join("python");
    if !python.exists() {
        return Err(format!("{} does not exist", python.display()));
    }
    let mut cmd = Command::new(&python);
    cmd.args(["-B", "-c", CHECK, release.version()]);
    let done =
        run_bounded(cmd, PROBE_TIMEOUT, "the venv check", None).map_err(|e| e.to_string())?;
    if done.status.success() {
        Ok(done.stdout.trim().to_owned())
    } else {
        Err(crate::process::tail(&done.stderr, 3))
    }
}

/// A Python interpreter that runs.
#[derive(Debug)]
struct Python {
    exe: PathBuf,
    version: String,
    minor: u32,
}

/// Runs `candidate` and learns its version and real executable (through pyenv shims).
fn probe(candidate: &Path) -> Option<Python> {
    let mut cmd = Command::new(candidate);
    cmd.args([
        "-c",
        "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)",
    ]);
    let done = run_bounded(cmd, PROBE_TIMEOUT, "a python probe", None).ok()?;
    if !done.status.success() {
        return None;
    }
    let mut lines = done.stdout.lines();
    let version = lines.next()?.trim().to_owned();
    let exe = PathBuf::from(lines.next()?.trim());
    let mut parts = version.split('.');
    if parts.next()? != "3" {
        return None;
    }
    let minor = parts.next()?.parse().ok()?;
    Some(Python {
        exe,
        version,
        minor,
    })
}

/// The interpreter to build `release`'s venv with (see the module doc), or why there is none.
fn find_python(release: Release) -> Result<Python, String> {
    let min = release.min_python_minor();
    let env_var = match release {
        Release::V040 => "PEER040_PYTHON",
        Release::V047 => "PEER047_PYTHON",
    };
    let mut tried = Vec::new();
    let chosen = std::env::var_os(env_var).filter(|v| !v.is_empty());
    let mut no_pyenv = false;
    let candidates: Vec<PathBuf> = match &chosen {
        // An explicit choice is the only candidate.
        Some(chosen) => vec![PathBuf::from(chosen)],
        None if release == Release::V040 => vec![PathBuf::from("python3")],
        None => {
            let mut c = vec![PathBuf::from("python3.13"), PathBuf::from("python3")];
            let pyenv = pyenv_pythons();
            no_pyenv = pyenv.is_empty();
            c.extend(pyenv);
            c
        }
    };
    let mut attempt = |candidate: &Path| match probe(candidate) {
        Some(py) if py.minor >= min => Some(py),
        Some(py) => {
            tried.push(format!("{} is {}", candidate.display(), py.version));
            None
        }
        None => {
            tried.push(format!("{} does not run", candidate.display()));
            None
        }
    };
    for candidate in &candidates {
        if let Some(py) = attempt(candidate) {
            return Ok(py);
        }
    }
    if no_pyenv {
        tried.push("no pyenv versions".to_owned());
    }
    let tried = tried.join(", ");
    Err(match chosen {
        Some(_) => format!("{env_var} is not a Python >= 3.{min} ({tried})"),
        None => format!("no Python >= 3.{min} ({tried}); set {env_var}"),
    })
}

/// `$(pyenv root)/versions/*/bin/python3`, oldest version first; empty without pyenv.
fn pyenv_pythons() -> Vec<PathBuf> {
    let mut cmd = Command::new("pyenv");
    cmd.arg("root");
    let root = match run_bounded(cmd, PROBE_TIMEOUT, "pyenv root", None) {
        Ok(done) if done.status.success() => PathBuf::from(done.stdout.trim()),
        _ => return Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir(root.join("versions")) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(u32::MAX))
                .collect();
            let python = e.path().join("bin").join("python3");
            python.exists().then_some((key, python))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_know_what_they_speak() {
        assert!(Release::V040.supports(ProtocolVersion::V0, CipherKind::AesCbc));
        assert!(!Release::V040.supports(ProtocolVersion::V1, CipherKind::AesCbc));
        assert!(!Release::V040.supports(ProtocolVersion::V0, CipherKind::AesGcm));
        assert!(Release::V047.supports(ProtocolVersion::V2, CipherKind::AesGcmSiv));
        assert_eq!(Release::V047.to_string(), "0.47.0");
    }

    #[test]
    fn the_scripts_are_where_the_crate_says() {
        assert!(scripts_dir().join("server.py").is_file());
        assert!(scripts_dir().join("client.py").is_file());
    }

    #[test]
    fn a_broken_interpreter_is_skipped() {
        assert!(probe(Path::new("/nonexistent/python3")).is_none());
        assert!(probe(Path::new("false")).is_none());
    }
}
