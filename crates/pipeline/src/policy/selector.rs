//! One selector of a kprobe, checked and compiled: its conditions, its
//! binaries and its action (the rest of the policy is `compile.rs`).

use super::compile::{Compiler, int_value, negate_of, rate_limit_ns};
use super::document;
use super::{
    ArgMatch, ArgOp, BinaryMatch, BinaryOp, CapMatch, CapSet, NsValue, PidMatch, PolicyError,
    RETURN_INDEX, RateScope, Selector, Set, limits,
};
use serde_saphyr::{Location, Spanned};

use credtrail_capture::model::creds::cap_bit;

impl Compiler<'_> {
    /// A condition's values, each read by `parse` (the first it refuses is
    /// an error at its own position: `"x" {what}`), at most
    /// `limits::VALUES` of them.
    fn values<T>(
        &self,
        operator: &Location,
        field: &str,
        values: &[Spanned<document::Scalar>],
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, PolicyError> {
        let field = format!("{field}.values");
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let t = v.value.text();
            match parse(&t) {
                Some(x) => out.push(x),
                None => return Err(self.error(&v.referenced, &field, format!("{t:?} {what}"))),
            }
        }
        self.check_len(operator, &field, &out, limits::VALUES)?;
        Ok(out)
    }

    pub(super) fn selector(
        &mut self,
        path: &str,
        mut s: Selector,
        sel: document::Selector,
    ) -> Result<Selector, PolicyError> {
        for (field, v) in [
            ("matchParentBinaries", &sel.match_parent_binaries),
            ("matchNamespaceChanges", &sel.match_namespace_changes),
            ("matchData", &sel.match_data),
            ("matchReturnActions", &sel.match_return_actions),
        ] {
            if let Some(v) = v {
                self.unsupported(
                    &v.referenced,
                    &format!("{path}.{field}"),
                    "not supported by credtrail".into(),
                )?;
            }
        }
        self.binaries(path, &mut s, sel.match_binaries.unwrap_or_default())?;
        self.pids(path, &mut s, sel.match_pids.unwrap_or_default())?;
        self.namespaces(path, &mut s, sel.match_namespaces.unwrap_or_default())?;
        let args = sel.match_args.unwrap_or_default();
        self.args(path, &mut s, "matchArgs", args, false)?;
        let ret = sel.match_return_args.unwrap_or_default();
        self.args(path, &mut s, "matchReturnArgs", ret, true)?;
        let caps = sel.match_capabilities.unwrap_or_default();
        self.caps(path, &mut s, "matchCapabilities", caps, false)?;
        let changes = sel.match_capability_changes.unwrap_or_default();
        self.caps(path, &mut s, "matchCapabilityChanges", changes, true)?;
        self.actions(path, &mut s, sel.match_actions.unwrap_or_default())?;
        Ok(s)
    }

    /// `matchBinaries`: the binary (or an ancestor, `followChildren`) by path.
    fn binaries(
        &mut self,
        path: &str,
        s: &mut Selector,
        list: Vec<document::BinarySelector>,
    ) -> Result<(), PolicyError> {
        for (i, b) in list.into_iter().enumerate() {
            let field = format!("{path}.matchBinaries[{i}]");
            let (op, negate) = match b.operator.value.as_str() {
                "In" => (BinaryOp::In, false),
                "NotIn" => (BinaryOp::In, true),
                "Prefix" => (BinaryOp::Prefix, false),
                "NotPrefix" => (BinaryOp::Prefix, true),
                "Postfix" => (BinaryOp::Postfix, false),
                "NotPostfix" => (BinaryOp::Postfix, true),
                other => {
                    let msg = format!(
                        "{other:?}: matchBinaries operators are In, NotIn, Prefix, NotPrefix, Postfix and NotPostfix"
                    );
                    self.unsupported(&b.operator.referenced, &format!("{field}.operator"), msg)?;
                    continue;
                }
            };
            let values: Vec<String> = b.values.iter().map(|v| v.value.text()).collect();
            if values.is_empty() {
                return Err(self.error(
                    &b.operator.referenced,
                    &format!("{field}.values"),
                    "no values".into(),
                ));
            }
            s.binaries.push(BinaryMatch {
                op,
                negate,
                follow_children: b.follow_children.is_some_and(|f| f.value),
                values,
                lineage_bit: None,
            });
        }
        Ok(())
    }

    /// `matchPIDs`: one entry per selector.
    fn pids(
        &mut self,
        path: &str,
        s: &mut Selector,
        list: Vec<document::PidSelector>,
    ) -> Result<(), PolicyError> {
        for (i, p) in list.into_iter().enumerate() {
            let field = format!("{path}.matchPIDs[{i}]");
            let Some(negate) = negate_of(&p.operator.value) else {
                self.unsupported(
                    &p.operator.referenced,
                    &format!("{field}.operator"),
                    format!(
                        "{:?}: matchPIDs operators are In and NotIn",
                        p.operator.value
                    ),
                )?;
                continue;
            };
            if s.pids.is_some() {
                let l = &p.operator.referenced;
                self.unsupported(l, &field, "one matchPIDs entry per selector".into())?;
                continue;
            }
            let values = self.values(
                &p.operator.referenced,
                &field,
                &p.values,
                "is not a pid",
                |t| t.parse::<u32>().ok(),
            )?;
            s.pids = Some(PidMatch {
                negate,
                namespace_pid: p.is_namespace_pid,
                follow_forks: p.follow_forks.is_some_and(|f| f.value),
                values,
                lineage_bit: None,
            });
        }
        Ok(())
    }

    /// `matchNamespaces`: the Pid and User namespaces, one entry each.
    fn namespaces(
        &mut self,
        path: &str,
        s: &mut Selector,
        list: Vec<document::NamespaceSelector>,
    ) -> Result<(), PolicyError> {
        for (i, n) in list.into_iter().enumerate() {
            let field = format!("{path}.matchNamespaces[{i}]");
            let slot = match n.namespace.value.as_str() {
                "Pid" => &mut s.pid_ns,
                "User" => &mut s.user_ns,
                other => {
                    let msg = format!(
                        "{other}: credtrail records the Pid and User namespaces of each event, not this one"
                    );
                    self.unsupported(&n.namespace.referenced, &format!("{field}.namespace"), msg)?;
                    continue;
                }
            };
            if slot.is_some() {
                let msg = format!("a second {} entry in one selector", n.namespace.value);
                self.unsupported(&n.namespace.referenced, &field, msg)?;
                continue;
            }
            let Some(negate) = negate_of(&n.operator.value) else {
                self.unsupported(
                    &n.operator.referenced,
                    &format!("{field}.operator"),
                    format!(
                        "{:?}: matchNamespaces operators are In and NotIn",
                        n.operator.value
                    ),
                )?;
                continue;
            };
            let values = self.values(
                &n.operator.referenced,
                &field,
                &n.values,
                "is neither host_ns nor a namespace inode number",
                |t| match t {
                    "host_ns" => Some(NsValue::Host),
                    _ => t.parse::<u32>().ok().map(NsValue::Inode),
                },
            )?;
            *slot = Some(Set { negate, values });
        }
        Ok(())
    }

    /// `matchArgs` (`ret` false) or `matchReturnArgs`: integer conditions on arg0..arg2 or the return value.
    fn args(
        &mut self,
        path: &str,
        s: &mut Selector,
        name: &str,
        list: Vec<document::ArgSelector>,
        ret: bool,
    ) -> Result<(), PolicyError> {
        for (i, a) in list.into_iter().enumerate() {
            let field = format!("{path}.{name}[{i}]");
            let index = if ret {
                if a.index.value != 0 {
                    return Err(self.error(
                        &a.index.referenced,
                        &format!("{field}.index"),
                        "a call has one return value: index 0".into(),
                    ));
                }
                RETURN_INDEX
            } else {
                if a.index.value >= RETURN_INDEX {
                    let msg = format!(
                        "argument {}: credtrail records a call's first three arguments (arg0..arg2)",
                        a.index.value
                    );
                    self.unsupported(&a.index.referenced, &format!("{field}.index"), msg)?;
                    continue;
                }
                a.index.value
            };
            let op = match a.operator.value.as_str() {
                "Equal" => ArgOp::Equal,
                "NotEqual" => ArgOp::NotEqual,
                "GT" | "GreaterThan" => ArgOp::GreaterThan,
                "LT" | "LessThan" => ArgOp::LessThan,
                "Mask" => ArgOp::Mask,
                other => {
                    let msg = format!(
                        "{other}: credtrail's arguments are integers; operators are Equal, NotEqual, GT, LT and Mask"
                    );
                    self.unsupported(&a.operator.referenced, &format!("{field}.operator"), msg)?;
                    continue;
                }
            };
            let values = self.values(
                &a.operator.referenced,
                &field,
                &a.values,
                "is not an integer",
                int_value,
            )?;
            if values.is_empty() {
                return Err(self.error(
                    &a.operator.referenced,
                    &format!("{field}.values"),
                    "no values".into(),
                ));
            }
            if s.args.len() == limits::ARGS {
                return Err(self.error(
                    &a.operator.referenced,
                    &field,
                    format!(
                        "more than {} matchArgs and matchReturnArgs entries in one selector",
                        limits::ARGS
                    ),
                ));
            }
            s.args.push(ArgMatch { index, op, values });
        }
        Ok(())
    }

    /// `matchCapabilities` (`change` false) or `matchCapabilityChanges`: a capability set before, or its change.
    fn caps(
        &mut self,
        path: &str,
        s: &mut Selector,
        name: &str,
        list: Vec<document::CapSelector>,
        change: bool,
    ) -> Result<(), PolicyError> {
        for (i, c) in list.into_iter().enumerate() {
            let field = format!("{path}.{name}[{i}]");
            let set = match c.type_.value.as_str() {
                "Effective" => CapSet::Effective,
                "Permitted" => CapSet::Permitted,
                "Inheritable" => CapSet::Inheritable,
                other => {
                    return Err(self.error(
                        &c.type_.referenced,
                        &format!("{field}.type"),
                        format!("{other:?}: types are Effective, Permitted and Inheritable"),
                    ));
                }
            };
            let Some(negate) = negate_of(&c.operator.value) else {
                self.unsupported(
                    &c.operator.referenced,
                    &format!("{field}.operator"),
                    format!(
                        "{:?}: capability operators are In and NotIn",
                        c.operator.value
                    ),
                )?;
                continue;
            };
            let mut mask = 0u64;
            for v in &c.values {
                let t = v.value.text();
                match cap_bit(&t) {
                    Some(b) => mask |= 1 << b,
                    None => {
                        return Err(self.error(
                            &v.referenced,
                            &format!("{field}.values"),
                            format!("{t:?} is not a capability name (CAP_SYS_ADMIN, ...)"),
                        ));
                    }
                }
            }
            if s.caps.len() == limits::CAPS {
                return Err(self.error(
                    &c.operator.referenced,
                    &field,
                    format!(
                        "more than {} capability entries in one selector",
                        limits::CAPS
                    ),
                ));
            }
            s.caps.push(CapMatch {
                set,
                negate,
                change,
                namespace_capability: c.is_namespace_capability,
                mask,
            });
        }
        Ok(())
    }

    /// `matchActions`: Post or NoPost, and a rate limit.
    fn actions(
        &mut self,
        path: &str,
        s: &mut Selector,
        actions: Vec<document::Action>,
    ) -> Result<(), PolicyError> {
        if actions.len() > 1 {
            let l = &actions[1].action.referenced;
            self.unsupported(
                l,
                &format!("{path}.matchActions[1]"),
                "one action per selector (Post or NoPost)".into(),
            )?;
        }
        if let Some(a) = actions.into_iter().next() {
            let field = format!("{path}.matchActions[0]");
            match a.action.value.as_str() {
                "Post" => {}
                "NoPost" => s.post = false,
                other => {
                    let msg = format!(
                        "{other} is not supported: credtrail records, it does not enforce (actions are Post and NoPost)"
                    );
                    // Ignored, the selector posts: record more, never less.
                    self.unsupported(&a.action.referenced, &format!("{field}.action"), msg)?;
                }
            }
            if let Some(r) = &a.rate_limit {
                match rate_limit_ns(&r.value.text()) {
                    Some(ns) => s.rate_limit_ns = ns,
                    None => {
                        return Err(self.error(
                            &r.referenced,
                            &format!("{field}.rateLimit"),
                            format!(
                                "{:?}: a number of seconds, or with a unit: 30s, 1m, 1h",
                                r.value.text()
                            ),
                        ));
                    }
                }
            }
            if let Some(scope) = &a.rate_limit_scope {
                s.rate_scope = match scope.value.as_str() {
                    "thread" => RateScope::Thread,
                    "process" => RateScope::Process,
                    "global" => RateScope::Global,
                    other => {
                        return Err(self.error(
                            &scope.referenced,
                            &format!("{field}.rateLimitScope"),
                            format!("{other:?}: scopes are thread, process and global"),
                        ));
                    }
                };
            }
        }
        Ok(())
    }
}
