//! The edge where io_uring is blocked, as Docker's default seccomp profile blocks it: it runs
//! on epoll and says why in one line; asked for io_uring only, it refuses to start.
//!
//! The blocker is real: the `sluice` binary is started under a seccomp filter that fails
//! `io_uring_setup` with EPERM.

#![allow(unsafe_code)] // pre_exec and the seccomp syscalls, in the child only; see `block_io_uring`

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use sluice_proto::token::FernetKey;
use sluice_testkit::{EdgeReady, LoggedChild, RunDir, http_get, write_key_file};

const WAIT: Duration = Duration::from_secs(20);

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Installs a seccomp filter that makes `io_uring_setup` fail with EPERM (everything else is
/// allowed). Runs in the forked child before exec.
fn block_io_uring() -> std::io::Result<()> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let nr = libc::SYS_io_uring_setup as u32;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut filter = [
        f(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ_K, 0, 3, AUDIT_ARCH),
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ_K, 0, 1, nr),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: plain syscalls with valid arguments; `prog` outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const _ as libc::c_ulong,
                0,
                0,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The edge with `--io io`, io_uring blocked; `None` (and a skip line) where this machine
/// cannot install the seccomp filter that blocks it.
fn edge(io: &str, dir: &RunDir) -> Option<LoggedChild> {
    let keys = dir.path().join("keys");
    write_key_file(&keys, &[FernetKey::generate(&mut rand::rngs::OsRng)]).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["edge", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--workers", "2", "--io", io])
        .arg("--fernet-keys")
        .arg(keys)
        .env("SLUICE_LOG", "info")
        .env("NO_COLOR", "1");
    // SAFETY: the closure only makes syscalls (no allocation, no locks) between fork and exec.
    unsafe { cmd.pre_exec(block_io_uring) };
    match LoggedChild::spawn(cmd, &dir.path().join("edge.log"), "sluice edge") {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("skipped: cannot block io_uring with seccomp here ({e})");
            None
        }
    }
}

#[test]
fn blocked_io_uring_falls_back_to_epoll_with_one_line() {
    let dir = RunDir::new("sluice-fallback-").unwrap();
    let Some(mut child) = edge("auto", &dir) else {
        return;
    };
    let ready = EdgeReady::wait(&mut child, WAIT).unwrap();
    // The warning comes before the edge is ready.
    let log = child.log();
    let fallback: Vec<_> = log
        .lines()
        .filter(|l| l.contains("io_uring unavailable"))
        .collect();
    assert_eq!(
        fallback.len(),
        1,
        "one line for the whole edge, not one per worker: {log}"
    );
    assert!(
        fallback[0].contains("seccomp"),
        "it says what to look at: {}",
        fallback[0]
    );
    assert_eq!(ready.driver, "epoll", "{ready:?}");
    // The metrics say the same.
    let admin = ready.admin.expect("an admin endpoint");
    let metrics = http_get(admin, "/metrics", WAIT).unwrap();
    assert!(
        metrics.contains("sluice_io_driver{worker=\"1\",driver=\"epoll\"} 1"),
        "{metrics}"
    );
}

#[test]
fn io_uring_only_refuses_to_start_without_it() {
    let dir = RunDir::new("sluice-fallback-").unwrap();
    let Some(mut child) = edge("io-uring", &dir) else {
        return;
    };
    let status = child.wait_exit(WAIT).unwrap();
    assert!(!status.success());
    let all = child.log();
    assert!(all.contains("io_uring is unavailable"), "{all}");
}
