//! Push refresh: the hub long-polls one SQS queue (one per replica) that an EventBridge
//! rule fills with Parameter Store and Secrets Manager change events. An event names a
//! parameter or secret but not the version to trust, so the watched keys it can move are
//! re-read at once through the poller ([`Registry::refresh_now`]), which wakes the held
//! requests when a token moves. An event for something nobody watches costs no AWS call.
//! Polling every `--interval` stays the safety net: SQS failures only back off and are
//! logged, and readiness does not depend on them.

use super::events::{self, Parsed};
use super::metrics::{EventOutcome, HubMetrics};
use super::registry::Registry;
use crate::backoff::Backoff;
use crate::source::queue::EventQueue;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// First wait after a failed ReceiveMessage.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest wait between ReceiveMessage attempts while SQS fails.
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Least time between two empty receives, should an endpoint answer a long poll at once.
const MIN_EMPTY_RECEIVE: Duration = Duration::from_secs(1);

/// Reads `queue` until aborted: each message is handled ([`handle`]) and the batch is
/// deleted. Failed receives back off (1 s doubling to 60 s, full jitter).
pub async fn run(queue: Arc<EventQueue>, registry: Arc<Registry>, metrics: Arc<HubMetrics>) {
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    loop {
        let started = tokio::time::Instant::now();
        let messages = match queue.receive().await {
            Ok(messages) => {
                if backoff.failures() > 0 {
                    tracing::info!(queue = queue.url(), "SQS answers again: push is back");
                }
                backoff.reset();
                messages
            }
            Err(cause) => {
                let wait = backoff.next_delay(fastrand::f64());
                tracing::warn!(
                    queue = queue.url(),
                    failures = backoff.failures(),
                    retry_in_ms = wait.as_millis() as u64,
                    "SQS ReceiveMessage failed (needs sqs:ReceiveMessage on the queue): {cause}; polling every --interval goes on"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        if messages.is_empty() {
            tokio::time::sleep_until(started + MIN_EMPTY_RECEIVE).await;
            continue;
        }
        let now = SystemTime::now();
        let mut receipts = Vec::with_capacity(messages.len());
        for m in messages {
            let (outcome, keys) = handle(&registry, &m.body);
            metrics.event(outcome, keys);
            if let Some(delay) = m.sent.and_then(|sent| now.duration_since(sent).ok()) {
                metrics.event_delay(delay);
            }
            receipts.push(m.receipt);
        }
        match queue.delete(&receipts).await {
            Ok(0) => {}
            Ok(failed) => tracing::warn!(
                failed,
                "SQS did not delete some messages; they come back and are handled again"
            ),
            Err(cause) => tracing::warn!(
                queue = queue.url(),
                "SQS DeleteMessageBatch failed (needs sqs:DeleteMessage on the queue): {cause}; the messages come back and are handled again"
            ),
        }
    }
}

/// Handles one message body: the watched keys its event can move are queued for an
/// immediate read. Returns the outcome and how many keys were queued.
pub fn handle(registry: &Registry, body: &str) -> (EventOutcome, usize) {
    match events::parse(body) {
        Ok(Parsed::Changes(changes)) => {
            let keys = registry.keys_matching(|k| changes.iter().any(|c| c.affects(k)));
            if keys.is_empty() {
                tracing::debug!(names = changes.len(), "push event: nothing watched");
                return (EventOutcome::Unwatched, 0);
            }
            tracing::debug!(keys = keys.len(), "push event: reading the keys at once");
            registry.refresh_now(&keys);
            (EventOutcome::Matched, keys.len())
        }
        Ok(Parsed::Ignored(why)) => {
            tracing::debug!(reason = why.label(), "push event ignored");
            (EventOutcome::Ignored, 0)
        }
        Err(e) => {
            tracing::warn!("push event dropped: {e}");
            (EventOutcome::Malformed, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_protocol::Key;
    use serde_json::json;
    use std::time::Instant;

    fn change(name: &str) -> String {
        json!({"source": "aws.ssm", "detail-type": "Parameter Store Change",
            "detail": {"operation": "Update", "name": name, "type": "String"}})
        .to_string()
    }

    #[test]
    fn an_event_queues_the_watched_keys_it_moves_and_nothing_else() {
        let r = Registry::new();
        let keys: Vec<Key> = [
            "name:/app/db",
            "name:/app/db:live",
            "path:/app/:r",
            "name:/other",
            "name:/aws/reference/secretsmanager/prod/db",
        ]
        .iter()
        .map(|k| Key::parse(k).unwrap())
        .collect();
        r.want(&keys, Instant::now());
        r.take_refresh();

        assert_eq!(handle(&r, &change("/app/db")), (EventOutcome::Matched, 3));
        let queued: Vec<String> = r.take_refresh().iter().map(Key::to_string).collect();
        assert_eq!(
            queued,
            ["name:/app/db", "name:/app/db:live", "path:/app/:r"]
        );

        assert_eq!(
            handle(&r, &change("/nobody/watches")),
            (EventOutcome::Unwatched, 0)
        );
        assert!(r.take_refresh().is_empty());

        let rotated = json!({"source": "aws.secretsmanager",
            "detail-type": "AWS Service Event via CloudTrail",
            "detail": {"eventName": "RotationSucceeded", "additionalEventData": {
                "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}}});
        assert_eq!(handle(&r, &rotated.to_string()), (EventOutcome::Matched, 1));
        let queued: Vec<String> = r.take_refresh().iter().map(Key::to_string).collect();
        assert_eq!(queued, ["name:/aws/reference/secretsmanager/prod/db"]);

        assert_eq!(handle(&r, "{\"a\":1}"), (EventOutcome::Ignored, 0));
        assert_eq!(handle(&r, "not json"), (EventOutcome::Malformed, 0));
        assert!(r.take_refresh().is_empty());
    }
}
