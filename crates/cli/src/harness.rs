//! The `main` every credtrail binary shares: logging to stderr (text or
//! JSON), panics turned into one error line, a closed stdout taken as
//! success, and the closing line.

/// How log lines look on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per message.
    #[default]
    Human,
    /// One JSON object per line (timestamp, level, fields with the
    /// message, target), for Fluent Bit, Vector or Loki.
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Logs to stderr (never raw escapes); `RUST_LOG` overrides `default`.
fn init_logging(default: &str, format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Log lines carry names from processes and captures: no raw escapes
    // (and so no colours of our own either).
    let fmt = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(filter);
    match format {
        LogFormat::Human => fmt
            .with_writer(|| crate::term::SafeWriter(std::io::stderr()))
            .init(),
        LogFormat::Json => fmt
            .json()
            .with_writer(|| crate::term::JsonSafeWriter(std::io::stderr()))
            .init(),
    }
}

/// A binary's closing line on stderr (`credtrail-record: sealed ...`): as
/// it is, or, under `--log-format json`, as a log record like the others.
pub fn say(program: &str, line: &str) {
    match LOG_FORMAT.get() {
        // As the log records are, but past RUST_LOG's filter: the closing
        // line is always there, as in text.
        Some(LogFormat::Json) => {
            use std::io::Write as _;
            let record = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "fields": { "message": line, "program": program },
                "target": program,
            });
            let _ = writeln!(crate::term::JsonSafeWriter(std::io::stderr()), "{record}");
        }
        _ => eprintln!("{program}: {}", crate::term::safe(line)),
    }
}

/// One credtrail binary: its command line, and what it does with it. The
/// library of each tool implements it; its bin is [`tool_main`] (and, where
/// it has one, the allocator), so every binary starts, logs and fails alike,
/// and tests run a tool's `run` with their own output.
pub trait Tool: clap::Parser {
    /// The binary's name, which starts its lines on stderr.
    const PROGRAM: &'static str;
    /// What is logged unless `RUST_LOG` says otherwise.
    const LOG_LEVEL: &'static str = "warn";

    /// How its log lines look (`--log-format`, where it has one).
    fn log_format(&self) -> LogFormat {
        LogFormat::Human
    }

    /// Runs the command line: answers to `out`, messages to `err`.
    fn run(
        self,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> anyhow::Result<std::process::ExitCode>;
}

/// The `main` of every credtrail binary: parses `T`'s command line, logs
/// to stderr at its level (`RUST_LOG` wins), runs it with panics turned
/// into errors, treats a closed stdout (`| head`) as success, and prints
/// any other error as one line, exit status 1.
pub fn tool_main<T: Tool>() -> std::process::ExitCode {
    let cli = T::parse();
    let format = cli.log_format();
    main_logged(T::PROGRAM, T::LOG_LEVEL, format, || {
        let code = cli.run(&mut std::io::stdout(), &mut std::io::stderr())?;
        // What is left in stdout's line buffer goes at exit, whose errors
        // are not the tool's: its own status stands (a recorded command's
        // exit code through `| head`). A tool that must know its output
        // arrived flushes in its `run`.
        Ok(code)
    })
}

/// [`tool_main`] for a closure: logs to stderr at `log_level` in `format`
/// (under JSON the error line is a log record too), runs `run` with panics
/// turned into errors, a closed stdout taken as success, any other error
/// one line, exit status 1.
fn main_logged(
    program: &str,
    log_level: &str,
    format: LogFormat,
    run: impl FnOnce() -> anyhow::Result<std::process::ExitCode>,
) -> std::process::ExitCode {
    init_logging(log_level, format);
    match run_guarded(run) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) if format == LogFormat::Json => {
            // The encoder escapes the text; the record carries the program.
            tracing::error!(program, "{}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{}", error_line(program, &e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The one line a binary prints for an error, made safe for a terminal.
fn error_line(program: &str, e: &anyhow::Error) -> String {
    format!("{program}: error: {}", crate::term::safe(&error_text(e)))
}

/// An error's message and each cause it does not already say (errors that
/// name their cause also chain it).
fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// True when the error comes from writing to a closed pipe: `| head` having
/// read enough is not a failure of the tool writing.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs a binary's `run`, turning a panic (a dependency's decoder failing on
/// a crafted or damaged file) into one error line instead of a backtrace.
/// The panic's own message is logged at debug level (`RUST_LOG=debug`).
pub fn run_guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        tracing::debug!("panic: {msg}");
        if let Ok(mut last) = LAST.lock() {
            last.get_or_insert(msg);
        }
    }));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.unwrap_or_else(|_| {
        let msg = LAST
            .lock()
            .ok()
            .and_then(|mut l| l.take())
            .unwrap_or_default()
            .replace('\n', " ");
        Err(anyhow::anyhow!(
            "internal failure ({msg}); if it was reading a capture, check that with `credtrail-replay --verify`"
        ))
    })
}
