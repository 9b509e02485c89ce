//! Dead letters the broker refuses (issue 30, item 8). A letter the broker will never take
//! (too large for its topic's limit, invalid for the topic's schema, …: [`refused_for_good`])
//! cannot stop the pipeline: it is logged with the coordinates of the message it came from,
//! counted, and the message's offset committed as if the letter had been written. Any other
//! failed delivery (a timeout the configuration asked for) is still an error: the messages
//! stay uncommitted and are read again.

use std::sync::atomic::{AtomicU64, Ordering};

use apo_core::kafka::{refused_for_good, DeliveryTracker};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;
use rdkafka::ClientContext;

use crate::dlq::header;
use crate::IngestError;

/// The dead-letter producer's context: counts letters refused for good, and other failures.
#[derive(Default)]
pub struct LetterDeliveries {
    refused: AtomicU64,
    /// The other failures.
    others: DeliveryTracker,
}

impl ClientContext for LetterDeliveries {}

impl ProducerContext for LetterDeliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((e, m)) = result else {
            return;
        };
        if refused_for_good(e) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let header = |name: &str| header(m, name).unwrap_or("?");
            tracing::error!(
                error = %e,
                dead_letter_topic = m.topic(),
                topic = header("apo.dlq.topic"),
                partition = header("apo.dlq.partition"),
                offset = header("apo.dlq.offset"),
                reason = header("apo.dlq.reason"),
                bytes = m.payload_len(),
                "the broker refused a dead letter for good: the message at this topic, \
                 partition and offset is not in the dead-letter topic (the pipeline goes on)"
            );
            return;
        }
        self.others.delivery(result, ());
    }
}

impl LetterDeliveries {
    /// Letters refused for good so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Errors if a delivery failed, other than for good, since the last check.
    pub fn check(&self, topic: &str) -> Result<(), IngestError> {
        self.others.check(topic)
    }
}
