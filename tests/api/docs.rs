//! The examples of `sdk-docs/` run as written: every example's files are
//! written into a fresh app, and every request shown is sent and its answer
//! compared with the one shown.
//!
//! Format (see the guides): an example starts at `<!-- example: NAME -->`;
//! a fenced block whose info string names a file (`toml file=plugin-manifests/x.toml`,
//! `rhai file=scripts/x/y.rhai`) is written there; a block ```` ```http ````
//! holds `METHOD /path` and an optional JSON body, and the next
//! ```` ```json expect=STATUS ```` block is the answer expected: an object or
//! array whose every key must be in the answer with an equal value (`"*"`
//! matches anything). `$prev.field` in a request is the previous answer's
//! field. Requests are sent as the bootstrap SUPER_ADMIN of tenant `default`.
//!
//! A file block after the first request is a live edit: the app of that
//! example watches its folders, the file is written while it runs, and the
//! next request is repeated (up to 10 s) until its answer is the one shown.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// One request of an example and the answer it documents.
struct Exchange {
    method: Method,
    path: String,
    body: Option<String>,
    status: u16,
    expected: Option<Value>,
    /// Files to write (live) just before this request, which is then
    /// repeated until it answers as shown.
    edits: Vec<(String, String)>,
}

/// One example: its files and exchanges.
struct Example {
    name: String,
    files: Vec<(String, String)>,
    exchanges: Vec<Exchange>,
}

fn parse(doc: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut lines = doc.lines();
    let mut pending: Option<(Method, String, Option<String>)> = None;
    let mut edits: Vec<(String, String)> = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("<!-- example: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            examples.push(Example {
                name: name.to_owned(),
                files: Vec::new(),
                exchanges: Vec::new(),
            });
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        if info.is_empty() {
            continue;
        }
        let mut block = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            block.push(l);
        }
        let Some(example) = examples.last_mut() else {
            continue;
        };
        let text = block.join("\n") + "\n";
        let words: Vec<&str> = info.split_whitespace().collect();
        if let Some(file) = words.iter().find_map(|w| w.strip_prefix("file=")) {
            if example.exchanges.is_empty() {
                example.files.push((file.to_owned(), text));
            } else {
                edits.push((file.to_owned(), text));
            }
        } else if words.first() == Some(&"http") {
            let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
            let (method, path) = first.split_once(' ').expect("METHOD /path");
            let body = Some(rest.trim().to_owned()).filter(|b| !b.is_empty());
            pending = Some((
                Method::from_bytes(method.as_bytes()).expect("method"),
                path.trim().to_owned(),
                body,
            ));
        } else if let Some(status) = words.iter().find_map(|w| w.strip_prefix("expect=")) {
            let (method, path, body) = pending
                .take()
                .unwrap_or_else(|| panic!("{}: expect block without a request", example.name));
            let expected = Some(text.trim())
                .filter(|t| !t.is_empty())
                .map(|t| serde_json::from_str(t).unwrap_or_else(|e| panic!("{t}: {e}")));
            example.exchanges.push(Exchange {
                method,
                path,
                body,
                status: status.parse().expect("status"),
                expected,
                edits: std::mem::take(&mut edits),
            });
        }
    }
    examples
}

/// Whether `actual` holds everything `expected` shows.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == "*" => true,
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y))
        }
        (e, a) => e == a,
    }
}

fn substitute(text: &str, previous: &Value) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("$prev.") {
        let rest = &out[start + 6..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let field = &rest[..end];
        let value = previous[field]
            .as_str()
            .map_or_else(|| previous[field].to_string(), str::to_owned);
        out = format!("{}{}{}", &out[..start], value, &rest[end..]);
    }
    out
}

async fn run_doc(doc: &str, source: &str) {
    let examples = parse(doc);
    assert!(!examples.is_empty(), "{source} has examples");
    for example in examples {
        assert!(
            !example.exchanges.is_empty(),
            "{source}: example {} shows requests",
            example.name
        );
        let files = example.files.clone();
        let live = example.exchanges.iter().any(|x| !x.edits.is_empty());
        let app = spawn_app_with(move |config| {
            config.watch = live;
            for (file, text) in &files {
                write_example_file(config, file, text);
            }
        })
        .await;
        let mut previous = Value::Null;
        for x in &example.exchanges {
            for (file, text) in &x.edits {
                write_example_file(&app.config, file, text);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let path = substitute(&x.path, &previous);
            loop {
                let mut rb = app.request(x.method.clone(), &path, Some(&app.root_token));
                if let Some(body) = &x.body {
                    rb = rb
                        .header("content-type", "application/json")
                        .body(substitute(body, &previous));
                }
                let (status, answer) = split(rb.send().await.expect("sent")).await;
                let as_shown = status == StatusCode::from_u16(x.status).expect("status")
                    && x.expected.as_ref().is_none_or(|e| matches(e, &answer));
                if !as_shown && !x.edits.is_empty() && std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(
                    status,
                    StatusCode::from_u16(x.status).expect("status"),
                    "{source}: example {}: {} {path}: {answer}",
                    example.name,
                    x.method
                );
                if let Some(expected) = &x.expected {
                    assert!(
                        matches(expected, &answer),
                        "{source}: example {}: {} {path}:\nexpected {expected}\nanswer   {answer}",
                        example.name,
                        x.method
                    );
                }
                previous = answer;
                break;
            }
        }
        app.stop().await;
    }
}

/// Write an example file into the app's manifests or scripts folder.
fn write_example_file(config: &plinth::config::Config, file: &str, text: &str) {
    let target = if let Some(rest) = file.strip_prefix("plugin-manifests/") {
        config.manifests_dir.join(rest)
    } else if let Some(rest) = file.strip_prefix("scripts/") {
        config.scripts_dir.join(rest)
    } else {
        panic!("example file {file} is neither a manifest nor a script")
    };
    std::fs::create_dir_all(target.parent().unwrap_or(Path::new("."))).expect("dir");
    std::fs::write(&target, text).expect("write example file");
}

#[tokio::test]
async fn the_hot_reload_guide_examples_run_as_written() {
    run_doc(
        include_str!("../../sdk-docs/hot-reload.md"),
        "sdk-docs/hot-reload.md",
    )
    .await;
}

#[tokio::test]
async fn the_scripting_guide_examples_run_as_written() {
    run_doc(
        include_str!("../../sdk-docs/scripting-guide.md"),
        "sdk-docs/scripting-guide.md",
    )
    .await;
}

#[tokio::test]
async fn the_host_api_reference_examples_run_as_written() {
    run_doc(
        include_str!("../../sdk-docs/host-api-reference.md"),
        "sdk-docs/host-api-reference.md",
    )
    .await;
}

#[test]
fn the_doc_matcher_can_fail() {
    let e = serde_json::json!({"a": 1, "b": "*", "c": [1, {"d": 2}]});
    assert!(matches(
        &e,
        &serde_json::json!({"a": 1, "b": [9], "c": [1, {"d": 2, "x": 0}], "z": 0})
    ));
    assert!(!matches(
        &e,
        &serde_json::json!({"a": 2, "b": 1, "c": [1, {"d": 2}]})
    ));
    assert!(!matches(
        &e,
        &serde_json::json!({"a": 1, "c": [1, {"d": 2}]})
    ));
    assert!(!matches(&e, &serde_json::json!({"a": 1, "b": 1, "c": [1]})));
}
