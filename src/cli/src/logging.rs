//! Log output: `tracing` to stderr, filtered by `SLUICE_LOG` (or `RUST_LOG`), `info` by default.

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .try_init();
}
