//! Tables for people in a terminal, as `kubectl get` prints them: a header
//! row, columns two spaces apart, no types, `-` for a missing value. When
//! the terminal is too narrow, long values are shortened first (paths keep
//! their end, arguments their start), then the least important columns
//! are left out in the order the table gives; the columns that answer the
//! question are never left out.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::safe;

/// Columns between two cells.
const GAP: usize = 2;
/// A shortened cell keeps at least this many columns before columns are
/// dropped; below it only when nothing else can go.
const SOFT_FLOOR: usize = 24;
const HARD_FLOOR: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Which end of a long value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorten {
    /// Shown whole (ids, times, counts).
    Never,
    /// Paths: `…/bin/su`.
    KeepEnd,
    /// Arguments, lists: `--log-format=json --lo…`.
    KeepStart,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    pub align: Align,
    pub shorten: Shorten,
    /// 0: answers the question, never left out. Otherwise the higher, the
    /// sooner it goes when the terminal is too narrow.
    pub drop: u8,
}

impl Column {
    pub fn new(header: impl Into<String>) -> Column {
        Column {
            header: header.into(),
            align: Align::Left,
            shorten: Shorten::Never,
            drop: 0,
        }
    }
    pub fn right(mut self) -> Column {
        self.align = Align::Right;
        self
    }
    pub fn shorten(mut self, s: Shorten) -> Column {
        self.shorten = s;
        self
    }
    pub fn drop(mut self, rank: u8) -> Column {
        self.drop = rank;
        self
    }
}

/// How a row stands out when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mark {
    #[default]
    Plain,
    /// A privilege raise: bold red.
    Raise,
    /// A refused attempt: yellow.
    Refused,
}

impl Mark {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Mark::Plain => None,
            Mark::Raise => Some("\x1b[1;31m"),
            Mark::Refused => Some("\x1b[33m"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    /// Cells in column order; `None` shows as `-`.
    pub rows: Vec<(Mark, Vec<Option<String>>)>,
}

/// Where the table goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    /// The terminal's width; `None`: as wide as the values.
    pub width: Option<usize>,
    pub color: bool,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, mark: Mark, cells: Vec<Option<String>>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push((mark, cells));
    }

    /// The table as lines of text (each ending in a newline).
    pub fn render(&self, layout: Layout) -> String {
        // Cells come from processes and captures: escaped before measuring.
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|(_, r)| {
                r.iter()
                    .map(|c| match c.as_deref() {
                        None | Some("") => "-".to_owned(),
                        Some(s) => safe(s).into_owned(),
                    })
                    .collect()
            })
            .collect();
        let natural: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].width())
                    .fold(c.header.width(), usize::max)
            })
            .collect();
        let (shown, widths) = fit(&self.columns, &natural, layout.width);
        let mut out = String::new();
        let header: Vec<String> = shown
            .iter()
            .map(|&i| self.columns[i].header.clone())
            .collect();
        line(
            &mut out,
            &shown,
            &widths,
            &self.columns,
            &header,
            layout.color.then_some("\x1b[1m"),
        );
        for ((mark, _), row) in self.rows.iter().zip(&cells) {
            let row: Vec<String> = shown.iter().map(|&i| row[i].clone()).collect();
            line(
                &mut out,
                &shown,
                &widths,
                &self.columns,
                &row,
                mark.sgr().filter(|_| layout.color),
            );
        }
        out
    }
}

fn line(
    out: &mut String,
    shown: &[usize],
    widths: &[usize],
    columns: &[Column],
    cells: &[String],
    sgr: Option<&str>,
) {
    let mut text = String::new();
    for (k, (&i, cell)) in shown.iter().zip(cells).enumerate() {
        let w = widths[k];
        let col = &columns[i];
        let cell = cut(cell, w, col.shorten);
        let pad = w.saturating_sub(cell.width());
        if k > 0 {
            text.push_str(&" ".repeat(GAP));
        }
        match col.align {
            Align::Right => {
                text.push_str(&" ".repeat(pad));
                text.push_str(&cell);
            }
            Align::Left => {
                text.push_str(&cell);
                text.push_str(&" ".repeat(pad));
            }
        }
    }
    let text = text.trim_end();
    match sgr {
        Some(s) => {
            out.push_str(s);
            out.push_str(text);
            out.push_str("\x1b[0m");
        }
        None => out.push_str(text),
    }
    out.push('\n');
}

/// The columns shown and their widths within `width`.
fn fit(columns: &[Column], natural: &[usize], width: Option<usize>) -> (Vec<usize>, Vec<usize>) {
    let mut shown: Vec<usize> = (0..columns.len()).collect();
    let mut w: Vec<usize> = natural.to_vec();
    let Some(limit) = width else {
        return (shown, w);
    };
    let total = |shown: &[usize], w: &[usize]| -> usize {
        shown.iter().map(|&i| w[i]).sum::<usize>() + GAP * shown.len().saturating_sub(1)
    };
    let floor = |i: usize, soft: usize| -> usize {
        match columns[i].shorten {
            Shorten::Never => natural[i],
            _ => natural[i].min(columns[i].header.width().max(soft)),
        }
    };
    // Which values are shortened first: other columns', then the answer's
    // paths, then the answer's text (`euid 1000→0` stays whole longest).
    let keep = |i: usize| match (columns[i].drop, columns[i].shorten) {
        (0, Shorten::KeepStart) => 2,
        (0, _) => 1,
        _ => 0,
    };
    // Shorten the widest such value a column at a time.
    let shrink = |shown: &[usize], w: &mut [usize], soft: usize| {
        let mut over = total(shown, w).saturating_sub(limit);
        while over > 0 {
            let Some(&i) = shown
                .iter()
                .filter(|&&i| w[i] > floor(i, soft))
                .max_by_key(|&&i| (std::cmp::Reverse(keep(i)), w[i], i))
            else {
                break;
            };
            w[i] -= 1;
            over -= 1;
        }
    };
    shrink(&shown, &mut w, SOFT_FLOOR);
    // Then leave out the least important columns (the rightmost first
    // among equals), giving the room back to the others.
    while total(&shown, &w) > limit {
        let Some(k) = (0..shown.len())
            .filter(|&k| columns[shown[k]].drop > 0)
            .max_by_key(|&k| (columns[shown[k]].drop, k))
        else {
            break;
        };
        shown.remove(k);
        w = natural.to_vec();
        shrink(&shown, &mut w, SOFT_FLOOR);
    }
    shrink(&shown, &mut w, HARD_FLOOR);
    let widths = shown.iter().map(|&i| w[i]).collect();
    (shown, widths)
}

/// `s` in at most `w` terminal columns, `…` marking what was cut.
fn cut(s: &str, w: usize, how: Shorten) -> String {
    if s.width() <= w || how == Shorten::Never || w == 0 {
        return s.to_owned();
    }
    let room = w - 1;
    let mut kept = 0;
    let take = |c: &char| {
        let cw = c.width().unwrap_or(0);
        if kept + cw > room {
            return false;
        }
        kept += cw;
        true
    };
    match how {
        Shorten::KeepStart => {
            let head: String = s.chars().take_while(take).collect();
            format!("{head}…")
        }
        _ => {
            let mut tail: Vec<char> = s.chars().rev().take_while(take).collect();
            tail.reverse();
            format!("…{}", tail.into_iter().collect::<String>())
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: impl std::fmt::Display) -> String {
    let s = n.to_string();
    let (sign, digits) = s.strip_prefix('-').map_or(("", &s[..]), |d| ("-", d));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    out.push_str(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(vec![
            Column::new("TIME"),
            Column::new("BINARY").shorten(Shorten::KeepEnd),
            Column::new("PID").right().drop(2),
            Column::new("CHANGE"),
            Column::new("ARGUMENTS").shorten(Shorten::KeepStart).drop(3),
        ]);
        t.push(
            Mark::Raise,
            vec![
                Some("12:00:01.123".into()),
                Some("/very/long/path/to/the/bin/su".into()),
                Some("4242".into()),
                Some("euid 1000→0".into()),
                Some("--login --shell /bin/bash root".into()),
            ],
        );
        t.push(
            Mark::Plain,
            vec![
                Some("12:00:02.000".into()),
                None,
                Some("7".into()),
                Some("".into()),
                None,
            ],
        );
        t
    }

    #[test]
    fn wide_enough_shows_everything_aligned() {
        let out = table().render(Layout {
            width: Some(200),
            color: false,
        });
        assert_eq!(
            out,
            "TIME          BINARY                          PID  CHANGE       ARGUMENTS\n\
             12:00:01.123  /very/long/path/to/the/bin/su  4242  euid 1000→0  --login --shell /bin/bash root\n\
             12:00:02.000  -                                 7  -            -\n"
        );
    }

    #[test]
    fn narrow_shortens_then_drops_but_keeps_the_answer() {
        let out = table().render(Layout {
            width: Some(50),
            color: false,
        });
        for l in out.lines() {
            assert!(l.width() <= 50, "{l:?}");
        }
        assert!(out.starts_with("TIME          BINARY"), "{out}");
        assert!(out.contains("  …ong/path/to/the/bin/su  "), "{out}");
        assert!(out.contains("euid 1000→0"), "{out}");
        assert!(!out.contains("ARGUMENTS"), "dropped first: {out}");
        // Too narrow for anything but the answer: it overflows, still whole.
        let out = table().render(Layout {
            width: Some(10),
            color: false,
        });
        assert_eq!(out.lines().next(), Some("TIME          BINARY      CHANGE"));
        assert!(out.contains("euid 1000→0"));
    }

    #[test]
    fn colour_marks_rows_and_escapes_stay_text() {
        let mut t = table();
        t.rows[1].1[1] = Some("\x1b[2Jevil".into());
        let out = t.render(Layout {
            width: None,
            color: true,
        });
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("\x1b[1mTIME"));
        assert!(lines[1].starts_with("\x1b[1;31m12:00:01.123") && lines[1].ends_with("\x1b[0m"));
        assert!(lines[2].contains("\\e[2Jevil") && !lines[2].starts_with('\x1b'));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(40009), "40,009");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }
}
