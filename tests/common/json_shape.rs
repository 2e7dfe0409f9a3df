//! The shape of a JSON document, to pin `readckpt --json`'s schema against
//! tests/fixtures/readckpt-json.shape: every member path ("a.b" a member of
//! an object, "a[]" the items of an array) in order of first appearance,
//! with the JSON types seen there ("absent": the path may be missing, as the
//! items of an empty list are). Used by readckpt's unit tests (on sample
//! images) and by tests/events.rs (on a real one).
#![allow(dead_code)]

use serde_json::Value;

/// The pinned shape of `readckpt --json --verify` on a valid image.
pub const READCKPT_SHAPE: &str = include_str!("../fixtures/readckpt-json.shape");

/// The pinned shape of `readckpt --json --verify` on a valid job image
/// (`ckpt --tree`), each item of its `processes` having [`READCKPT_SHAPE`].
pub const READCKPT_JOB_SHAPE: &str = include_str!("../fixtures/readckpt-job-json.shape");

/// The path and the types seen there, of each path of a document.
pub type Shape = Vec<(String, Vec<&'static str>)>;

/// A pinned shape's text: `comment` (each line `# `), then a line
/// "PATH TYPE|TYPE" per path of `shapes` (the first one's paths, with
/// those of the others inserted after the path before them; "absent" where
/// a shape lacks the path), the same as [`shape_mismatches`] reads. A path
/// that `pinned` (the file so far) has keeps the types it allowed there
/// (a limit that may be a number or null).
pub fn shape_text(comment: &str, pinned: &str, shapes: &[Shape]) -> String {
    let pinned: Vec<(&str, Vec<&str>)> = pinned_paths(pinned).collect();
    let mut all: Vec<(String, Vec<&str>)> = Vec::new();
    for s in shapes {
        let mut at = 0;
        for (path, types) in s {
            match all.iter().position(|(p, _)| p == path) {
                Some(i) => {
                    let have = &mut all[i].1;
                    have.extend(types.iter().filter(|t| !have.contains(t)).collect::<Vec<_>>());
                    at = i + 1;
                }
                None => {
                    all.insert(at, (path.clone(), types.clone()));
                    at += 1;
                }
            }
        }
    }
    let mut text: String = comment.lines().map(|l| format!("# {l}\n")).collect();
    for (path, mut types) in all {
        if let Some((_, before)) = pinned.iter().find(|(p, _)| *p == path) {
            let new: Vec<&str> = types.into_iter().filter(|t| !before.contains(t)).collect();
            types = before.iter().copied().filter(|t| *t != "absent").chain(new).collect();
        }
        if shapes.iter().any(|s| s.iter().all(|(p, _)| *p != path)) {
            types.push("absent");
        }
        text += &format!("{path} {}\n", types.join("|"));
    }
    text
}

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
pub fn shape(v: &Value) -> Shape {
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
    shape_problems(&got, pinned)
}

/// A job image's report split in two: its own paths, and those of the
/// items of its `processes` (relative to the item).
pub fn job_shapes(v: &Value) -> (Shape, Shape) {
    const ITEM: &str = "processes[].";
    let (processes, job): (Shape, Shape) = shape(v).into_iter().partition(|(p, _)| p.starts_with(ITEM));
    (job, processes.into_iter().map(|(p, t)| (p[ITEM.len()..].to_string(), t)).collect())
}

/// [`shape_mismatches`] of a job image's report: [`READCKPT_JOB_SHAPE`],
/// and [`READCKPT_SHAPE`] for its processes.
pub fn job_shape_mismatches(json: &str) -> Vec<String> {
    let v: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let (job, processes) = job_shapes(&v);
    let mut problems = shape_problems(&job, READCKPT_JOB_SHAPE);
    problems.extend(shape_problems(&processes, READCKPT_SHAPE).into_iter().map(|p| format!("processes[]: {p}")));
    problems
}

/// [`shape_mismatches`] of a shape (a document's, or part of one).
pub fn shape_problems(got: &[(String, Vec<&'static str>)], pinned: &str) -> Vec<String> {
    let want: Vec<(&str, Vec<&str>)> = pinned_paths(pinned).collect();
    let mut problems = Vec::new();
    let got_paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    let want_paths: Vec<&str> = want.iter().map(|(p, _)| *p).collect();
    let optional = |p: &str| want.iter().any(|(w, types)| *w == p && types.contains(&"absent"));
    let missing = want_paths.iter().filter(|p| !got_paths.contains(p) && !optional(p));
    problems.extend(missing.map(|p| format!("missing: {p}")));
    problems.extend(got_paths.iter().filter(|p| !want_paths.contains(p)).map(|p| format!("added: {p}")));
    let present: Vec<&str> = want_paths.iter().copied().filter(|p| got_paths.contains(p)).collect();
    if problems.is_empty() && got_paths != present {
        problems.push(format!("members in another order: {got_paths:?}"));
    }
    for (path, types) in got {
        if let Some((_, allowed)) = want.iter().find(|(p, _)| p == path) {
            for t in types.iter().filter(|t| !allowed.contains(t)) {
                problems.push(format!("{path}: {t}, pinned as {}", allowed.join("|")));
            }
        }
    }
    problems
}

/// The lines of a pinned shape: (path, the types allowed there).
fn pinned_paths(pinned: &str) -> impl Iterator<Item = (&str, Vec<&str>)> {
    pinned.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| {
        let (path, types) = l.split_once(' ').unwrap_or((l, ""));
        (path, types.split('|').collect())
    })
}
