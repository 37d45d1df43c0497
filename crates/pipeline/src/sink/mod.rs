//! The pipeline's spine: what a kernel or capture record is on its way in
//! ([`Record`]), where enriched rows go ([`Sink`]), and the one shape of a
//! sink in front of another ([`Decorated`] with a [`Stage`]): the policy's
//! pass ([`PolicySink`]), progress counting ([`Counted`]) and the
//! recorder's watch all look at rows and pass the rest on unchanged.
//!
//! The sinks at the end of the line: [`CaptureSink`] (the capture writer
//! and/or a printer).

mod capture;
mod counted;
mod filtered;

use std::borrow::Cow;

pub use capture::{CaptureSink, Counts, Printer};
pub use counted::{Counted, Counting};
pub use filtered::PolicySink;

use credtrail_capture::model::{ContainerRow, Event, ProcEvent, UsernsRow};

use crate::process::ProcInfo;

/// A kernel record, in arrival order.
// Credential records dominate; boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Cred(Event),
    Proc(ProcEvent),
    Userns(UsernsRow),
}

impl Record {
    pub fn seq(&self) -> u64 {
        match self {
            Record::Cred(e) => e.seq,
            Record::Proc(p) => p.seq,
            Record::Userns(u) => u.seq,
        }
    }
}

/// Where enriched records go: the capture writer and/or a printer.
pub trait Sink {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()>;
    fn event(&mut self, e: &Event) -> anyhow::Result<()>;
    /// An event with the cached process that made it (its ancestry and
    /// lineage marks), for sinks that decide by lineage.
    fn event_of(&mut self, e: &Event, process: Option<&ProcInfo>) -> anyhow::Result<()> {
        let _ = process;
        self.event(e)
    }
    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()>;
    fn user_namespace(&mut self, u: &UsernsRow) -> anyhow::Result<()>;
    /// False once nothing more is worth delivering (a reader went away).
    fn wants_more(&self) -> bool {
        true
    }
}

/// What a sink in front of another does with the rows passing: look at
/// them, change an event or leave it out. What it does not handle passes on
/// unchanged ([`Decorated`] forwards it).
pub trait Stage {
    /// The event to pass on (`None`: left out), before the next sink has it.
    fn event<'e>(
        &mut self,
        e: &'e Event,
        process: Option<&ProcInfo>,
    ) -> anyhow::Result<Option<Cow<'e, Event>>> {
        let _ = process;
        Ok(Some(Cow::Borrowed(e)))
    }

    /// An event the next sink took (what is counted once delivered, as the
    /// manifest counts it).
    fn delivered(&mut self, e: &Event) {
        let _ = e;
    }

    /// A lifecycle record, before the next sink has it.
    fn lifecycle(&mut self, p: &ProcEvent) {
        let _ = p;
    }
}

impl<S: Stage + ?Sized> Stage for &mut S {
    fn event<'e>(
        &mut self,
        e: &'e Event,
        process: Option<&ProcInfo>,
    ) -> anyhow::Result<Option<Cow<'e, Event>>> {
        (**self).event(e, process)
    }

    fn delivered(&mut self, e: &Event) {
        (**self).delivered(e)
    }

    fn lifecycle(&mut self, p: &ProcEvent) {
        (**self).lifecycle(p)
    }
}

/// A [`Stage`] in front of `inner`: the one place a decorator forwards
/// what it does not handle.
pub struct Decorated<'a, S> {
    pub stage: S,
    pub inner: &'a mut dyn Sink,
}

impl<'a, S: Stage> Decorated<'a, S> {
    pub fn new(stage: S, inner: &'a mut dyn Sink) -> Self {
        Decorated { stage, inner }
    }
}

impl<S: Stage> Sink for Decorated<'_, S> {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        self.stage.lifecycle(p);
        self.inner.lifecycle(p)
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.event_of(e, None)
    }

    fn event_of(&mut self, e: &Event, process: Option<&ProcInfo>) -> anyhow::Result<()> {
        let Some(passed) = self.stage.event(e, process)? else {
            return Ok(());
        };
        self.inner.event_of(&passed, process)?;
        self.stage.delivered(&passed);
        Ok(())
    }

    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()> {
        self.inner.container(c)
    }

    fn user_namespace(&mut self, u: &UsernsRow) -> anyhow::Result<()> {
        self.inner.user_namespace(u)
    }

    fn wants_more(&self) -> bool {
        self.inner.wants_more()
    }
}
