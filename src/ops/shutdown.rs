//! Clean shutdown on SIGTERM (and Ctrl-C): stop intake, write out everything the dataflow has
//! completed, checkpoint there, and exit.
//!
//! The signal only sets a flag; a second signal ends the process at once. A worker that stops
//! reading tells the whole cluster, so that one process asked to stop (or whose output failed)
//! stops them all. The feeds stop reading
//! when they see the flag; each worker then steps its dataflow until it has caught up with what
//! was read and asks its output writers to drain: a writer writes every record before its
//! frontier, flushes, checkpoints at that frontier (not "done": the rest of the input is still
//! to be read) and from then on writes nothing. Only then are the inputs closed, so that what was
//! read past the frontier (which a restart reads again) can never reach an output or the
//! checkpoint. A process other than the first keeps its inputs open (at the position it stopped
//! reading) until the first process's writers have drained and said so through the dataflow
//! ([`ClusterSignals`]): had it closed them earlier, the cluster's frontier would pass records it
//! never read, and the first process could checkpoint past them (a restart would skip them).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::Time;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input, Inspect};
use timely::dataflow::{InputHandle, ProbeHandle, Scope};
use timely::scheduling::Activator;
use timely::worker::Worker;

/// The longest a worker steps to catch up with what it read, and then to drain its writers.
const CATCH_UP: Duration = Duration::from_secs(20);
/// How long the frontier stands still before a worker takes it as caught up.
const STANDING_STILL: Duration = Duration::from_secs(2);
/// The longest a process other than the first waits for the first to say it has drained.
const LEADER_WAIT: Duration = Duration::from_secs(3 * CATCH_UP.as_secs());

/// The job's stop: whether it was asked to stop, whether the writers are draining, and how many
/// have yet to; one per run, cloned into every worker.
#[derive(Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    /// Another worker of the cluster stopped (kept apart from `requested`, which a second
    /// signal checks to exit at once).
    cluster_stopped: Arc<AtomicBool>,
    /// An output failed: the stop was the job's own.
    output_failed: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    writers_left: Arc<AtomicUsize>,
}

impl Shutdown {
    /// A stop that SIGTERM and SIGINT request; a second signal exits at once (status 1).
    pub fn on_signals() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let shutdown = Shutdown::default();
        for signal in [SIGTERM, SIGINT] {
            signal_hook::flag::register_conditional_shutdown(
                signal,
                1,
                shutdown.requested.clone(),
            )?;
            signal_hook::flag::register(signal, shutdown.requested.clone())?;
        }
        Ok(shutdown)
    }

    /// Whether the job was asked to stop.
    pub fn requested(&self) -> bool {
        self.requested.load(SeqCst) || self.cluster_stopped.load(SeqCst)
    }

    /// Whether the writers are to drain (see the module).
    pub fn draining(&self) -> bool {
        self.draining.load(SeqCst)
    }

    /// The writers of one worker (made on its thread).
    pub fn worker_writers(&self) -> WorkerWriters {
        WorkerWriters {
            shutdown: self.clone(),
            activators: Rc::default(),
        }
    }
}

/// One worker's output writers, to be woken to drain.
#[derive(Clone)]
pub struct WorkerWriters {
    shutdown: Shutdown,
    activators: Rc<RefCell<Vec<Activator>>>,
}

impl WorkerWriters {
    /// A writer of this worker, woken by `activator`.
    pub fn register(&self, activator: Activator) {
        self.shutdown.writers_left.fetch_add(1, SeqCst);
        self.activators.borrow_mut().push(activator);
    }

    /// A writer has drained.
    pub fn drained(&self) {
        self.shutdown.writers_left.fetch_sub(1, SeqCst);
    }

    /// Whether the writers are to drain.
    pub fn draining(&self) -> bool {
        self.shutdown.draining()
    }

    /// An output failed (a full disk, say): the job stops reading, as if asked to stop, so that
    /// a restart resumes from what was written.
    pub fn output_failed(&self) {
        self.shutdown.output_failed.store(true, SeqCst);
        self.shutdown.requested.store(true, SeqCst);
    }
}

/// What one worker tells every worker of the cluster, through the dataflow (the one channel
/// between processes), outside the streams the writers watch, so it holds back no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Signal {
    /// This worker stopped reading (a signal, a failed output, or a stop heard): stop too. A
    /// process asked to stop alone (one pod's SIGTERM, one process's full disk) would otherwise
    /// leave the others reading, and the cluster, which needs them all, would never end.
    Stop,
    /// Worker 0's writers have drained: a later process may close its inputs.
    Drained,
}

/// The cluster's stop and drain signals, as one worker sends and hears them.
pub struct ClusterSignals {
    input: InputHandle<Time, CapacityContainerBuilder<Vec<Signal>>>,
    drained: Rc<Cell<bool>>,
}

impl ClusterSignals {
    /// The signals' input and their broadcast, built in the worker's dataflow; a stop heard
    /// makes `shutdown` requested.
    pub fn new(scope: Scope<'_, Time>, shutdown: &Shutdown) -> Self {
        let mut input = InputHandle::new();
        let drained = Rc::new(Cell::new(false));
        let (hears, stopped) = (drained.clone(), shutdown.cluster_stopped.clone());
        scope
            .input_from(&mut input)
            .broadcast()
            .inspect(move |signal| match signal {
                Signal::Stop => stopped.store(true, SeqCst),
                Signal::Drained => hears.set(true),
            });
        ClusterSignals { input, drained }
    }

    fn send(&mut self, signal: Signal) {
        self.input.send(signal);
        self.input.flush();
    }
}

/// Steps the worker until it has processed what it read (everything before `read_up_to`) and
/// the process's writers have drained; worker 0 then tells the cluster, and a later process
/// waits to hear it before its inputs may close.
pub fn drain(
    worker: &mut Worker,
    read_up_to: Time,
    probe: &ProbeHandle<Time>,
    later_process: bool,
    writers: &WorkerWriters,
    mut signals: ClusterSignals,
) {
    signals.send(Signal::Stop);
    let left = &writers.shutdown.writers_left;
    let started = Instant::now();
    // The frontier can only reach the earliest position any worker stopped reading at: once it
    // stands still, what is left is caught up.
    let mut last_move = (probe.with_frontier(|f| f.first().copied()), Instant::now());
    while probe.less_than(&read_up_to) && started.elapsed() < CATCH_UP {
        worker.step();
        let at = probe.with_frontier(|f| f.first().copied());
        if at != last_move.0 {
            last_move = (at, Instant::now());
        } else if last_move.1.elapsed() >= STANDING_STILL {
            break;
        }
    }
    writers.shutdown.draining.store(true, SeqCst);
    writers
        .activators
        .borrow()
        .iter()
        .for_each(Activator::activate);
    while left.load(SeqCst) > 0 && started.elapsed() < 2 * CATCH_UP {
        worker.step();
    }
    if worker.index() == 0 && !later_process {
        let at = probe.with_frontier(|f| f.first().copied());
        let failed = writers.shutdown.output_failed.load(SeqCst);
        match (left.load(SeqCst), at) {
            _ if failed => tracing::error!(
                "stopped because an output failed (above): the other outputs are written and \
                 flushed; a restart with --checkpoint resumes each from what it had written"
            ),
            (0, Some(t)) => tracing::info!(
                "stopped cleanly: every output is written and flushed (and checkpointed, with --checkpoint) up to {}",
                incidentflow_dataflows::time::format_rfc3339(t)
            ),
            _ => tracing::warn!(
                "the outputs did not drain within {}s; a restart from the checkpoint re-reads more",
                2 * CATCH_UP.as_secs()
            ),
        }
    }
    if worker.index() == 0 {
        signals.send(Signal::Drained);
    }
    if later_process {
        let waiting = Instant::now();
        while !signals.drained.get() && waiting.elapsed() < LEADER_WAIT {
            worker.step_or_park(Some(Duration::from_millis(50)));
        }
        if !signals.drained.get() {
            tracing::warn!(
                worker = worker.index(),
                "the first process did not say it had drained within {}s; closing this \
                 process's inputs anyway (its checkpoint may be behind: a restart re-reads more)",
                LEADER_WAIT.as_secs()
            );
        }
    }
}
