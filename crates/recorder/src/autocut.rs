//! The recorder's own incident cuts: `kill -USR1`, and `--cut-on` events
//! the recorder sees (an unexplained change, a raise to root, a policy's
//! event). A trigger cuts the `--cut-last` minutes before its event and the
//! `--cut-after` after it; the window's segments are pinned at the event,
//! so eviction cannot take them while the cut waits for its end. Each
//! trigger makes at most one cut per `--cut-cooldown`; the events a storm
//! adds meanwhile are counted, not cut (they are all in the capture).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as MonoInstant};

use credtrail_capture::control::Pin;
use credtrail_capture::cut::CutWindow;
use credtrail_capture::fs::Dir;
use credtrail_capture::model::{Event, Syscall};
use credtrail_cli::term::safe;

use crate::flight::{CutPlan, cut_line};
use crate::metrics::{Labels, Live};

/// What starts a cut by itself (`--cut-on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An `unexplained` event: credentials changed with no recorded call.
    Unexplained,
    /// A change that made a process root (host, or its user namespace).
    BecameRoot,
    /// An event a `--policy` of this name kept.
    Policy(String),
}

impl Trigger {
    pub fn parse(s: &str) -> Result<Trigger, String> {
        match s {
            "unexplained" => Ok(Trigger::Unexplained),
            "became-root" => Ok(Trigger::BecameRoot),
            _ => match s.strip_prefix("policy:") {
                Some(name) if !name.is_empty() => Ok(Trigger::Policy(name.to_owned())),
                _ => Err(format!(
                    "{s:?} is not a trigger (unexplained, became-root, policy:NAME)"
                )),
            },
        }
    }

    /// The name in metrics and logs, as given to `--cut-on`.
    pub fn name(&self) -> String {
        match self {
            Trigger::Unexplained => "unexplained".into(),
            Trigger::BecameRoot => "became-root".into(),
            Trigger::Policy(p) => format!("policy:{p}"),
        }
    }

    pub fn matches(&self, e: &Event) -> bool {
        match self {
            Trigger::Unexplained => e.syscall == Syscall::Unexplained.name(),
            // The enrichment's judgement (`root_scope`), as `became-root` asks.
            Trigger::BecameRoot => e.root_scope.is_some(),
            Trigger::Policy(p) => e.policy.as_deref() == Some(p),
        }
    }
}

/// How long past its window's end a cut waits for the ring to be drained
/// there (a flood may keep it from catching up): then it is made with what
/// is drained.
const GRACE_NS: u64 = 30_000_000_000;

/// `--cut-on` and the SIGUSR1 cut.
#[derive(Debug, Clone)]
pub struct CutOptions {
    pub plan: CutPlan,
    pub triggers: Vec<Trigger>,
    /// How far back a cut goes from its event (SIGUSR1: from the signal).
    pub last: Duration,
    /// How long after its event a trigger's cut ends.
    pub after: Duration,
    /// Per trigger: the least time between two of its events that cut.
    pub cooldown: Duration,
    /// Cuts the cut root's node folder may hold before triggers stop
    /// cutting (`--cut-max`): a trigger anyone can cause cannot fill the
    /// disk with cuts.
    pub max_cuts: usize,
    /// Set by SIGUSR1.
    pub signal: Arc<AtomicBool>,
}

/// A trigger's cut waiting for the end of its window.
struct Pending {
    start_ktime_ns: u64,
    due_ktime_ns: u64,
    event: String,
    pin: Pin,
}

impl Pending {
    fn is_due(&self, drained_to: u64, now: u64, all: bool) -> bool {
        all || self.due_ktime_ns <= drained_to || now >= self.due_ktime_ns.saturating_add(GRACE_NS)
    }
}

/// One trigger's name, label and cut in waiting.
struct TriggerState {
    /// As given to `--cut-on`, and as a metric label: made once, not per
    /// event of a storm.
    name: String,
    label: Labels,
    pending: Option<Pending>,
    /// The boot time of the last event that started a cut (or tried to):
    /// the cooldown runs in event time, so a backlog applied in a burst
    /// is judged as it happened.
    last_ktime_ns: Option<u64>,
}

/// The recorder's cuts: pending, running, counted.
pub struct Cuts {
    opts: CutOptions,
    capture: Dir,
    states: Vec<TriggerState>,
    running: Vec<JoinHandle<()>>,
    live: Live,
}

impl Cuts {
    pub fn new(opts: CutOptions, capture: &Path, live: Live) -> anyhow::Result<Cuts> {
        Ok(Cuts {
            states: opts
                .triggers
                .iter()
                .map(|t| TriggerState {
                    name: t.name(),
                    label: Live::trigger(&t.name()),
                    pending: None,
                    last_ktime_ns: None,
                })
                .collect(),
            opts,
            capture: Dir::open(capture)?,
            running: Vec::new(),
            live,
        })
    }

    /// An event on its way to the capture: a trigger it matches starts a
    /// cut, unless one of the same trigger is pending or was started less
    /// than the cooldown ago.
    pub fn seen(&mut self, e: &Event) {
        for (t, state) in self.opts.triggers.iter().zip(&mut self.states) {
            if !t.matches(e) {
                continue;
            }
            let label = &state.label;
            self.live.cut_triggers.get_or_create(label).inc();
            let cooldown = self.opts.cooldown.as_nanos() as u64;
            let cooling = state
                .last_ktime_ns
                .is_some_and(|at| e.ktime_ns < at.saturating_add(cooldown));
            if state.pending.is_some() || cooling {
                self.live.cut_suppressed.get_or_create(label).inc();
                continue;
            }
            state.last_ktime_ns = Some(e.ktime_ns);
            let held = self.opts.plan.cuts_held();
            if held >= self.opts.max_cuts {
                self.live.cut_suppressed.get_or_create(label).inc();
                tracing::error!(
                    trigger = state.name,
                    "no cut: {} already holds {held} cuts (--cut-max {}); ship them (credtrail-ship --follow --remove-local) or remove some",
                    self.opts.plan.root.display(),
                    self.opts.max_cuts
                );
                continue;
            }
            let start = e.ktime_ns.saturating_sub(self.opts.last.as_nanos() as u64);
            let event = safe(&credtrail_pipeline::print::compact(e)).into_owned();
            match Pin::new(&self.capture, start) {
                Ok(pin) => {
                    tracing::warn!(
                        trigger = state.name,
                        "cut triggered by {event}; the cut ends {} s after it",
                        self.opts.after.as_secs()
                    );
                    state.pending = Some(Pending {
                        start_ktime_ns: start,
                        due_ktime_ns: e.ktime_ns.saturating_add(self.opts.after.as_nanos() as u64),
                        event,
                        pin,
                    });
                }
                Err(err) => {
                    self.live.cut_failures.get_or_create(label).inc();
                    tracing::error!(trigger = state.name, "cut not started: {err}");
                }
            }
        }
    }

    /// Whether a cut is due: SIGUSR1, or a trigger's window ended (the
    /// ring drained to `drained_to` past it, or `now` is [`GRACE_NS`] past
    /// it). Every pending cut is due when `all`.
    pub fn due(&self, drained_to: u64, now: u64, all: bool) -> bool {
        self.opts.signal.load(Ordering::Relaxed)
            || self.states.iter().any(|s| {
                s.pending
                    .as_ref()
                    .is_some_and(|p| p.is_due(drained_to, now, all))
            })
    }

    /// Starts every cut that is due, up to `end_ktime_ns` (the capture's
    /// open segments were just sealed up to there).
    pub fn start_due(&mut self, capture: &Path, end_ktime_ns: u64, now: u64, all: bool) {
        self.running.retain(|h| !h.is_finished());
        if self.opts.signal.swap(false, Ordering::Relaxed) {
            let start = end_ktime_ns.saturating_sub(self.opts.last.as_nanos() as u64);
            match Pin::new(&self.capture, start) {
                Ok(pin) => self.spawn(
                    capture,
                    "signal",
                    "SIGUSR1".into(),
                    start,
                    end_ktime_ns,
                    pin,
                ),
                Err(e) => self.failed("signal", &e.to_string()),
            }
        }
        for i in 0..self.states.len() {
            let due = self.states[i]
                .pending
                .as_ref()
                .is_some_and(|p| p.is_due(end_ktime_ns, now, all));
            if !due {
                continue;
            }
            let Some(p) = self.states[i].pending.take() else {
                continue;
            };
            let name = self.states[i].name.clone();
            self.spawn(
                capture,
                &name,
                p.event,
                p.start_ktime_ns,
                end_ktime_ns,
                p.pin,
            );
        }
    }

    fn spawn(
        &mut self,
        capture: &Path,
        trigger: &str,
        event: String,
        start: u64,
        end: u64,
        pin: Pin,
    ) {
        let live = self.live.clone();
        let (source, name) = (capture.to_owned(), trigger.to_owned());
        let began = MonoInstant::now();
        let window = CutWindow {
            start_ktime_ns: start,
            end_ktime_ns: end,
        };
        let started = self.opts.plan.spawn(capture, window, pin, move |r| {
            let label = Live::trigger(&name);
            match r {
                Ok((incident, report)) => {
                    live.cuts.get_or_create(&label).inc();
                    live.cut_seconds.observe(began.elapsed().as_secs_f64());
                    tracing::warn!(
                        trigger = name,
                        "{} (triggered by {event})",
                        cut_line(&source, &incident, &report)
                    );
                }
                Err(e) => {
                    live.cut_failures.get_or_create(&label).inc();
                    tracing::error!(trigger = name, "cut failed: {e}");
                }
            }
        });
        match started {
            Ok(h) => self.running.push(h),
            Err(e) => self.failed(trigger, &format!("{e:#}")),
        }
    }

    fn failed(&self, trigger: &str, why: &str) {
        self.live
            .cut_failures
            .get_or_create(&Live::trigger(trigger))
            .inc();
        tracing::error!(trigger, "cut not started: {why}");
    }

    /// Waits for the cuts being made (their segments are pinned until then).
    pub fn join(&mut self) {
        for h in self.running.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Cuts {
    /// A recording that ends on an error leaves its pending cuts unmade:
    /// each is counted and said, never dropped in silence.
    fn drop(&mut self) {
        for state in &mut self.states {
            if let Some(p) = state.pending.take() {
                self.live.cut_failures.get_or_create(&state.label).inc();
                tracing::error!(
                    trigger = state.name,
                    "cut not made: the recording ended before its window did (triggered by {})",
                    p.event
                );
            }
        }
        self.join();
    }
}
