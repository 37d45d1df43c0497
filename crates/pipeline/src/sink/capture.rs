//! Where enriched records go, live or replayed: the capture writer and/or a
//! printer. One type serves `credtrail-record` and `credtrail-replay`.

use std::io::{self, Write};

use anyhow::Context as _;

use super::Sink;
use crate::print::{PrintFormat, Stable, print_event};
use credtrail_capture::CaptureWriter;
use credtrail_capture::error::CaptureError;
use credtrail_capture::model::{ContainerRow, Event, ProcEvent, UsernsRow};

/// Printing to stdout that stops quietly when the reader goes away
/// (`| head`): a recorder keeps recording, a replay stops.
pub struct Printer<'a> {
    format: PrintFormat,
    out: io::BufWriter<&'a mut dyn Write>,
    closed: bool,
    /// `--stable`: rows held until the first flush, then printed ordered
    /// and normalized (a replay's printer, flushed once at its end).
    stable: Option<Stable>,
}

impl<'a> Printer<'a> {
    pub fn new(format: PrintFormat, out: &'a mut dyn Write) -> Self {
        Printer {
            format,
            out: io::BufWriter::new(out),
            closed: false,
            stable: None,
        }
    }

    /// A printer of [`Stable`] output: json or compact only.
    pub fn stable(format: PrintFormat, out: &'a mut dyn Write) -> anyhow::Result<Self> {
        Stable::check(format)?;
        Ok(Printer {
            stable: Some(Stable::default()),
            ..Printer::new(format, out)
        })
    }

    fn print(&mut self, ev: &Event) -> anyhow::Result<()> {
        if let Some(s) = self.stable.as_mut() {
            return Ok(s.push(ev)?);
        }
        if self.closed {
            return Ok(());
        }
        let r = print_event(&mut self.out, self.format, ev);
        self.check(r)
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stable.take() {
            let r = s.finish(&mut self.out, self.format);
            self.check(r)?;
        }
        if self.closed {
            return Ok(());
        }
        let r = self.out.flush();
        self.check(r)
    }

    /// Whether the reader went away.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn check(&mut self, r: io::Result<()>) -> anyhow::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::info!("stdout closed; printing stops");
                self.closed = true;
                Ok(())
            }
            r => r.context("cannot write events to stdout"),
        }
    }
}

/// What a sink received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub lifecycle: u64,
    pub containers: u64,
    pub user_namespaces: u64,
}

/// The capture writer and the printer behind the enricher.
pub struct CaptureSink<'a> {
    pub writer: Option<CaptureWriter>,
    /// The first write error: writing stops there, and whatever was
    /// delivered but is not durable is counted as lost by the caller.
    pub write_error: Option<CaptureError>,
    pub printer: Option<Printer<'a>>,
    /// Records delivered to this sink.
    pub counts: Counts,
}

impl<'a> CaptureSink<'a> {
    pub fn new(writer: Option<CaptureWriter>, printer: Option<Printer<'a>>) -> Self {
        CaptureSink {
            writer,
            write_error: None,
            printer,
            counts: Counts::default(),
        }
    }

    /// Runs `f` on the writer unless a write already failed; keeps the
    /// first error.
    pub fn write(&mut self, f: impl FnOnce(&mut CaptureWriter) -> Result<(), CaptureError>) {
        if self.write_error.is_some() {
            return;
        }
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = f(w)
        {
            tracing::error!("{e}; stopping the recording");
            self.write_error = Some(e);
        }
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        match self.printer.as_mut() {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }
}

impl Sink for CaptureSink<'_> {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        self.write(|w| w.push_lifecycle(p));
        self.counts.lifecycle += 1;
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.write(|w| w.push(e));
        if let Some(p) = self.printer.as_mut() {
            p.print(e)?;
        }
        self.counts.events += 1;
        Ok(())
    }

    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()> {
        self.write(|w| w.push_container(c));
        self.counts.containers += 1;
        Ok(())
    }

    fn user_namespace(&mut self, u: &UsernsRow) -> anyhow::Result<()> {
        self.write(|w| w.push_user_namespace(u));
        self.counts.user_namespaces += 1;
        Ok(())
    }

    fn wants_more(&self) -> bool {
        // Printing was all there was to do, and nobody reads it any more.
        self.writer.is_some() || !self.printer.as_ref().is_some_and(Printer::closed)
    }
}
