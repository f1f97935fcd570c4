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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::Time;
use timely::dataflow::ProbeHandle;
use timely::scheduling::Activator;
use timely::worker::Worker;

/// The longest a worker steps to catch up with what it read, and then to drain its writers.
const CATCH_UP: Duration = Duration::from_secs(20);
/// How long a process other than the first keeps its inputs open after draining.
const LEADER_WAIT: Duration = Duration::from_secs(5);

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

static DRAINING: AtomicBool = AtomicBool::new(false);
static WRITERS_LEFT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WRITERS: RefCell<Vec<Activator>> = const { RefCell::new(Vec::new()) };
}

/// Sets the flag on SIGTERM and SIGINT; a second one exits at once (status 1).
pub fn on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag().clone())?;
        signal_hook::flag::register(signal, flag().clone())?;
    }
    Ok(())
}

/// Whether the job was asked to stop.
pub fn requested() -> bool {
    flag().load(SeqCst)
}

/// Whether the writers are to drain (see the module).
pub fn draining() -> bool {
    DRAINING.load(SeqCst)
}

/// An output writer of this worker, to be woken to drain.
pub fn register_writer(activator: Activator) {
    WRITERS_LEFT.fetch_add(1, SeqCst);
    WRITERS.with(|w| w.borrow_mut().push(activator));
}

/// A writer has drained.
pub fn writer_drained() {
    WRITERS_LEFT.fetch_sub(1, SeqCst);
}

/// Steps the worker until it has processed what it read (everything before `read_up_to`) and
/// the process's writers have drained; a later process then waits for the first.
pub fn drain(
    worker: &mut Worker,
    read_up_to: Time,
    probe: &ProbeHandle<Time>,
    later_process: bool,
) {
    let started = Instant::now();
    while probe.less_than(&read_up_to) && started.elapsed() < CATCH_UP {
        worker.step();
    }
    DRAINING.store(true, SeqCst);
    WRITERS.with(|w| w.borrow().iter().for_each(Activator::activate));
    while WRITERS_LEFT.load(SeqCst) > 0 && started.elapsed() < 2 * CATCH_UP {
        worker.step();
    }
    if worker.index() == 0 && !later_process {
        let at = probe.with_frontier(|f| f.first().copied());
        match (WRITERS_LEFT.load(SeqCst), at) {
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
