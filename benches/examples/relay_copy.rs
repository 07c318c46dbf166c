//! What the kernel's copies cost a relay, and whether `splice` through a pipe saves them.
//!
//! The edge moves a browser's bytes into the tunnel as `[32-byte frame header][payload]` and
//! the tunnel's payloads back out to browsers. Its profile (`flamegraphs/README.md`) shows the
//! kernel's copies into and out of user space as the largest single cost in bulk. This
//! measures, with plain blocking sockets on loopback and nothing else in the way, one relay
//! thread moving bytes from one TCP connection to another four ways:
//!
//! - `read-write`: `read` into a 64 KiB buffer, `write` it out (nginx's way);
//! - `read-writev-header`: the same with a 32-byte header before every chunk, sent with one
//!   `writev` (the edge's browser-to-tunnel path);
//! - `splice`: `splice` socket to pipe, pipe to socket, 64 KiB at a time (no user-space copy);
//! - `splice-header`: `splice` into the pipe, `write` the header, `splice` out of the pipe
//!   (what a splicing edge would have to do, as a frame's header carries its length).
//!
//! It prints, per mode, the throughput and the relay thread's CPU seconds per GB (user and
//! system), the median of `ROUNDS` runs. Run it with
//! `cargo run --release -p sluice-benches --example relay_copy [-- GIB ROUNDS]`.
#![allow(unsafe_code)] // splice(2), pipe2(2) and the thread CPU clock have no safe std wrapper

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
const HEADER: [u8; 32] = [0x5a; 32];
const MODES: [&str; 4] = [
    "read-write",
    "read-writev-header",
    "splice",
    "splice-header",
];

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let total = gib << 30;
    println!("{gib} GiB per run, median of {rounds} runs, modes alternating inside each round");
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); MODES.len()];
    for _ in 0..rounds {
        for (i, mode) in MODES.iter().enumerate() {
            results[i].push(run(mode, total)?);
        }
    }
    println!(
        "{:<20} {:>10} {:>22}",
        "mode", "Gbit/s", "relay CPU s per GB"
    );
    for (mode, mut runs) in MODES.iter().zip(results) {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (gbit, _) = runs[runs.len() / 2];
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (_, cpu) = runs[runs.len() / 2];
        println!("{mode:<20} {gbit:>10.2} {cpu:>22.3}");
    }
    Ok(())
}

/// One relay of `total` bytes: returns (Gbit/s, relay CPU seconds per GB).
fn run(mode: &str, total: u64) -> io::Result<(f64, f64)> {
    let (mut src_w, src_r) = pair()?;
    let (dst_w, mut dst_r) = pair()?;
    let source = thread::spawn(move || -> io::Result<()> {
        let buf = vec![0xa5u8; 256 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            src_w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        src_w.shutdown(Shutdown::Write)
    });
    let sink = thread::spawn(move || -> io::Result<u64> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            match dst_r.read(&mut buf)? {
                0 => return Ok(got),
                n => got += n as u64,
            }
        }
    });
    let start = Instant::now();
    let cpu_start = thread_cpu();
    let (relayed, chunks) = match mode {
        "read-write" => relay_read(src_r, dst_w, false)?,
        "read-writev-header" => relay_read(src_r, dst_w, true)?,
        "splice" => relay_splice(src_r, dst_w, false)?,
        _ => relay_splice(src_r, dst_w, true)?,
    };
    let cpu = thread_cpu() - cpu_start;
    let wall = start.elapsed();
    source
        .join()
        .map_err(|_| io::Error::other("source panicked"))??;
    let got = sink
        .join()
        .map_err(|_| io::Error::other("sink panicked"))??;
    let headers = if mode.ends_with("header") {
        chunks * HEADER.len() as u64
    } else {
        0
    };
    if relayed != total || got != total + headers {
        return Err(io::Error::other(format!(
            "{mode}: relayed {relayed}, sink got {got}"
        )));
    }
    let gb = total as f64 / 1e9;
    Ok((gb * 8.0 / wall.as_secs_f64(), cpu.as_secs_f64() / gb))
}

fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
    }
    Ok((a, b))
}

/// Returns the bytes and the chunks moved.
fn relay_read(mut from: TcpStream, mut to: TcpStream, header: bool) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; CHUNK];
    let (mut moved, mut chunks) = (0u64, 0u64);
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            to.shutdown(Shutdown::Write)?;
            return Ok((moved, chunks));
        }
        if header {
            write_all_vectored(&mut to, &HEADER, &buf[..n])?;
        } else {
            to.write_all(&buf[..n])?;
        }
        moved += n as u64;
        chunks += 1;
    }
}

fn write_all_vectored(to: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let n = to.write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// Returns the bytes and the chunks moved.
fn relay_splice(from: TcpStream, mut to: TcpStream, header: bool) -> io::Result<(u64, u64)> {
    let (pipe_r, pipe_w) = pipe()?;
    let (mut moved, mut chunks) = (0u64, 0u64);
    loop {
        let n = splice(from.as_raw_fd(), pipe_w.as_raw_fd(), CHUNK)?;
        if n == 0 {
            to.shutdown(Shutdown::Write)?;
            return Ok((moved, chunks));
        }
        if header {
            to.write_all(&HEADER)?;
        }
        let mut left = n;
        while left > 0 {
            let out = splice(pipe_r.as_raw_fd(), to.as_raw_fd(), left)?;
            if out == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= out;
        }
        moved += n as u64;
        chunks += 1;
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, null offsets (both are a socket or a pipe).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
