//! Building a worker's monoio runtime: io_uring where it works, epoll where it does not.

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use std::io;

use crate::config::IoDriver;

/// The runtime type every worker runs on, whichever driver it got.
pub(crate) type WorkerRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 1024;

/// The driver a worker ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    /// Linux io_uring.
    IoUring,
    /// epoll readiness (the fallback).
    Epoll,
}

impl Driver {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::IoUring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// Builds the runtime for one worker. With [`IoDriver::Auto`], an io_uring that cannot be set
/// up (disabled by `kernel.io_uring_disabled`, blocked by seccomp, short of memlock, or missing
/// operations monoio needs) falls back to epoll; `why` says what happened, for the one log
/// line the edge prints.
pub(crate) fn build(io: IoDriver) -> io::Result<(WorkerRuntime, Driver, Option<String>)> {
    if io != IoDriver::Epoll {
        let uring = RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build();
        let why = match uring {
            Ok(rt) if monoio::utils::detect_uring() => {
                return Ok((FusionRuntime::Uring(rt), Driver::IoUring, None));
            }
            Ok(_) => "the kernel lacks io_uring operations the runtime needs".to_owned(),
            Err(e) => explain(&e),
        };
        if io == IoDriver::IoUring {
            return Err(io::Error::other(format!("io_uring is unavailable: {why}")));
        }
        let rt = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?;
        return Ok((FusionRuntime::Legacy(rt), Driver::Epoll, Some(why)));
    }
    let rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok((FusionRuntime::Legacy(rt), Driver::Epoll, None))
}

fn explain(e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (kernel.io_uring_disabled, or a seccomp profile such as Docker's default, forbids it)"
        }
        Some(libc::ENOMEM) => " (raise the memlock limit: LimitMEMLOCK=infinity)",
        Some(libc::ENOSYS) => " (the kernel has no io_uring)",
        _ => "",
    };
    format!("{e}{hint}")
}
