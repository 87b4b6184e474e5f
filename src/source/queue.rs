//! The hub's push queue: SQS ReceiveMessage (long poll) and DeleteMessageBatch on one
//! queue. These calls do not wait for the call budget ([`super::budget`]): SQS has its own
//! quotas, far above what one long-polling reader uses (at most one ReceiveMessage per
//! 20 s while the queue is empty), and the budget guards Parameter Store's shared quota.
//! The reads an event leads to do go through the budget. The calls go through a
//! [`Caller`] without budget, which classifies, counts and reports them.

use super::caller::{CallObserver, Caller, Operation};
use super::error::Cause;
use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// ReceiveMessage's long-poll wait (AWS's maximum).
pub const WAIT_SECONDS: i32 = 20;
/// How long a received message stays hidden. Handling takes milliseconds and the message
/// is deleted right after, so this only matters when a replica dies holding one (or a
/// receive of a killed replica is still open at SQS): the event then comes back to a live
/// replica after 10 s instead of the queue's default 30 s.
const VISIBILITY_SECONDS: i32 = 10;
/// Messages per ReceiveMessage and per DeleteMessageBatch (AWS's maximum).
pub const BATCH: usize = 10;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Deletes the message ([`EventQueue::delete`]).
    pub receipt: String,
    pub body: String,
    /// When SQS received it (its `SentTimestamp`), if it said.
    pub sent: Option<SystemTime>,
}

/// One SQS queue, read by long polling.
pub struct EventQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    caller: Caller,
}

impl EventQueue {
    /// A reader of the queue at `url`, with the process's AWS configuration (credentials,
    /// region, HTTPS client; [`super::config::load_config`]). The per-attempt timeout is
    /// raised above the long-poll wait.
    pub fn new(config: &SdkConfig, url: String) -> EventQueue {
        let sqs = aws_sdk_sqs::config::Builder::from(config)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(WAIT_SECONDS as u64 + 10))
                    .operation_timeout(Duration::from_secs(90))
                    .build(),
            )
            .build();
        EventQueue {
            client: aws_sdk_sqs::Client::from_conf(sqs),
            url,
            caller: Caller::without_budget(config),
        }
    }

    /// Reports every finished call to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.caller = self.caller.with_observer(observer);
        self
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Up to [`BATCH`] messages, waiting up to [`WAIT_SECONDS`] for the first one.
    /// Messages without a receipt handle or body are dropped (SQS always sends both).
    pub async fn receive(&self) -> Result<Vec<Message>, Cause> {
        let call = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH as i32)
            .wait_time_seconds(WAIT_SECONDS)
            .visibility_timeout(VISIBILITY_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp);
        let out = self
            .caller
            .call(Operation::ReceiveMessage, || call.send())
            .await?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let sent = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                Some(Message {
                    receipt: m.receipt_handle?,
                    body: m.body?,
                    sent,
                })
            })
            .collect())
    }

    /// Deletes up to [`BATCH`] messages in one call; returns how many SQS did not delete
    /// (they come back after the queue's visibility timeout and are handled again).
    pub async fn delete(&self, receipts: &[String]) -> Result<usize, Cause> {
        let entries = receipts
            .iter()
            .take(BATCH)
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if entries.is_empty() {
            return Ok(0);
        }
        let call = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries));
        let out = self
            .caller
            .call(Operation::DeleteMessageBatch, || call.send())
            .await?;
        Ok(out.failed().len())
    }
}
