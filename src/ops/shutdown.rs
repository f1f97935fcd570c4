//! Clean shutdown on SIGTERM (and Ctrl-C): stop intake, write out everything the dataflow has
//! completed, checkpoint there, and exit.
//!
//! The signal only sets a flag; a second signal ends the process at once. The feeds stop reading
//! when they see the flag; each worker then steps its dataflow until it has caught up with what
//! was read and asks its output writers to drain: a writer writes every record before its
//! frontier, flushes, checkpoints at that frontier (not "done": the rest of the input is still
//! to be read) and from then on writes nothing. Only then are the inputs closed, so that what was
//! read past the frontier (which a restart reads again) can never reach an output or the
//! checkpoint. A process other than the first also keeps its inputs open for a while, so that the
//! first process's writers see the whole cluster's frontier while they drain.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::Time;
use timely::dataflow::ProbeHandle;
use timely::scheduling::Activator;
use timely::worker::Worker;

/// The longest a worker steps to catch up with what it read, and then to drain its writers.
const CATCH_UP: Duration = Duration::from_secs(20);
/// How long a process other than the first keeps its inputs open after draining.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// The job's stop: whether it was asked to stop, whether the writers are draining, and how many
/// have yet to; one per run, cloned into every worker.
#[derive(Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
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
        self.requested.load(SeqCst)
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

/// Steps the worker until it has processed what it read (everything before `read_up_to`) and
/// the process's writers have drained; a later process then waits for the first.
pub fn drain(
    worker: &mut Worker,
    read_up_to: Time,
    probe: &ProbeHandle<Time>,
    later_process: bool,
    writers: &WorkerWriters,
) {
    let left = &writers.shutdown.writers_left;
    let started = Instant::now();
    while probe.less_than(&read_up_to) && started.elapsed() < CATCH_UP {
        worker.step();
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
    if later_process {
        let waiting = Instant::now();
        while waiting.elapsed() < LEADER_WAIT {
            worker.step_or_park(Some(Duration::from_millis(50)));
        }
    }
}
