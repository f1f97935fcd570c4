//! The dataflow's inputs, advanced together: samples, topology edges, deploys, silences and the
//! diagnostics (dead letters, counts, Kafka marks). Worker 0 enters the silences read since the
//! last advance, each at its start or at the input's time if that has passed it.

use differential_dataflow::input::InputSession;
use incidentflow_dataflows::annotate::SilenceRule;
use incidentflow_dataflows::records::{DeployEvent, EdgeChange, Sample};
use incidentflow_dataflows::time::Time;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;

use crate::emit::records::Diagnostic;
use crate::ingest::silences::SilenceQueue;

/// The input that carries dead letters and counts into the dataflow.
pub type DiagnosticInput = InputHandle<Time, CapacityContainerBuilder<Vec<Diagnostic>>>;

/// The dataflow's inputs, advanced together.
pub struct Inputs {
    pub samples: InputSession<Time, Sample, isize>,
    pub edges: InputSession<Time, EdgeChange, isize>,
    pub deploys: InputSession<Time, DeployEvent, isize>,
    pub diagnostics: DiagnosticInput,
    /// The silences collection: each rule at the time it is in force from.
    pub silences: InputSession<Time, SilenceRule, isize>,
    /// Worker 0: the silences read from the side input, entered as the input advances.
    pub silence_queue: Option<SilenceQueue>,
}

impl Inputs {
    pub fn time(&self) -> Time {
        *self.samples.time()
    }

    /// Enters the silences read since the last call, each at its start or, if the input has
    /// passed that, at the input's time.
    fn enter_silences(&mut self) {
        let Some(queue) = &self.silence_queue else {
            return;
        };
        let now = *self.silences.time();
        for rule in queue.take() {
            let from = rule.start.max(now);
            self.silences.update_at(rule, from, 1);
        }
    }

    pub(super) fn advance_to(&mut self, t: Time) {
        self.enter_silences();
        self.silences.advance_to(t);
        self.samples.advance_to(t);
        self.edges.advance_to(t);
        self.deploys.advance_to(t);
        self.diagnostics.advance_to(t);
    }

    pub fn flush(&mut self) {
        self.silences.flush();
        self.samples.flush();
        self.edges.flush();
        self.deploys.flush();
        self.diagnostics.flush();
    }

    pub fn close(mut self) {
        self.enter_silences();
        self.silences.close();
        self.samples.close();
        self.edges.close();
        self.deploys.close();
        self.diagnostics.close();
    }
}
