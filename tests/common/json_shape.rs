//! The shape of a JSON document, to pin `readckpt --json`'s schema against
//! tests/fixtures/readckpt-json.shape: every member path ("a.b" a member of
//! an object, "a[]" the items of an array) in order of first appearance,
//! with the JSON types seen there. Used by readckpt's unit tests (on a
//! sample image) and by tests/events.rs (on a real one).
#![allow(dead_code)]

use serde_json::Value;

/// The pinned shape of `readckpt --json --verify` on a valid image.
pub const READCKPT_SHAPE: &str = include_str!("../fixtures/readckpt-json.shape");

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path below `v`, in order of first appearance, with its types.
pub fn shape(v: &Value) -> Vec<(String, Vec<&'static str>)> {
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, Vec<&'static str>)>) {
        if !path.is_empty() {
            let t = type_name(v);
            match out.iter_mut().find(|(p, _)| p == path) {
                Some((_, types)) if !types.contains(&t) => types.push(t),
                Some(_) => {}
                None => out.push((path.to_string(), vec![t])),
            }
        }
        match v {
            Value::Array(items) => items.iter().for_each(|item| walk(item, &format!("{path}[]"), out)),
            Value::Object(members) => {
                for (key, value) in members {
                    let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(value, &path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

/// How the document `json` differs from the `pinned` shape (lines
/// "PATH TYPE|TYPE", `#` comments): paths missing, added or in another
/// order, or a type the pin does not allow there. Empty: the same schema.
pub fn shape_mismatches(json: &str, pinned: &str) -> Vec<String> {
    let v: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let got = shape(&v);
    let want: Vec<(&str, Vec<&str>)> = pinned
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (path, types) = l.split_once(' ').unwrap_or((l, ""));
            (path, types.split('|').collect())
        })
        .collect();
    let mut problems = Vec::new();
    let got_paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    let want_paths: Vec<&str> = want.iter().map(|(p, _)| *p).collect();
    problems.extend(want_paths.iter().filter(|p| !got_paths.contains(p)).map(|p| format!("missing: {p}")));
    problems.extend(got_paths.iter().filter(|p| !want_paths.contains(p)).map(|p| format!("added: {p}")));
    if problems.is_empty() && got_paths != want_paths {
        problems.push(format!("members in another order: {got_paths:?}"));
    }
    for (path, types) in &got {
        if let Some((_, allowed)) = want.iter().find(|(p, _)| p == path) {
            for t in types.iter().filter(|t| !allowed.contains(t)) {
                problems.push(format!("{path}: {t}, pinned as {}", allowed.join("|")));
            }
        }
    }
    problems
}
