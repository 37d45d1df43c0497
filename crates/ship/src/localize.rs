//! Capture arguments as readers take them: local folders as given, `s3://`
//! ones fetched (pruned) into a private temporary folder that lives as long
//! as the answer that reads it.

use std::path::{Path, PathBuf};

use crate::ShipError;
use crate::fetch::{Prune, fetch};
use crate::store::Remote;

/// Objects' keys named in a note at most.
const KEYS_NAMED: usize = 5;

/// Capture arguments with the remote ones (`s3://…`) fetched into a
/// private temporary folder, removed when this is dropped.
#[derive(Debug)]
pub struct Localized {
    /// Local paths: the arguments as given, or the fetched captures.
    pub paths: Vec<PathBuf>,
    /// Each fetched capture's folder and URL, to name it in answers.
    pub urls: Vec<(PathBuf, String)>,
    /// One line per remote argument: what was read and what was pruned.
    pub notes: Vec<String>,
    /// Per fetched capture folder: what was not fetched (`--verify`
    /// reports them as problems).
    pub problems: Vec<(PathBuf, String)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Localized {
    /// The URL a fetched capture folder came from.
    pub fn url_of(&self, dir: &Path) -> Option<&str> {
        self.urls
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, u)| u.as_str())
    }

    /// `text` with fetched folders named by their URLs.
    pub fn rename(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for (d, u) in &self.urls {
            t = t.replace(&d.display().to_string(), u);
        }
        t
    }
}

/// Fetches every `s3://` argument (see [`fetch`]); others are kept as they are.
pub fn localize(
    args: &[PathBuf],
    endpoint: Option<&str>,
    prune: &Prune,
) -> Result<Localized, ShipError> {
    let mut out = Localized {
        paths: Vec::new(),
        urls: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
        _tmp: None,
    };
    for (i, arg) in args.iter().enumerate() {
        let Some(url) = arg.to_str().filter(|a| crate::store::is_remote(a)) else {
            out.paths.push(arg.clone());
            continue;
        };
        let remote = Remote::open(url, endpoint)?;
        if out._tmp.is_none() {
            out._tmp = Some(
                tempfile::Builder::new()
                    .prefix("credtrail-fetch-")
                    .tempdir()
                    .map_err(|e| ShipError::Url {
                        url: url.to_owned(),
                        message: format!("cannot make a temporary folder to fetch into: {e}"),
                    })?,
            );
        }
        let dest = out
            ._tmp
            .as_ref()
            .expect("made above")
            .path()
            .join(i.to_string());
        let (fetched, stats) = fetch(&remote, &dest, prune)?;
        if fetched.is_empty() {
            return Err(ShipError::Url {
                url: url.to_owned(),
                message: format!(
                    "no credtrail capture there ({} objects listed, {} captures left out by --node/--since/--until)",
                    stats.objects_listed, stats.pruned
                ),
            });
        }
        out.notes.push(format!(
            "{url}: read {} captures ({} objects, {} bytes); {} left out by --node/--since/--until without reading their segments",
            stats.captures, stats.objects_fetched, stats.bytes, stats.pruned
        ));
        if !stats.skipped_keys.is_empty() {
            let named: Vec<String> = stats
                .skipped_keys
                .iter()
                .take(KEYS_NAMED)
                .map(|k| format!("{:?}", credtrail_cli::term::safe(k)))
                .collect();
            out.notes.push(format!(
                "{url}: passed over {} object(s) whose keys the fleet layout does not allow: {}{}",
                stats.skipped_keys.len(),
                named.join(", "),
                if stats.skipped_keys.len() > KEYS_NAMED {
                    ", …"
                } else {
                    ""
                }
            ));
        }
        for f in fetched {
            out.paths.push(f.dir.clone());
            out.problems
                .extend(f.problems.iter().map(|p| (f.dir.clone(), p.clone())));
            out.urls.push((f.dir, f.url));
        }
    }
    Ok(out)
}
