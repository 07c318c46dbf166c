//! Temporary run folders (configs, logs, certificates) that outlive a failing test.

use std::io::Write as _;
use std::path::Path;

use crate::error::{IoContext as _, Result};

/// Environment variable: when set (non-empty), run folders are always kept.
pub const KEEP_ENV: &str = "SLUICE_TESTKIT_KEEP";

/// A temporary folder, removed on drop unless the thread is panicking (a failing test) or
/// `$SLUICE_TESTKIT_KEEP` is set; a kept folder's path goes to stderr.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
}

impl RunDir {
    /// A fresh folder under the system temp folder, named `<prefix>XXXXXX`.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context(|| format!("creating a temp folder {prefix}*"))?;
        Ok(Self { dir: Some(dir) })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        // Only `drop` takes the TempDir out.
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let keep =
            std::thread::panicking() || std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty());
        if let (true, Some(dir)) = (keep, self.dir.take()) {
            let path = dir.keep();
            let _ = writeln!(
                std::io::stderr(),
                "sluice-testkit: kept {} (logs and configs)",
                path.display()
            );
        }
    }
}

/// Writes `contents` to `path`.
pub(crate) fn write_file(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).context(|| format!("writing {}", path.display()))
}
