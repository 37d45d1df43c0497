//! The `credtrail-query` command line.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};

use credtrail_cli::progress::Progress;
use credtrail_pipeline::policy::Rules;

use clap::{Parser, Subcommand};
use credtrail_cli::term::table::Layout;
use credtrail_cli::term::{ColorChoice, safe};
use polars::prelude::DataFrame;

use crate::formats::{Format, write, write_text};
use crate::questions::{self, Filters, TimelineArgs};
use crate::view::{self, Kind};
use crate::{CaptureInfo, QueryError, Trust, discover_pruned, refuse_file_functions, sql};

/// Ask questions of credtrail captures: SQL over the tables `events`,
/// `lifecycle`, `processes`, `containers`, `user_namespaces` and `captures`
/// (each with `capture` and `node` columns), or one of the built-in
/// questions.
#[derive(Parser, Debug)]
#[command(
    name = "credtrail-query",
    version,
    subcommand_precedence_over_arg = true,
    after_help = "Examples:\n  credtrail-query captures/ became-root\n  credtrail-query captures/ report --out incident.html\n  credtrail-query captures/ caps --pod default/xwing\n  credtrail-query captures/*/ --sql \"SELECT syscall, count(*) AS n FROM events GROUP BY 1\""
)]
pub struct Cli {
    /// Captures, or folders holding captures (hive layouts like node=a/date=b/ too),
    /// local or in object storage (s3://bucket/prefix: fetched first, leaving
    /// out captures --node, --since and --until exclude).
    #[arg(required = true, value_name = "CAPTURE")]
    pub paths: Vec<PathBuf>,
    /// S3-compatible endpoint for s3:// captures (default $AWS_ENDPOINT_URL, else AWS).
    #[arg(long, value_name = "URL", global = true)]
    pub endpoint: Option<String>,
    /// Most memory to use (`512M`, `4G`); past it, stop with one line
    /// instead of being killed. Default: half the machine's memory, or 80%
    /// of its cgroup's limit.
    #[arg(long, value_name = "SIZE", global = true, value_parser = credtrail_cli::budget::parse_size)]
    pub memory_limit: Option<u64>,
    /// Run this SQL query (polars SQL) instead of a built-in question.
    #[arg(long)]
    pub sql: Option<String>,
    /// Let --sql read other files with read_csv, read_parquet, read_json or
    /// read_ipc (off: a query over captures reads only the captures).
    #[arg(long, requires = "sql")]
    pub sql_file_access: bool,
    /// Skip checking each segment's sha256 against its manifest before
    /// reading it (the decoding bounds are still checked). Faster; a file
    /// altered or swapped for another is then read as if it belonged.
    #[arg(long, global = true)]
    pub no_verify: bool,
    /// Output format (`-o wide`: the table with every column).
    #[arg(long, short = 'o', value_enum, default_value = "table", global = true)]
    pub format: Format,
    /// The table with every column and whole values (= `-o wide`).
    #[arg(long, global = true)]
    pub wide: bool,
    /// Rows a table shows at most (default for `timeline` and `--sql`: 50).
    #[arg(long, value_name = "N", global = true, conflicts_with = "all")]
    pub limit: Option<usize>,
    /// Every row in a table.
    #[arg(long, global = true)]
    pub all: bool,
    /// Table width in columns (default: the terminal's, or unlimited in a pipe).
    #[arg(long, value_name = "COLUMNS", global = true)]
    pub width: Option<usize>,
    /// Colour in tables: privilege raises and refusals stand out.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: ColorChoice,
    /// Times in tables in UTC (the default).
    #[arg(long, global = true, conflicts_with = "local")]
    pub utc: bool,
    /// Times in tables in the local time zone.
    #[arg(long, global = true)]
    pub local: bool,
    /// Print long tables straight to the terminal instead of through $PAGER.
    #[arg(long, global = true)]
    pub no_pager: bool,
    /// Write the answer to this file instead of stdout.
    #[arg(long, value_name = "FILE", global = true)]
    pub out: Option<PathBuf>,
    /// Answer over only the events these Tetragon TracingPolicy files
    /// keep, exactly as `credtrail-record --policy` would have kept them
    /// (repeatable; the `policy` column names the policy). Lifecycle and
    /// process tables are not filtered.
    #[arg(long, value_name = "FILE", global = true)]
    pub policy: Vec<PathBuf>,
    /// Apply the policies even where they use what credtrail cannot
    /// honour (each ignored, listed on stderr).
    #[arg(long, global = true)]
    pub policy_warn: bool,
    #[command(flatten)]
    pub filters: Filters,
    #[command(subcommand)]
    pub question: Option<Question>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Question {
    /// Counts per node, syscall, result, pod and binary, and each capture's drop counters.
    Summary,
    /// Changes that made the effective or filesystem uid 0 from non-zero.
    BecameRoot,
    /// Capability changes, as capabilities gained (+) and lost (-) per set.
    Caps,
    /// Supplementary group changes, as groups gained (+) and lost (-).
    Groups,
    /// Refused attempts (EPERM and friends): the clearest sign of probing.
    Failed,
    /// Credential and lifecycle events in time order.
    Timeline(TimelineArgs),
    /// Credential changes no recorded call explains: found live by the
    /// recorder, and offline by replaying each capture (a thread's
    /// credentials at exec, exit or its next call that differ from what its
    /// last record left).
    Unexplained,
    /// The ancestry of a process as it was at that time (`unexplained`
    /// marks a process whose credentials changed with no call to explain it).
    Tree {
        /// The process's exec_id.
        exec_id: String,
    },
    /// One HTML page to look at in a browser (needs --out FILE): timeline, process trees, findings.
    ///
    /// Self-contained and offline (it loads nothing): what the captures
    /// cover and lost, a timeline of credential changes per pod or process
    /// with privilege raises, refused attempts and unexplained changes
    /// marked, the process tree around each raise, and the findings of
    /// became-root, caps, groups, failed and unexplained, each linked to its
    /// place. The filters apply before the page is made.
    Report,
    /// Check what a recorded command did against an expectations file
    /// (what it may and may not do to its credentials; docs/ci.md): one
    /// line per expectation, the rows that broke it, exit 1 if any did.
    Expect {
        /// The expectations (YAML).
        file: std::path::PathBuf,
    },
}

/// Runs the command; writes answers to `out` (not a terminal) and
/// warnings to `err`.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), QueryError> {
    run_at(cli, out, err, false)
}

/// [`run`], told whether `out` is a terminal (colour, width).
pub fn run_at(
    cli: Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
    is_terminal: bool,
) -> Result<(), QueryError> {
    let trust = if cli.no_verify {
        Trust::BoundsOnly
    } else {
        Trust::Verify
    };
    if let Some(q) = &cli.sql
        && !cli.sql_file_access
    {
        refuse_file_functions(q)?;
    }
    // `local` holds the fetched copies: kept until the answer is written.
    let (caps, _local) = gather(&cli, trust, err)?;
    // Every answer says when it rests on a capture that lost events, was
    // recovered or cut short, or whose manifest does not verify.
    let warnings = crate::warnings::warnings(&caps, trust);
    for w in warnings.iter().filter(|w| w.kind != "unverified") {
        let _ = writeln!(err, "credtrail-query: warning: {}", safe(&w.text));
    }
    match (&cli.sql, &cli.question) {
        (Some(_), Some(_)) => {
            return Err(QueryError::Invalid(
                "give either --sql or a built-in question, not both".into(),
            ));
        }
        (None, Some(Question::Report)) => return report(&cli, &caps, trust, warnings, err),
        (None, Some(Question::Expect { file })) => return crate::expect::expect(&caps, file, out),
        _ => {}
    }
    let table = matches!(cli.format, Format::Table | Format::Wide) || cli.wide;
    // Cleared before the answer is written (a terminal table follows it).
    let progress = Progress::spinner("answering");
    let answers = match &cli.sql {
        Some(q) => vec![(Kind::Sql, sql(&caps, q)?, None)],
        None => builtin(&cli, &caps, table)?,
    };
    drop(progress);
    show(&cli, &caps, answers, is_terminal, out)
}

/// The captures the paths name, fetched, discovered, pruned by the
/// filters, named by their URL when fetched, and narrowed by `--policy`;
/// and the fetched copies, removed when that is dropped.
fn gather(
    cli: &Cli,
    trust: Trust,
    err: &mut dyn Write,
) -> Result<(Vec<CaptureInfo>, credtrail_ship::localize::Localized), QueryError> {
    let prune = credtrail_ship::fetch::Prune {
        node: cli.filters.node.clone(),
        since_ns: cli.filters.since,
        until_ns: cli.filters.until,
        everything: false,
    };
    let local = credtrail_ship::localize::localize(&cli.paths, cli.endpoint.as_deref(), &prune)?;
    for note in &local.notes {
        let _ = writeln!(err, "credtrail-query: {}", safe(note));
    }
    // Local captures are pruned as fetched ones were.
    let (mut caps, pruned) = discover_pruned(&local.paths, trust, &prune)?;
    if pruned > 0 {
        let _ = writeln!(
            err,
            "credtrail-query: {} of {} captures left out by --node/--since/--until (their segments not read)",
            pruned,
            pruned + crate::answered(&caps).count()
        );
    }
    for c in &mut caps {
        if let Some(url) = local.url_of(&c.dir) {
            c.name = url.to_owned();
        }
    }
    if !cli.policy.is_empty() {
        let rules = Rules::load(&cli.policy, cli.policy_warn)
            .map_err(|e| QueryError::Invalid(format!("policy {e}")))?;
        for line in &rules.ignored {
            let _ = writeln!(err, "credtrail-query: policy: {}", safe(line));
        }
        crate::policy_pass::apply(&mut caps, &rules)?;
    } else if cli.policy_warn {
        return Err(QueryError::Invalid(
            "--policy-warn needs --policy FILE".into(),
        ));
    }
    Ok((caps, local))
}

/// One answer: what it is, its rows, and how many rows the whole answer
/// has when the frame holds fewer.
type Answer = (Kind, DataFrame, Option<usize>);

/// The answers to a built-in question (`summary` when none is asked).
fn builtin(cli: &Cli, caps: &[CaptureInfo], table: bool) -> Result<Vec<Answer>, QueryError> {
    // A table shows `--limit` rows: the logical-change questions keep no
    // more (and count the rest), so their memory is the rows shown.
    let keep = if table && !cli.all { cli.limit } else { None };
    let cut = |(df, total): (DataFrame, usize)| (df, Some(total));
    let f = &cli.filters;
    let mut answers: Vec<Answer> = Vec::new();
    match &cli.question {
        None | Some(Question::Summary) => {
            answers.push((Kind::Summary, questions::summary(caps, f)?, None));
            if table {
                answers.push((Kind::Counters, questions::capture_counters(caps)?, None));
            }
        }
        Some(q @ (Question::BecameRoot | Question::Caps | Question::Failed | Question::Groups)) => {
            let (kind, (df, total)) = match q {
                Question::BecameRoot => (
                    Kind::BecameRoot,
                    cut(questions::became_root(caps, f, keep)?),
                ),
                Question::Caps => (Kind::Caps, cut(questions::caps(caps, f, keep)?)),
                Question::Failed => (Kind::Failed, cut(questions::failed(caps, f, keep)?)),
                _ => (Kind::Groups, cut(questions::groups(caps, f, keep)?)),
            };
            answers.push((kind, df, total));
        }
        Some(Question::Timeline(t)) => {
            answers.push((Kind::Timeline, questions::timeline(caps, f, t)?, None))
        }
        Some(Question::Unexplained) => {
            let (df, total) = cut(crate::unexplained::unexplained(caps, f, keep)?);
            answers.push((Kind::Unexplained, df, total))
        }
        Some(Question::Tree { exec_id }) => {
            answers.push((Kind::Tree, crate::tree::tree(caps, exec_id)?, None))
        }
        // Written by run_at itself, not answers to show.
        Some(Question::Report | Question::Expect { .. }) => {}
    }
    Ok(answers)
}

/// `report`: the HTML page, written to `--out`.
fn report(
    cli: &Cli,
    caps: &[CaptureInfo],
    trust: Trust,
    warnings: Vec<crate::warnings::Warning>,
    err: &mut dyn Write,
) -> Result<(), QueryError> {
    let Some(path) = cli.out.as_deref() else {
        return Err(QueryError::Invalid(
            "report writes an HTML page: add --out FILE (e.g. --out incident.html)".into(),
        ));
    };
    if cli.format != Format::Table || cli.wide {
        return Err(QueryError::Invalid(
            "--format does not apply to report, which writes HTML".into(),
        ));
    }
    let data = crate::report::build(caps, &cli.filters, trust, warnings)?;
    let page = crate::report::html::render(&data)?;
    crate::formats::write_file(path, page.as_bytes())?;
    let _ = writeln!(
        err,
        "credtrail-query: report written to {} ({} bytes); open it in a browser",
        safe(&path.display().to_string()),
        page.len()
    );
    Ok(())
}

/// The answers written: as tables for people (at most `--limit` rows of
/// an answer with a row per event), or in `--format`, to `--out` or `out`.
fn show(
    cli: &Cli,
    caps: &[CaptureInfo],
    answers: Vec<Answer>,
    is_terminal: bool,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    let format = if cli.wide { Format::Wide } else { cli.format };
    let to_file = cli.out.is_some();
    let sql_limited = cli.sql.as_deref().is_some_and(has_limit);
    let terminal = is_terminal && !to_file;
    let mut text = String::new();
    for (kind, mut df, total) in answers {
        if !matches!(format, Format::Table | Format::Wide) {
            write(&mut df, format, cli.out.as_deref(), out)?;
            continue;
        }
        let limit = match (cli.all, cli.limit) {
            (true, _) => None,
            (false, Some(n)) => Some(n),
            (false, None) if kind.row_per_event() && !sql_limited => Some(view::DEFAULT_LIMIT),
            (false, None) => None,
        };
        let opts = view::Options {
            layout: Layout {
                width: cli
                    .width
                    .or_else(|| crate::formats::terminal_width(terminal)),
                color: cli.color.enabled(terminal),
            },
            wide: format == Format::Wide,
            limit,
            local: cli.local,
            captures: crate::answered(caps).count(),
            total,
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&view::render(&df, kind, &opts)?);
    }
    if !text.is_empty() {
        write_text(&text, cli.out.as_deref(), out)?;
    }
    Ok(())
}

/// Whether a query limits its own rows (a LIMIT or FETCH keyword).
fn has_limit(q: &str) -> bool {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    Tokenizer::new(&GenericDialect {}, q)
        .tokenize()
        .is_ok_and(|tokens| {
            tokens.iter().any(|t| {
                matches!(t, Token::Word(w) if matches!(w.keyword, Keyword::LIMIT | Keyword::FETCH))
            })
        })
}

/// The binary: the memory budget, polars' settings, a pager for long
/// tables at a terminal (`out` is then the pager's input).
impl credtrail_cli::Tool for Cli {
    const PROGRAM: &'static str = "credtrail-query";

    fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
        let cli = self;
        credtrail_cli::budget::set_limit(
            Self::PROGRAM,
            cli.memory_limit
                .unwrap_or_else(credtrail_cli::budget::default_limit),
            "narrow it (--since/--until, --node, --pod, a WHERE or a LIMIT, fewer columns)",
        );
        // SAFETY: set before polars starts any thread; nothing else reads the
        // environment concurrently at this point.
        unsafe {
            // polars' streaming group-by keeps this many groups per thread in a
            // table and spills the rest for a slower merge. Its default (4,096)
            // is below what credential questions group by (pid x syscall x pod):
            // 65,536 measured 0.51 -> 0.44 s and 1.07 -> 0.88 s on 10 M events,
            // with half the memory. A user's own setting wins.
            if std::env::var_os("POLARS_HOT_TABLE_SIZE").is_none() {
                std::env::set_var("POLARS_HOT_TABLE_SIZE", "65536");
            }
        }
        let is_terminal = std::io::stdout().is_terminal();
        let table = cli.wide || matches!(cli.format, Format::Table | Format::Wide);
        // Long tables at a terminal go through a pager, as `git log` does.
        let pager = (is_terminal && table && !cli.no_pager && cli.out.is_none())
            .then(spawn_pager)
            .flatten();
        match pager {
            Some(mut child) => {
                let mut stdin = child.stdin.take().expect("piped");
                let result = run_at(cli, &mut stdin, err, true);
                drop(stdin);
                let _ = child.wait();
                result?;
            }
            None => run_at(cli, out, err, is_terminal)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `$PAGER` (default `less`, told to quit when the table fits one screen,
/// keep colours and not clear the screen); none when it is empty or `cat`,
/// or cannot be started.
fn spawn_pager() -> Option<Child> {
    let pager = std::env::var("CREDTRAIL_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less".into());
    if pager.trim().is_empty() || pager.trim() == "cat" {
        return None;
    }
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &pager]).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        cmd.env("LESS", "FRX");
    }
    cmd.spawn().ok()
}
