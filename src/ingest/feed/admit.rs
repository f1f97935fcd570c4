//! The time rules a decoded sample passes before it enters the dataflow.
//!
//! * **Late**: behind its partition's newest record by more than `time.allowed_lateness`, or
//!   behind the input's time: dead-lettered as `late`.
//! * **Future**: read live (from Kafka or standard input), ahead of the wall clock by more than
//!   `time.max_ahead`; in a file or on standard input, ahead of its partition's newest record by
//!   more than that. (A file is judged by its own records only: it may hold any period, a
//!   generated one included, whatever today's date.) One record from a
//!   host with a wrong clock must not move its partition's watermark and make every record after
//!   it late (before this rule, one sample stamped a year ahead at line 52 of a 201-line file
//!   made the 149 good records after it late). A jump ahead that the records after it confirm is
//!   a gap in the data, not a clock: the partition holds the records that jump until
//!   [`CONFIRM`] in a row do (then all are taken, in order: the same as without the rule) or one
//!   at the old pace arrives (then the held ones are dead-lettered as `future`). Nothing is lost
//!   either way. A Kafka partition is judged against the wall clock only: its read offsets are
//!   checkpointed as they are read, so it holds nothing back.

use incidentflow_dataflows::records::{DeadLetter, Invalid, Reason, Sample};
use incidentflow_dataflows::time::{format_duration, format_rfc3339, Time};

use super::{Feed, Inputs, Origin};

/// Records in a row that confirm a jump ahead of their partition as a gap in the data: more
/// than a wrong-clock host's records come in a row in a stream of many series, few enough that
/// a real gap costs nothing but a short hold.
pub(super) const CONFIRM: usize = 10;

/// A record held because it jumps ahead of its partition, with its dead letter ready.
pub(super) struct HeldAhead {
    sample: Sample,
    letter: DeadLetter,
}

impl Feed<'_> {
    /// Takes a decoded record of partition `k`: into the dataflow, held (`may_hold`: a file or
    /// standard input), or to the dead letters, as the module says.
    pub(super) fn take(
        &mut self,
        k: usize,
        decoded: Result<Sample, Invalid>,
        at: Origin,
        line: &[u8],
        inputs: &mut Inputs,
        may_hold: bool,
    ) {
        let sample = match decoded.and_then(|s| self.judge(k, s, &inputs.time())) {
            Ok(sample) => sample,
            Err(invalid) => return self.refuse(inputs, at, invalid, &mut line.to_vec()),
        };
        let newest = self.owned[k].newest;
        let jump = newest.is_some_and(|n| sample.timestamp > n.saturating_add(self.max_ahead));
        if jump && may_hold {
            let detail = format!(
                "timestamp {} is {} ahead of the newest record of its partition ({}); time.max_ahead is {}",
                format_rfc3339(sample.timestamp),
                format_duration(sample.timestamp.saturating_sub(newest.unwrap_or(0))),
                format_rfc3339(newest.unwrap_or(0)),
                format_duration(self.max_ahead),
            );
            let letter = at.dead_letter(Invalid::new(Reason::Future, detail), line.to_vec());
            self.owned[k].ahead.push(HeldAhead { sample, letter });
            if self.owned[k].ahead.len() >= CONFIRM {
                self.release_ahead(k, inputs);
            }
            return;
        }
        // At the old pace: what jumped ahead before it was a wrong clock.
        self.refuse_ahead(k, inputs);
        self.accept(k, sample, inputs);
    }

    /// The late and wall-clock rules.
    fn judge(&mut self, k: usize, sample: Sample, input_time: &Time) -> Result<Sample, Invalid> {
        let time = sample.timestamp;
        if self.live && time > self.wall_limit {
            self.wall_limit = crate::ops::clock::now_ms().saturating_add(self.max_ahead);
            if time > self.wall_limit {
                return Err(Invalid::new(
                    Reason::Future,
                    format!(
                        "timestamp {} is more than time.max_ahead = {} ahead of the wall clock ({})",
                        format_rfc3339(time),
                        format_duration(self.max_ahead),
                        format_rfc3339(self.wall_limit.saturating_sub(self.max_ahead)),
                    ),
                ));
            }
        }
        if let Some(newest) = self.owned[k].newest {
            if time.saturating_add(self.lateness) < newest || time < *input_time {
                return Err(Invalid::new(
                    Reason::Late,
                    format!(
                        "timestamp {} is {} behind the newest record of its partition ({}); allowed lateness is {}",
                        format_rfc3339(time),
                        format_duration(newest.saturating_sub(time)),
                        format_rfc3339(newest),
                        format_duration(self.lateness)
                    ),
                ));
            }
        }
        Ok(sample)
    }

    /// Puts an admitted sample into the dataflow at its time; it is its partition's newest if
    /// none is newer.
    fn accept(&mut self, k: usize, sample: Sample, inputs: &mut Inputs) {
        let state = &mut self.owned[k];
        let time = sample.timestamp;
        state.newest = Some(state.newest.map_or(time, |n| n.max(time)));
        inputs.samples.update_at(sample, time, 1);
        self.counts.valid += 1;
    }

    /// The held records were a gap in the data: all taken, in the order they were read.
    fn release_ahead(&mut self, k: usize, inputs: &mut Inputs) {
        for held in std::mem::take(&mut self.owned[k].ahead) {
            self.accept(k, held.sample, inputs);
        }
    }

    /// Asked to stop with records held: they were not processed, so they are not counted as
    /// read (a restart reads them again).
    pub(super) fn unread_ahead(&mut self, k: usize) {
        let held = std::mem::take(&mut self.owned[k].ahead);
        self.counts.read -= held.len() as u64;
    }

    /// The held records were a wrong clock: dead-lettered as `future`.
    pub(super) fn refuse_ahead(&mut self, k: usize, inputs: &mut Inputs) {
        for held in std::mem::take(&mut self.owned[k].ahead) {
            self.counts.count_dead(Reason::Future);
            inputs
                .diagnostics
                .send(crate::emit::records::Diagnostic::DeadLetter(held.letter));
        }
    }
}
