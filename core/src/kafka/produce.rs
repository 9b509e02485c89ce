//! Producing without loss or unbounded memory: delivery tracking, a flush that returns as soon
//! as the last acknowledgement arrives, and sending with backpressure when the queue is full.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::IngestError;

/// Whether the broker (or the client's own check) will never take this record, however often
/// it is sent: its size or its content is the problem, not the broker's state.
pub fn refused_for_good(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e,
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::InvalidTimestamp
        )
    )
}

/// Producer context that counts failed deliveries, so a flush can tell whether everything
/// produced is durable.
#[derive(Default)]
pub struct DeliveryTracker {
    failed: AtomicU64,
    last_error: Mutex<String>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut l) = self.last_error.lock() {
                *l = e.to_string();
            }
        }
    }
}

impl DeliveryTracker {
    /// Errors if any delivery failed since the last check.
    pub fn check(&self, topic: &str) -> Result<(), IngestError> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let last_error = self
            .last_error
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        Err(IngestError::Delivery {
            topic: topic.to_string(),
            failed,
            last_error,
        })
    }
}

/// Waits until every record produced so far is acknowledged (or failed), like
/// `Producer::flush`, but returns within about a millisecond of the last acknowledgement.
///
/// rdkafka's own `flush` polls in steps that each last their full 100 ms, so every flush of a
/// busy producer costs at least 100 ms: that alone would be most of the pipeline's
/// close-to-output latency.
pub fn flush_promptly<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), IngestError> {
    if flush_within(producer, timeout) {
        Ok(())
    } else {
        Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut).into())
    }
}

/// Waits at most `wait` for every record produced so far to be acknowledged (or failed), like
/// [`flush_promptly`]; `true` when none is left in flight, `false` when some still wait for
/// the broker (they stay queued).
pub fn flush_within<C: ProducerContext>(producer: &BaseProducer<C>, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        producer.poll(Duration::from_millis(1));
    }
}

/// Sends a record, waiting for room when the producer queue is full (backpressure instead of
/// unbounded memory or an error).
// The closure has the shape of rdkafka's `send`, which returns the record back on error.
#[allow(clippy::result_large_err)]
pub fn send_with_backpressure<C: ProducerContext>(
    producer: &BaseProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), IngestError> {
    retry_while_full(
        record,
        |r| producer.send(r),
        || producer.poll(Duration::from_millis(5)),
    )
}

/// The same for a producer whose own thread serves delivery reports: waiting is sleeping.
// The closure has the shape of rdkafka's `send`, which returns the record back on error.
#[allow(clippy::result_large_err)]
pub fn send_threaded_with_backpressure<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), IngestError> {
    retry_while_full(
        record,
        |r| producer.send(r),
        || std::thread::sleep(Duration::from_millis(1)),
    )
}

/// Sends `record`, calling `wait` and retrying while the producer queue is full.
fn retry_while_full<R>(
    mut record: R,
    mut send: impl FnMut(R) -> Result<(), (KafkaError, R)>,
    wait: impl Fn(),
) -> Result<(), IngestError> {
    loop {
        match send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                wait();
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}
