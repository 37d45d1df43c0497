//! The four logical-change questions on the column scan: which events are
//! candidates and what each keeps, as the polars plans in `questions.rs`
//! say (the same null rules: a comparison with a missing value is false).

use std::collections::HashMap;

use credtrail_capture::model::userns::{NsIds, root_scope};
use credtrail_capture::model::{Creds, Syscall, UsernsRow};
use polars::prelude::*;

use arrow::array::{Array, AsArray};

use super::{Extras, Question, run};
use crate::columns::{Batch, int, int_list, opt_int, text_test};
use crate::filters::Filters;
use crate::names::{CAP_SETS, CHANGE_COLUMNS, FAILED_COLUMNS, NS_COLUMN};
use crate::{CaptureInfo, QueryError};

/// A logical-change answer: the frame of the rows kept, and how many rows
/// the whole answer has.
pub(crate) type Rows = (DataFrame, usize);

/// `failed`: refused calls (see `questions::failed_expr`).
pub(crate) struct Failed;

impl Question for Failed {
    type Extra = ();

    fn columns(&self) -> Vec<&'static str> {
        vec![]
    }

    fn test_columns(&self) -> Vec<&'static str> {
        vec![
            "ret",
            "arg0",
            "syscall",
            "new_fsuid",
            "new_fsgid",
            "new_ns_fsuid",
            "new_ns_fsgid",
            NS_COLUMN,
        ]
    }

    fn prepare<'b>(&'b self, b: &'b Batch<'_>) -> Result<Extras<'b, ()>, QueryError> {
        let ret = b.need_ints("ret")?;
        let arg0 = b.need_ints("arg0")?;
        let fsuid = text_test(b, "syscall", |s| s == Syscall::Setfsuid.name());
        let fsgid = text_test(b, "syscall", |s| s == Syscall::Setfsgid.name());
        let namespaces = b.ints(NS_COLUMN).is_some();
        let id = |name: &'static str, ns: &'static str| {
            let (host, ns) = (b.ints(name), b.ints(ns).filter(|_| namespaces));
            move |i: usize| opt_int(ns, i).or_else(|| opt_int(host, i))
        };
        let (uid, gid) = (
            id("new_fsuid", "new_ns_fsuid"),
            id("new_fsgid", "new_ns_fsgid"),
        );
        Ok(Box::new(move |i| {
            let arg = int(arg0, i);
            let refused_fs = arg.is_some_and(|a| a != -1)
                && ((fsuid[i] && uid(i).zip(arg).is_some_and(|(u, a)| u != a))
                    || (fsgid[i] && gid(i).zip(arg).is_some_and(|(g, a)| g != a)));
            (int(ret, i).is_some_and(|r| r < 0) || refused_fs).then_some(())
        }))
    }
}

pub(crate) fn failed(
    caps: &[CaptureInfo],
    f: &Filters,
    limit: Option<usize>,
) -> Result<Rows, QueryError> {
    let a = run(caps, f, &Failed, limit)?;
    let df = a.frame(&FAILED_COLUMNS, vec![])?;
    Ok((df, a.total))
}

/// `caps`: any capability set changed; keeps the five sets before and
/// after (int64, bit for bit).
struct Caps;

/// `old_cap_SET`, `new_cap_SET` for each set, made once (a question's
/// columns are `'static` names).
fn cap_columns() -> Vec<&'static str> {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        CAP_SETS
            .iter()
            .flat_map(|s| [format!("old_cap_{s}"), format!("new_cap_{s}")])
            .map(|n| &*Box::leak(n.into_boxed_str()))
            .collect()
    });
    NAMES.clone()
}

impl Question for Caps {
    type Extra = [Option<i64>; 10];

    fn columns(&self) -> Vec<&'static str> {
        cap_columns()
    }

    fn test_columns(&self) -> Vec<&'static str> {
        cap_columns()
    }

    fn prepare<'b>(&'b self, b: &'b Batch<'_>) -> Result<Extras<'b, Self::Extra>, QueryError> {
        let cols = cap_columns()
            .into_iter()
            .map(|n| b.need_ints(n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(move |i| {
            let v: [Option<i64>; 10] = std::array::from_fn(|c| int(cols[c], i));
            let changed =
                (0..5).any(|s| matches!((v[2 * s], v[2 * s + 1]), (Some(a), Some(b)) if a != b));
            changed.then_some(v)
        }))
    }
}

pub(crate) fn caps(
    caps: &[CaptureInfo],
    f: &Filters,
    limit: Option<usize>,
) -> Result<Rows, QueryError> {
    let a = run(caps, f, &Caps, limit)?;
    let masks = cap_columns()
        .into_iter()
        .enumerate()
        .map(|(c, name)| {
            Column::new(
                name.into(),
                a.rows.iter().map(|r| r.extra[c]).collect::<Vec<_>>(),
            )
        })
        .collect();
    let df = a.frame(&CHANGE_COLUMNS, masks)?;
    Ok((df, a.total))
}

/// `groups`: the supplementary groups changed.
struct Groups;

/// The groups before and after.
type Lists = (Vec<i64>, Vec<i64>);

impl Question for Groups {
    type Extra = Lists;

    fn columns(&self) -> Vec<&'static str> {
        vec!["old_groups", "new_groups"]
    }

    fn test_columns(&self) -> Vec<&'static str> {
        self.columns()
    }

    fn prepare<'b>(&'b self, b: &'b Batch<'_>) -> Result<Extras<'b, Self::Extra>, QueryError> {
        let (old, new) = (b.list("old_groups"), b.list("new_groups"));
        // The lists' values, compared in place: a list per row made is
        // most of the time over millions of rows.
        fn flat(l: Option<&arrow::array::ListArray>) -> Option<&arrow::array::Int64Array> {
            l.and_then(|l| l.values().as_primitive_opt::<arrow::datatypes::Int64Type>())
        }
        let (old_values, new_values) = (flat(old), flat(new));
        Ok(Box::new(move |i| {
            let (Some(o), Some(n), Some(ov), Some(nv)) = (old, new, old_values, new_values) else {
                return None;
            };
            if o.is_null(i) || n.is_null(i) {
                return None;
            }
            let range = |l: &arrow::array::ListArray| {
                let offs = l.value_offsets();
                (offs[i] as usize, offs[i + 1] as usize)
            };
            let ((oa, ob), (na, nb)) = (range(o), range(n));
            let same = ob - oa == nb - na
                && (0..ob - oa).all(|k| {
                    ov.is_null(oa + k) == nv.is_null(na + k) && ov.value(oa + k) == nv.value(na + k)
                });
            (!same).then(|| (int_list(old, i), int_list(new, i)))
        }))
    }
}

pub(crate) fn groups(
    caps: &[CaptureInfo],
    f: &Filters,
    limit: Option<usize>,
) -> Result<Rows, QueryError> {
    let a = run(caps, f, &Groups, limit)?;
    let list = |name: &str, pick: &dyn Fn(&Lists) -> &Vec<i64>| -> Result<Column, QueryError> {
        let series: Vec<Series> = a
            .rows
            .iter()
            .map(|r| Series::new("".into(), pick(&r.extra).clone()))
            .collect();
        let s =
            Series::new(name.into(), series).cast(&DataType::List(Box::new(DataType::Int64)))?;
        Ok(s.into())
    };
    let more = vec![
        list("old_groups", &|e| &e.0)?,
        list("new_groups", &|e| &e.1)?,
    ];
    let df = a.frame(&CHANGE_COLUMNS, more)?;
    Ok((df, a.total))
}

/// `became-root`: the euid or fsuid became 0, on the host or as a user
/// namespace shows it (see `questions::became_root`).
struct BecameRoot {
    namespaces: HashMap<(String, u32), UsernsRow>,
}

/// What a root change keeps: scope, old/new euid, the namespace's euid,
/// old/new fsuid.
type RootExtra = (&'static str, i64, i64, Option<u32>, i64, i64);

impl Question for BecameRoot {
    type Extra = RootExtra;

    fn columns(&self) -> Vec<&'static str> {
        vec![
            "old_euid",
            "new_euid",
            "old_fsuid",
            "new_fsuid",
            "old_userns",
            "new_userns",
            "old_userns_level",
            "new_userns_level",
        ]
    }

    fn test_columns(&self) -> Vec<&'static str> {
        self.columns()
    }

    fn prepare<'b>(&'b self, b: &'b Batch<'_>) -> Result<Extras<'b, RootExtra>, QueryError> {
        let get = |n: &str| b.need_ints(n);
        let (old_euid, new_euid) = (get("old_euid")?, get("new_euid")?);
        let (old_fsuid, new_fsuid) = (get("old_fsuid")?, get("new_fsuid")?);
        let namespaces = b.ints(NS_COLUMN).is_some();
        let ns = |n: &str| b.ints(n).filter(|_| namespaces);
        let (old_ns, new_ns) = (ns("old_userns"), ns("new_userns"));
        let (old_level, new_level) = (ns("old_userns_level"), ns("new_userns_level"));
        let capture = b.info.name.clone();
        Ok(Box::new(move |i| {
            let host = |o: &arrow::array::Int64Array, n: &arrow::array::Int64Array| {
                int(n, i) == Some(0) && int(o, i).is_some_and(|o| o != 0)
            };
            let candidate = host(old_euid, new_euid)
                || host(old_fsuid, new_fsuid)
                || opt_int(new_level, i).is_some_and(|l| l > 0);
            if !candidate {
                return None;
            }
            let u32_of = |a: Option<&arrow::array::Int64Array>| opt_int(a, i).map(|v| v as u32);
            let creds = |euid: Option<i64>, fsuid: Option<i64>, ns, level| Creds {
                euid: euid.unwrap_or(0) as u32,
                fsuid: fsuid.unwrap_or(0) as u32,
                userns: ns,
                userns_level: level,
                ..Creds::default()
            };
            let old = creds(
                int(old_euid, i),
                int(old_fsuid, i),
                u32_of(old_ns),
                u32_of(old_level),
            );
            let new = creds(
                int(new_euid, i),
                int(new_fsuid, i),
                u32_of(new_ns),
                u32_of(new_level),
            );
            let map = |inum: Option<u32>| self.namespaces.get(&(capture.clone(), inum?));
            let (old_map, new_map) = (map(old.userns), map(new.userns));
            let scope = root_scope(&old, &new, old_map, new_map)?;
            Some((
                scope,
                int(old_euid, i).unwrap_or(0),
                int(new_euid, i).unwrap_or(0),
                NsIds::of(&new, new_map).euid,
                int(old_fsuid, i).unwrap_or(0),
                int(new_fsuid, i).unwrap_or(0),
            ))
        }))
    }
}

pub(crate) fn became_root(
    caps: &[CaptureInfo],
    f: &Filters,
    limit: Option<usize>,
    namespaces: HashMap<(String, u32), UsernsRow>,
) -> Result<Rows, QueryError> {
    let a = run(caps, f, &BecameRoot { namespaces }, limit)?;
    let rows = &a.rows;
    let i64s = |name: &str, f: &dyn Fn(&RootExtra) -> i64| {
        Column::new(
            name.into(),
            rows.iter().map(|r| f(&r.extra)).collect::<Vec<_>>(),
        )
    };
    let head = a.frame(
        &[
            "time",
            "node_name",
            "pod",
            "pid",
            "binary",
            "arguments",
            "parent_binary",
            "syscall",
            "arg0",
            "arg1",
            "arg2",
        ],
        vec![
            Column::new(
                "scope".into(),
                rows.iter().map(|r| r.extra.0).collect::<Vec<_>>(),
            ),
            i64s("old_euid", &|e| e.1),
            i64s("new_euid", &|e| e.2),
            Column::new(
                "ns_euid".into(),
                rows.iter().map(|r| r.extra.3).collect::<Vec<_>>(),
            ),
            i64s("old_fsuid", &|e| e.4),
            i64s("new_fsuid", &|e| e.5),
        ],
    )?;
    let tail = a.frame(&["threads", "calls", "capture", "exec_id"], vec![])?;
    Ok((head.hstack(tail.columns())?, a.total))
}
