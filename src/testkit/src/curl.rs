//! The real `curl` binary as a TLS caller.
//!
//! ```no_run
//! # use std::net::Ipv4Addr;
//! # fn demo(ca: &std::path::Path, port: u16) -> sluice_testkit::Result<()> {
//! let got = sluice_testkit::Curl::get(format!("https://a.example.test:{port}/"))
//!     .resolve("a.example.test", port, Ipv4Addr::LOCALHOST.into())
//!     .cacert(ca)
//!     .run()?;
//! assert!(got.ok(), "{got:?}"); // exit 0, HTTP 200, certificate verified
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::error::{IoContext as _, Result};
use crate::process::run_bounded;

/// Extra time past curl's own `--max-time` before it is killed.
const KILL_SLACK: Duration = Duration::from_secs(15);

/// A curl invocation, built up and then [`run`](Curl::run).
///
/// Always passes `-sS` (quiet, but errors shown), `--max-time` (default 30 s),
/// `--connect-timeout 10` and `-w '%{http_code} %{ssl_verify_result}'`; the body goes to
/// [`Self::output_file`] or to a temporary file that [`CurlResult::body`] returns.
#[derive(Debug, Clone)]
pub struct Curl {
    url: String,
    more_urls: Vec<String>,
    args: Vec<OsString>,
    output: Option<PathBuf>,
    max_time: Duration,
}

impl Curl {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            more_urls: Vec::new(),
            args: Vec::new(),
            output: None,
            max_time: Duration::from_secs(30),
        }
    }

    /// `--resolve host:port:addr`: connect there for that name, keeping the name for SNI and
    /// certificate checks.
    pub fn resolve(self, host: &str, port: u16, addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        self.arg("--resolve").arg(format!("{host}:{port}:{addr}"))
    }

    /// `--cacert path`: verify the server against this CA only.
    pub fn cacert(self, path: &Path) -> Self {
        self.arg("--cacert").arg(path)
    }

    /// `-k`: do not verify the certificate (curl still reports `ssl_verify_result`).
    pub fn insecure(self) -> Self {
        self.arg("-k")
    }

    /// `--limit-rate rate`, e.g. `"8M"`: read slowly, to make the tunnel apply backpressure.
    pub fn limit_rate(self, rate: &str) -> Self {
        self.arg("--limit-rate").arg(rate)
    }

    /// Writes the body to `path` instead of a temporary file (for big downloads).
    pub fn output_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.output = Some(path.into());
        self
    }

    /// `--max-time secs` (default 30); curl is killed if it overruns that by 15 s.
    pub fn max_time(mut self, secs: u64) -> Self {
        self.max_time = Duration::from_secs(secs);
        self
    }

    /// A second (third, ...) GET in the same run, on the same connection where the server
    /// keeps it alive; its body is appended to the first's in [`CurlResult::body`].
    pub fn also_get(mut self, url: impl Into<String>) -> Self {
        self.more_urls.push(url.into());
        self
    }

    /// Any other curl argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs curl. A failed transfer is not an `Err`: it is a [`CurlResult`] with a non-zero
    /// [`CurlResult::exit_code`]. `Err` means curl could not be run or overran its time.
    pub fn run(&self) -> Result<CurlResult> {
        let tmp = tempfile::TempDir::new().context(|| "a temp folder for curl".to_owned())?;
        let first = self
            .output
            .clone()
            .unwrap_or_else(|| tmp.path().join("body0"));
        let bodies: Vec<PathBuf> = std::iter::once(first)
            .chain((1..=self.more_urls.len()).map(|i| tmp.path().join(format!("body{i}"))))
            .collect();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--connect-timeout", "10", "--max-time"])
            .arg(self.max_time.as_secs().max(1).to_string())
            // One line per transfer.
            .args(["-w", "%{http_code} %{ssl_verify_result}\\n"]);
        // curl pairs the n-th `-o` with the n-th URL.
        for body in &bodies {
            cmd.arg("-o").arg(body);
        }
        cmd.args(&self.args).arg(&self.url).args(&self.more_urls);
        let done = run_bounded(cmd, self.max_time + KILL_SLACK, "curl", None)?;
        let transfers: Vec<(u16, i64)> = done
            .stdout
            .lines()
            .map(|line| {
                let mut words = line.split_whitespace();
                let code = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let verify = words.next().and_then(|w| w.parse().ok()).unwrap_or(-1);
                (code, verify)
            })
            .collect();
        // With several transfers, the first that went wrong speaks for the run.
        let (http_code, ssl_verify_result) = transfers
            .iter()
            .copied()
            .find(|&(code, verify)| code != 200 || verify != 0)
            .or_else(|| transfers.first().copied())
            .unwrap_or((0, -1));
        let (body_sha256, body_len, body) = if self.output.is_some() {
            let (sha, len) = sha256_file(&bodies[0]).unwrap_or_default();
            (sha, len, Vec::new())
        } else {
            let body: Vec<u8> = bodies
                .iter()
                .flat_map(|b| std::fs::read(b).unwrap_or_default())
                .collect();
            (hex::encode(Sha256::digest(&body)), body.len() as u64, body)
        };
        Ok(CurlResult {
            exit_code: done.status.code().unwrap_or(-1),
            http_code,
            ssl_verify_result,
            stdout: done.stdout,
            stderr: done.stderr,
            body,
            body_len,
            body_sha256,
        })
    }

    /// [`Self::run`] on tokio's blocking pool, for async tests: the runtime's workers stay
    /// free to drive the tunnel that curl's request goes through.
    pub async fn run_async(self) -> Result<CurlResult> {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .map_err(|e| crate::Error::Other(format!("the curl task failed: {e}")))?
    }
}

/// What curl did.
#[derive(Clone, PartialEq, Eq)]
pub struct CurlResult {
    /// curl's exit status (0 = success; e.g. 35 = TLS handshake failed, 28 = timed out,
    /// 52 = empty reply, 56 = receive failure); -1 when killed by a signal.
    pub exit_code: i32,
    /// `%{http_code}`: the HTTP status, 0 when none arrived (with [`Curl::also_get`], that of
    /// the first transfer that did not answer 200 with a verified certificate).
    pub http_code: u16,
    /// `%{ssl_verify_result}`: 0 when the certificate verified; -1 when curl printed none.
    pub ssl_verify_result: i64,
    /// curl's stdout (the `-w` line).
    pub stdout: String,
    /// curl's stderr (its error message, if any).
    pub stderr: String,
    /// The body (every transfer's, in order), unless it went to an [`Curl::output_file`].
    pub body: Vec<u8>,
    /// The body's length in bytes.
    pub body_len: u64,
    /// The body's SHA-256, lower-case hex (of an empty body when none arrived).
    pub body_sha256: String,
}

impl std::fmt::Debug for CurlResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let preview: String = self.body_text().chars().take(400).collect();
        f.debug_struct("CurlResult")
            .field("exit_code", &self.exit_code)
            .field("http_code", &self.http_code)
            .field("ssl_verify_result", &self.ssl_verify_result)
            .field("stderr", &self.stderr)
            .field("body_len", &self.body_len)
            .field("body_sha256", &self.body_sha256)
            .field("body", &preview)
            .finish()
    }
}

impl CurlResult {
    /// Exit 0, HTTP 200 and a verified certificate.
    pub fn ok(&self) -> bool {
        self.exit_code == 0 && self.http_code == 200 && self.ssl_verify_result == 0
    }

    /// The body as (lossy) text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The SHA-256 (hex) and length of a file.
fn sha256_file(path: &Path) -> Option<(String, u64)> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Some((hex::encode(hasher.finalize()), len))
}

/// The SHA-256 (hex) of what the origin sends for `/big/<mib>`: `mib` MiB of byte `i` =
/// `i % 251`.
pub fn sha256_of_pattern(mib: u64) -> String {
    let chunk = crate::origin::pattern_chunk();
    let size = mib * 1024 * 1024;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        done += n as u64;
    }
    hex::encode(hasher.finalize())
}

/// Whether a `curl` binary runs here (tests that need it can say so plainly).
pub fn curl_available() -> bool {
    let mut cmd = Command::new("curl");
    cmd.arg("--version");
    run_bounded(cmd, Duration::from_secs(10), "curl --version", None)
        .map(|d| d.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_hash_matches_the_python_harness() {
        // 1 MiB of i % 251, as Python's hashlib computes it:
        // hashlib.sha256(bytes(i % 251 for i in range(1048576))).hexdigest()
        assert_eq!(
            sha256_of_pattern(1),
            "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769"
        );
        assert_eq!(
            sha256_of_pattern(0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
