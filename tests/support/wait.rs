//! The one deadline poller of the tests: check a state until it is reached, or fail after a
//! time limit naming what was awaited. Tests never sleep to let something happen; they wait
//! on something they can observe (a file, a metric, an exit status, an API answer).
//!
//! Sync: [`within`] (returns the last answer at the deadline, for waits that clean up
//! before failing) and [`poll_until`] (panics). Async, on tokio's clock: [`within_async`],
//! [`eventually`] and [`eventually_ok`] (whose panic shows the last answer). Each checks at
//! least once, even with a zero limit.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Time between two checks of a sync wait (a file read, a loopback HTTP request).
const EVERY: Duration = Duration::from_millis(10);
/// Time between two checks of an async wait (usually an HTTPS request).
const EVERY_ASYNC: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Ok`, and returns that; or, once `limit` has passed, the
/// last `Err` (what was seen instead). For waits that clean up before failing.
pub fn within<T, E>(limit: Duration, mut check: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(seen) if std::time::Instant::now() >= deadline => return Err(seen),
            Err(_) => std::thread::sleep(EVERY),
        }
    }
}

/// Calls `check` until it returns `Some` and returns that; panics naming `what` when
/// `limit` passes first.
#[track_caller]
pub fn poll_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    match within(limit, || check().ok_or(())) {
        Ok(v) => v,
        Err(()) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// [`within`] for async checks, on tokio's clock.
pub async fn within_async<T, E, F, Fut>(limit: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(seen) if tokio::time::Instant::now() >= deadline => return Err(seen),
            Err(_) => tokio::time::sleep(EVERY_ASYNC).await,
        }
    }
}

/// [`poll_until`] for async checks.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let answer = within_async(limit, || {
        let next = check();
        async move { next.await.ok_or(()) }
    });
    match answer.await {
        Ok(v) => v,
        Err(()) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// [`eventually`] for a check that says what it saw instead (`Err`); the last one is in
/// the panic message.
pub async fn eventually_ok<T, E, F, Fut>(limit: Duration, what: &str, check: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match within_async(limit, check).await {
        Ok(v) => v,
        Err(seen) => panic!("timed out after {limit:?}: {what}; last seen: {seen}"),
    }
}

#[test]
fn a_zero_limit_still_checks_once() {
    let mut checks = 0;
    assert_eq!(
        within(Duration::ZERO, || {
            checks += 1;
            Err::<(), _>(checks)
        }),
        Err(1)
    );
    assert_eq!(poll_until(Duration::ZERO, "at once", || Some(7)), 7);
}

#[test]
#[should_panic(expected = "timed out after 30ms: a state never reached")]
fn a_state_never_reached_fails_naming_it() {
    poll_until(Duration::from_millis(30), "a state never reached", || {
        None::<()>
    });
}

#[tokio::test]
async fn an_async_wait_gives_the_last_answer_at_the_deadline() {
    let mut checks = 0;
    let last = within_async(Duration::from_millis(50), || {
        checks += 1;
        let seen = checks;
        async move { Err::<(), _>(seen) }
    })
    .await;
    assert!(checks > 1, "{checks}");
    assert_eq!(last, Err(checks));
}

#[tokio::test]
#[should_panic(expected = "timed out after 0ns: a state never reached; last seen: no")]
async fn an_async_wait_that_fails_shows_the_last_answer() {
    eventually_ok(Duration::ZERO, "a state never reached", || async {
        Err::<(), _>("no")
    })
    .await;
}
