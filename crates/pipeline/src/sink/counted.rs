//! Progress counting as a stage: each record passing (events and
//! lifecycle) moves a [`Progress`] bar.

use std::borrow::Cow;

use credtrail_capture::model::{Event, ProcEvent};
use credtrail_cli::progress::Progress;

use super::{Decorated, Stage};
use crate::process::ProcInfo;

/// Counts on a bar what passes.
pub struct Counting<'a>(pub &'a Progress);

/// A sink that counts the records it passes on on a [`Progress`] bar.
pub type Counted<'a> = Decorated<'a, Counting<'a>>;

impl Stage for Counting<'_> {
    fn event<'e>(
        &mut self,
        e: &'e Event,
        _process: Option<&ProcInfo>,
    ) -> anyhow::Result<Option<Cow<'e, Event>>> {
        self.0.inc(1);
        Ok(Some(Cow::Borrowed(e)))
    }

    fn lifecycle(&mut self, _p: &ProcEvent) {
        self.0.inc(1);
    }
}
