//! Directories of YAML files (MetricAccess manifests, rule files), as
//! Kubernetes mounts them from a ConfigMap: the `*.yaml` / `*.yml` files,
//! sorted, hidden entries (the `..data` links) skipped; each file a stream
//! of documents.

use std::path::{Path, PathBuf};

/// The YAML files of a directory, sorted; hidden entries (Kubernetes'
/// `..data` links) skipped.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The documents of a YAML stream as `T`, empty ones left out. Errors
/// name the field path and line (`groups[0].rules[1]: unknown field ...`)
/// and never stop the documents after them, except a syntax error, which
/// ends the stream: the parser cannot resync after one, and its document
/// iterator repeats it forever. An alias to an anchor that does not exist,
/// and a document the parser panics on (see `guarded()`), end it too.
pub fn documents<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Vec<Result<T, serde_yaml_ng::Error>> {
    let mut docs = Vec::new();
    let mut last_error = String::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let parsed =
            guarded(|| <Option<T> as serde::Deserialize>::deserialize(doc)).unwrap_or_else(Err);
        match parsed {
            Ok(None) => {}
            Ok(Some(v)) => docs.push(Ok(v)),
            Err(e) => {
                let shown = e.to_string();
                if shown == last_error {
                    break;
                }
                // The loader cannot go on after an alias to no anchor
                // (serde_yaml_ng yields a phantom document it panics on).
                let ends = shown.starts_with(PARSER_PANIC) || shown.starts_with("unknown anchor");
                last_error = shown;
                docs.push(Err(e));
                if ends {
                    break;
                }
            }
        }
    }
    docs
}

/// `serde_yaml_ng::from_str`, guarded like `documents()`.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_yaml_ng::Error> {
    guarded(|| serde_yaml_ng::from_str(text)).unwrap_or_else(Err)
}

const PARSER_PANIC: &str = "the YAML parser failed";

/// Run a YAML parse that may panic. serde_yaml_ng 0.10 panics ("unexpected
/// end of sequence") on some malformed input, such as an alias to an
/// anchor that does not exist (`c: *h`), found by the `metricaccess` fuzz
/// target. Manifests, rule files and ruler answers come from other people:
/// such a file must be a named problem, not a crashed start or a reload
/// task gone. The panic is caught here; the default hook still prints its
/// one line to stderr.
fn guarded<T>(
    parse: impl FnOnce() -> Result<T, serde_yaml_ng::Error>,
) -> Result<Result<T, serde_yaml_ng::Error>, serde_yaml_ng::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).map_err(|_| {
        <serde_yaml_ng::Error as serde::de::Error>::custom(format!(
            "{PARSER_PANIC} on this document (an alias to an anchor that is not defined?)"
        ))
    })
}

/// A document of a file with the name problems give it: the path, or
/// `path (document n)` when the file holds several.
pub type Labelled<T> = (String, Result<T, serde_yaml_ng::Error>);

/// The largest manifest or rule file read.
const YAML_FILE_LIMIT: u64 = 16 << 20;

/// Read a file's documents, each labelled; `Err` names the file that
/// cannot be read and why.
pub fn read_documents<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<Labelled<T>>, crate::config::FileError> {
    let shown = path.display().to_string();
    // Bounded and regular files only: a FIFO or a huge file in a team's
    // directory must not hold a sync pass or the reload loop.
    let text = crate::config::read_bounded(path, YAML_FILE_LIMIT)?;
    let docs = documents::<T>(&text);
    let many = docs.len() > 1;
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(n, d)| {
            let label = if many {
                format!("{shown} (document {})", n + 1)
            } else {
                shown.clone()
            };
            (label, d)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_to_no_anchor_is_a_problem_not_a_panic() {
        // Found by the metricaccess fuzz target: serde_yaml_ng panics here.
        for text in ["c: *h", "a: 1\n---\nc: *h\n---\nb: 2\n", "- *x\n"] {
            let docs = documents::<serde_yaml_ng::Value>(text);
            let last = docs.last().expect("a result").as_ref();
            assert!(
                last.unwrap_err().to_string().contains("unknown anchor"),
                "{text:?}: {docs:?}"
            );
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            c: Option<String>,
        }
        assert!(from_str::<Doc>("c: *h").is_err());
        assert!(documents::<Doc>("c: *h")[0].is_err());
        // The documents before it still load.
        let docs = documents::<serde_yaml_ng::Value>("a: 1\n---\nc: *h\n");
        assert!(docs[0].is_ok());
        // A parse that panics anyway is an error.
        let caught = guarded::<()>(|| panic!("unexpected end of sequence"));
        assert!(caught.unwrap_err().to_string().starts_with(PARSER_PANIC));
    }

    #[test]
    fn parser_panics_at_the_end_of_a_sequence_or_mapping_are_problems() {
        // Found by the metricaccess (in CI) and rule_files fuzz targets:
        // serde_yaml_ng 0.10 panics with "unexpected end of sequence" and
        // "unexpected end of mapping" after an alias in these streams.
        for (name, bytes) in [
            (
                "metricaccess",
                &include_bytes!(
                    "../fuzz/corpus/metricaccess/crash-494549da3dd285e4376daa4e217657df987a9829"
                )[..],
            ),
            (
                "rule_files",
                &include_bytes!(
                    "../fuzz/corpus/rule_files/crash-468784ca88ebe5305691370ecfa7bbd7d81576f2"
                )[..],
            ),
        ] {
            let text = String::from_utf8_lossy(bytes);
            let docs = documents::<serde_yaml_ng::Value>(&text);
            let last = docs.last().expect("a result").as_ref();
            assert!(last.is_err(), "{name}: {docs:?}");
            let typed =
                documents::<std::collections::BTreeMap<String, serde_yaml_ng::Value>>(&text);
            assert!(typed.iter().any(|d| d.is_err()), "{name}: {typed:?}");
            let shown = last.unwrap_err().to_string();
            assert!(
                shown.starts_with(PARSER_PANIC) || shown.starts_with("unknown anchor"),
                "{name}: {shown}"
            );
        }
    }

    #[test]
    fn documents_skip_empty_ones_and_stop_only_at_a_syntax_error() {
        type Map = std::collections::BTreeMap<String, u32>;
        let docs = documents::<Map>("a: 1\n---\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().all(|d| d.is_ok()));
        // A type error names its place and the next document still loads.
        let docs = documents::<Map>("a: x\n---\nb: 2\n");
        assert!(docs[0].as_ref().unwrap_err().to_string().contains("line 1"));
        assert_eq!(docs[1].as_ref().unwrap()["b"], 2);
        // The unclosed flow sequence: a type error for its document, then
        // the syntax error once, then the end.
        let docs = documents::<Map>("a: 1\n---\nb: [\n---\nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("did not find expected node content"));
    }

    #[test]
    fn yaml_files_are_sorted_and_skip_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", ".hidden.yaml", "c.txt"] {
            std::fs::write(dir.path().join(name), "x: 1\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        let names: Vec<String> = yaml_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
    }
}
