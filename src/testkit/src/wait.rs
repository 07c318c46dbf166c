//! Bounded polling: every wait in this crate has a timeout.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Polls `condition` until it returns `Some`, for at most `timeout`, and returns that value.
///
/// Polls at once, then after 100 µs, backing off to every 100 ms (a wait for the edge to take
/// each of a thousand bytes must not cost milliseconds a byte). `what` names the condition in
/// the timeout error.
pub fn wait_for_value<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(timeout_error(what, timeout));
        }
        std::thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Polls `condition` until it holds, for at most `timeout`.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// sluice_testkit::wait_for("50 ms to pass", Duration::from_secs(5), || {
///     start.elapsed() >= Duration::from_millis(50)
/// })
/// .unwrap();
/// ```
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) -> Result<()> {
    wait_for_value(what, timeout, || condition().then_some(()))
}

/// [`wait_for`] for async tests: polls `condition` every 10 ms (backing off to 100 ms) on the
/// tokio timer, for at most `timeout`, so that the runtime keeps driving whatever is to make it
/// true.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if condition() {
            return Ok(());
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(timeout_error(what, timeout));
        }
        tokio::time::sleep(pause.min(timeout - elapsed)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn timeout_error(what: &str, after: Duration) -> Error {
    Error::Timeout {
        what: what.to_owned(),
        after,
        log: None,
        log_tail: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_the_timeout() {
        let start = Instant::now();
        let err = wait_for("never", Duration::from_millis(120), || false).unwrap_err();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(err.to_string().contains("never"), "{err}");
    }

    #[test]
    fn returns_the_value() {
        let mut n = 0;
        let got = wait_for_value("third poll", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        })
        .unwrap();
        assert_eq!(got, 3);
    }
}
