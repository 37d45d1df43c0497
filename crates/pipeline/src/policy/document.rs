//! A Tetragon `TracingPolicy` / `TracingPolicyNamespaced` as written in
//! YAML (`cilium.io/v1alpha1`), field for field, with the position of
//! every value an error may need to point at.
//!
//! Every field Tetragon defines is accepted here, so that a policy written
//! for Tetragon reads; [`super::compile`] then refuses, by name and line,
//! whatever credtrail cannot honour. A field Tetragon does not define is a
//! typo, refused by the YAML reader itself.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

/// Present in the YAML; its value is not used.
pub(super) type Any = Option<Spanned<IgnoredAny>>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Document {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Metadata {
    pub name: Spanned<String>,
    pub namespace: Option<Spanned<String>>,
    // Kubernetes object metadata (labels, annotations, uid, ...): not ours.
    #[serde(flatten)]
    pub _rest: std::collections::BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Spec {
    #[serde(default)]
    pub kprobes: Vec<Kprobe>,
    pub pod_selector: Option<Spanned<LabelSelector>>,
    pub container_selector: Any,
    pub tracepoints: Any,
    pub uprobes: Any,
    pub lsmhooks: Any,
    pub usdts: Any,
    pub lists: Any,
    pub enforcers: Any,
    pub loader: Any,
    pub options: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LabelSelector {
    #[serde(default)]
    pub match_labels: std::collections::BTreeMap<String, String>,
    pub match_expressions: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Kprobe {
    pub call: Spanned<String>,
    #[serde(default)]
    pub syscall: bool,
    #[serde(default, rename = "return")]
    pub return_: bool,
    #[serde(default)]
    pub args: Vec<Arg>,
    pub return_arg: Option<Arg>,
    pub return_arg_action: Any,
    #[serde(default)]
    pub selectors: Vec<Selector>,
    pub message: Option<String>,
    pub tags: Any,
    pub data: Any,
    pub ignore: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Arg {
    pub index: Spanned<u32>,
    #[serde(rename = "type")]
    pub type_: Option<Spanned<String>>,
    pub size_arg_index: Any,
    pub return_copy: Any,
    pub max_data: Any,
    pub label: Any,
    pub resolve: Any,
    pub btf_type: Any,
    pub source: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Selector {
    #[serde(rename = "matchPIDs")]
    pub match_pids: Option<Vec<PidSelector>>,
    pub match_args: Option<Vec<ArgSelector>>,
    pub match_return_args: Option<Vec<ArgSelector>>,
    pub match_namespaces: Option<Vec<NamespaceSelector>>,
    pub match_capabilities: Option<Vec<CapSelector>>,
    pub match_capability_changes: Option<Vec<CapSelector>>,
    pub match_binaries: Option<Vec<BinarySelector>>,
    pub match_parent_binaries: Any,
    pub match_namespace_changes: Any,
    pub match_data: Any,
    pub match_actions: Option<Vec<Action>>,
    pub match_return_actions: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PidSelector {
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<Scalar>>,
    #[serde(default, rename = "isNamespacePID")]
    pub is_namespace_pid: bool,
    pub follow_forks: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct BinarySelector {
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<Scalar>>,
    pub follow_children: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ArgSelector {
    pub index: Spanned<u32>,
    pub operator: Spanned<String>,
    #[serde(default)]
    pub values: Vec<Spanned<Scalar>>,
    pub args: Any,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NamespaceSelector {
    pub namespace: Spanned<String>,
    pub operator: Spanned<String>,
    pub values: Vec<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CapSelector {
    #[serde(rename = "type")]
    pub type_: Spanned<String>,
    pub operator: Spanned<String>,
    #[serde(default)]
    pub is_namespace_capability: bool,
    pub values: Vec<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Action {
    pub action: Spanned<String>,
    pub rate_limit: Option<Spanned<Scalar>>,
    pub rate_limit_scope: Option<Spanned<String>>,
    pub arg_error: Any,
    pub arg_sig: Any,
    pub arg_fd: Any,
    pub arg_name: Any,
    pub arg_url: Any,
    pub arg_fqdn: Any,
    pub arg_sock: Any,
    pub kernel_stack_trace: Any,
    pub user_stack_trace: Any,
    pub ima_hash: Any,
}

/// A YAML scalar Tetragon reads as a string whether or not it is quoted
/// (`values: [0]` and `values: ["0"]` mean the same).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Str(String),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Int(v) => v.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}
