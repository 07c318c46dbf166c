//! The edge where io_uring is blocked, as Docker's default seccomp profile blocks it: it runs
//! on epoll and says why in one line; asked for io_uring only, it refuses to start.
//!
//! The blocker is real: the `sluice` binary is started under a seccomp filter that fails
//! `io_uring_setup` with EPERM.

#![allow(unsafe_code)] // pre_exec and the seccomp syscalls, in the child only; see `block_io_uring`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn keys_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("keys");
    std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    path
}

fn edge(io: &str) -> Child {
    let dir = std::env::temp_dir().join(format!("sluice-fallback-{}-{io}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args([
        "edge",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--io",
        io,
    ])
    .arg("--fernet-keys")
    .arg(keys_file(&dir))
    .env("SLUICE_LOG", "info")
    .env("NO_COLOR", "1")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: the closure only makes syscalls (no allocation, no locks) between fork and exec.
    unsafe { cmd.pre_exec(block_io_uring) };
    cmd.spawn().unwrap()
}

/// Reads stderr lines until `done` says stop or 20 s pass.
fn lines_until(child: &mut Child, mut done: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let end = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let clean = strip_ansi(&line);
        let stop = done(&clean);
        out.push(clean);
        if stop {
            break;
        }
    }
    child.stderr = Some(reader.into_inner());
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn blocked_io_uring_falls_back_to_epoll_with_one_line() {
    let mut child = edge("auto");
    let lines = lines_until(&mut child, |l| l.contains("edge started"));
    let started = lines
        .iter()
        .find(|l| l.contains("edge started"))
        .expect("the edge started");
    let fallback: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("io_uring unavailable"))
        .collect();
    assert_eq!(
        fallback.len(),
        1,
        "one line for the whole edge, not one per worker: {lines:#?}"
    );
    assert!(
        fallback[0].contains("seccomp"),
        "it says what to look at: {}",
        fallback[0]
    );
    assert!(started.contains("driver=\"epoll\""), "{started}");
    // The metrics say the same.
    let admin: std::net::SocketAddr = started
        .split("admin=Some(")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(admin).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).unwrap();
    assert!(
        metrics.contains("sluice_io_driver{worker=\"1\",driver=\"epoll\"} 1"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn io_uring_only_refuses_to_start_without_it() {
    let mut child = edge("io-uring");
    let lines = lines_until(&mut child, |_| false);
    let status = child.wait().unwrap();
    assert!(!status.success());
    let all = lines.join("");
    assert!(all.contains("io_uring is unavailable"), "{all}");
}
