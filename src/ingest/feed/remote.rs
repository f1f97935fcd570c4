//! A process's first worker reading its remote write receiver's queue (see
//! `ingest::remote_write`): each request as a Kafka message is read, until a stop and an empty
//! queue.

use std::time::{Duration, Instant};

use incidentflow_dataflows::records::{Invalid, Reason};
use incidentflow_dataflows::time::Time;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use super::{message_lines, oversized, Feed, Inputs, Origin, PartitionState};
use crate::ingest::files::Partition;

impl Feed<'_> {
    /// The process's first worker reads its remote write receiver's requests, each as a Kafka message is read (its
    /// lines, its position: the request's number), until asked to stop and the queue is empty:
    /// a request the receiver answered 204 is processed (see `ingest::remote_write`).
    pub(super) fn run_remote_write(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
        queue: &crate::ingest::remote_write::RemoteWriteQueue,
    ) {
        use crate::ingest::remote_write::Request;
        self.metrics.inputs_connected(true);
        self.owned = vec![PartitionState {
            partition: Partition {
                index: 0,
                start: 0,
                end: u64::MAX,
                first_line: 1,
            },
            newest: None,
            finished: false,
            last_record: Some(Instant::now()),
            ahead: Vec::new(),
        }];
        let source = self.source_name.clone();
        let max_line = self.config.input.max_line_bytes as usize;
        loop {
            let request = if self.shutdown.requested() {
                // The receiver answers 503 from now on: what it queued is still processed.
                match queue.try_next() {
                    Some(request) => request,
                    None => break,
                }
            } else {
                match queue.next(Duration::from_millis(50)) {
                    Some(request) => request,
                    None => {
                        self.advance(worker, inputs, probe);
                        continue;
                    }
                }
            };
            match request {
                Request::Lines { number, lines } => {
                    for (info, line) in message_lines(&lines, number as i64, max_line) {
                        self.counts.read += 1;
                        let decoded = if info.oversized {
                            Err(oversized(max_line))
                        } else {
                            self.decoder.decode(line)
                        };
                        let origin = Origin::line(&source, info);
                        self.take(0, decoded, origin, line, inputs, false);
                    }
                }
                Request::Refused {
                    number,
                    detail,
                    mut raw,
                } => {
                    self.counts.read += 1;
                    let info = crate::ingest::files::LineInfo {
                        offset: number,
                        number: 0,
                        oversized: false,
                    };
                    let invalid = Invalid::new(Reason::BadPayload, detail);
                    self.refuse(inputs, Origin::line(&source, info), invalid, &mut raw);
                }
            }
            self.owned[0].last_record = Some(Instant::now());
            self.advance(worker, inputs, probe);
        }
        tracing::info!("asked to stop: the remote write receiver refuses from now on, and what it took is processed");
        self.owned[0].finished = true;
        self.advance(worker, inputs, probe);
    }
}
