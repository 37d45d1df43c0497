//! The policy's pass as a stage: what `--policy` keeps goes on, named
//! after the policy that keeps it; the rest is counted in the filter.

use std::borrow::Cow;

use credtrail_capture::model::Event;

use super::{Decorated, Stage};
use crate::policy::decide::PolicyFilter;
use crate::process::ProcInfo;

/// A sink that passes on what a policy keeps, named after the policy.
pub type PolicySink<'a> = Decorated<'a, &'a mut PolicyFilter>;

impl Stage for PolicyFilter {
    fn event<'e>(
        &mut self,
        e: &'e Event,
        process: Option<&ProcInfo>,
    ) -> anyhow::Result<Option<Cow<'e, Event>>> {
        let Some(name) = self.admit(e, process) else {
            return Ok(None);
        };
        if e.policy.as_deref() == Some(name) {
            return Ok(Some(Cow::Borrowed(e)));
        }
        let mut kept = e.clone();
        kept.policy = Some(name.to_owned());
        Ok(Some(Cow::Owned(kept)))
    }
}
