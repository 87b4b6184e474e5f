//! The one poll loop: every interval it reads every tracked key in as few calls as it can
//! ([`VersionSource`]); keys queued for an immediate read (new keys, `refresh_now`) are
//! read after a short debounce, so a first request is answered quickly and many new
//! clients arriving together share one read.

use super::metrics::HubMetrics;
use super::registry::{Registry, State, missing};
use crate::hub_protocol::{Key, path_token};
use crate::source::Cause;
use crate::source::versions::{DESCRIBE_NAMES_PER_CALL, VersionSource, reserved_prefix};
use crate::spec::names::ParamRef;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How the poller runs.
#[derive(Debug, Clone, Copy)]
pub struct PollerConfig {
    /// Between two reads of every key.
    pub interval: Duration,
    /// Keys nobody wanted for this long are dropped.
    pub ttl: Duration,
    /// Wait after a key is queued, to read the keys of clients arriving together at once.
    pub debounce: Duration,
    /// AWS calls in flight at once.
    pub concurrency: usize,
}

/// Runs until aborted.
pub async fn run(
    registry: Arc<Registry>,
    source: Arc<VersionSource>,
    config: PollerConfig,
    metrics: Arc<HubMetrics>,
) {
    let mut next = Instant::now() + config.interval;
    loop {
        let interval = tokio::select! {
            () = tokio::time::sleep_until(next) => true,
            () = registry.refresh_wanted() => false,
        };
        let keys = if interval {
            let dropped = registry.expire(std::time::Instant::now(), config.ttl);
            if dropped > 0 {
                tracing::debug!(dropped, "keys no client wants any more");
            }
            // A full read covers whatever was queued.
            registry.take_refresh();
            // Late (a slow read, a busy machine): skip ahead rather than poll twice in a row.
            next += config.interval;
            if next < Instant::now() {
                next = Instant::now() + config.interval;
            }
            registry.keys()
        } else {
            tokio::time::sleep(config.debounce).await;
            registry.take_refresh()
        };
        if !keys.is_empty() {
            let results = read(&source, keys, config.concurrency).await;
            let ok = results
                .iter()
                .all(|(_, s)| !matches!(s, State::Unavailable { .. }));
            let changed = registry.record(results);
            for key in &changed {
                tracing::info!(%key, "changed");
            }
            metrics.poll(interval, ok, changed.len());
        }
        let (watched, waiting) = registry.sizes();
        metrics.sizes(watched, waiting);
    }
}

/// One unit of reading.
enum Job {
    /// Plain names, at most [`DESCRIBE_NAMES_PER_CALL`].
    Describe(Vec<String>),
    /// Selectors, ARNs, reserved names: GetParameters without decryption.
    Select(Vec<ParamRef>),
    Secret(ParamRef),
    Path(String, bool),
}

/// Reads the tokens of `keys`: each key once, with the fewest calls.
pub async fn read(
    source: &VersionSource,
    keys: Vec<Key>,
    concurrency: usize,
) -> Vec<(String, State)> {
    let (mut out, jobs) = plan(keys, source.region());
    let results: Vec<Vec<(String, State)>> = stream::iter(jobs)
        .map(|job| run_job(source, job))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.extend(results.into_iter().flatten());
    out
}

/// Groups keys into jobs; keys the hub cannot read (another region's ARN) are answered
/// at once as unavailable.
fn plan(keys: Vec<Key>, region: &str) -> (Vec<(String, State)>, Vec<Job>) {
    let mut out = Vec::new();
    let mut plain = Vec::new();
    let mut select = Vec::new();
    let mut jobs = Vec::new();
    for key in keys {
        match key {
            Key::Name(r) if r.region().is_some_and(|reg| reg != region) => out.push((
                Key::Name(r).to_string(),
                State::Unavailable {
                    cause: "other_region",
                },
            )),
            Key::Name(r) if r.arn.is_none() && r.is_secrets_manager() => jobs.push(Job::Secret(r)),
            Key::Name(r)
                if r.arn.is_none() && r.selector.is_none() && !reserved_prefix(&r.name) =>
            {
                plain.push(r.name)
            }
            Key::Name(r) => select.push(r),
            Key::Path { path, recursive } => jobs.push(Job::Path(path, recursive)),
        }
    }
    jobs.extend(
        plain
            .chunks(DESCRIBE_NAMES_PER_CALL)
            .map(|c| Job::Describe(c.to_vec())),
    );
    jobs.extend(select.chunks(10).map(|c| Job::Select(c.to_vec())));
    (out, jobs)
}

fn unavailable(cause: &Cause) -> State {
    State::Unavailable {
        cause: cause.label(),
    }
}

async fn run_job(source: &VersionSource, job: Job) -> Vec<(String, State)> {
    match job {
        Job::Describe(names) => match source.describe_names(&names).await {
            Ok(found) => names
                .into_iter()
                .map(|n| {
                    let state = found
                        .get(&n)
                        .map_or_else(missing, |v| State::Token(v.to_string()));
                    (format!("name:{n}"), state)
                })
                .collect(),
            Err(cause) => {
                tracing::warn!(names = names.len(), "DescribeParameters failed: {cause}");
                names
                    .into_iter()
                    .map(|n| (format!("name:{n}"), unavailable(&cause)))
                    .collect()
            }
        },
        Job::Select(refs) => source
            .selected_versions(&refs)
            .await
            .into_iter()
            .map(|(r, answer)| {
                let key = Key::Name(r).to_string();
                let state = match answer {
                    Ok(Some(v)) => State::Token(v.to_string()),
                    Ok(None) => missing(),
                    Err(cause) => {
                        tracing::warn!(%key, "version read failed: {cause}");
                        unavailable(&cause)
                    }
                };
                (key, state)
            })
            .collect(),
        Job::Secret(r) => {
            let state = match source.secret_version(&r).await {
                Ok(Some(id)) => State::Token(id),
                Ok(None) => missing(),
                Err(cause) => {
                    tracing::warn!(name = %r, "DescribeSecret failed: {cause}");
                    unavailable(&cause)
                }
            };
            vec![(Key::Name(r).to_string(), state)]
        }
        Job::Path(path, recursive) => {
            let state = match source.path_versions(&path, recursive).await {
                Ok(found) => State::Token(path_token(found.iter().map(|(n, v)| (n.as_str(), *v)))),
                Err(cause) => {
                    tracing::warn!(%path, "path read failed: {cause}");
                    unavailable(&cause)
                }
            };
            vec![(Key::Path { path, recursive }.to_string(), state)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn keys_go_to_the_cheapest_read() {
        let mut keys: Vec<Key> = (0..120).map(|i| k(&format!("name:/app/n{i:03}"))).collect();
        keys.extend([
            k("name:/app/n000:live"),
            k("name:/app/n001:3"),
            k("name:/aws/service/global-infrastructure/version"),
            k("name:/aws/reference/secretsmanager/stripe"),
            k("name:arn:aws:ssm:us-east-1:111122223333:parameter/shared/db"),
            k("name:arn:aws:ssm:eu-west-1:111122223333:parameter/shared/db"),
            k("path:/app/:r"),
        ]);
        let (now, jobs) = plan(keys, "us-east-1");
        assert_eq!(
            now,
            [(
                "name:arn:aws:ssm:eu-west-1:111122223333:parameter/shared/db".to_owned(),
                State::Unavailable {
                    cause: "other_region"
                }
            )]
        );
        let describes: Vec<usize> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Describe(n) => Some(n.len()),
                _ => None,
            })
            .collect();
        assert_eq!(describes, [50, 50, 20], "120 names in 3 DescribeParameters");
        let selected: usize = jobs
            .iter()
            .map(|j| match j {
                Job::Select(r) => r.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(selected, 4, "2 selectors, 1 public name, 1 same-region ARN");
        assert_eq!(
            jobs.iter().filter(|j| matches!(j, Job::Secret(_))).count(),
            1
        );
        assert_eq!(
            jobs.iter().filter(|j| matches!(j, Job::Path(..))).count(),
            1
        );
    }
}
