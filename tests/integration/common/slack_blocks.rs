//! Block Kit shape checks for the Slack simulator: the block and element types gate sends
//! (header, section, context, actions with buttons, divider) with the limits Slack documents
//! (https://docs.slack.dev/reference/block-kit/blocks/header-block and its sibling pages:
//! ≤50 blocks per message, header text ≤150, section text ≤3000, fields ≤10 of ≤2000, context
//! ≤10 elements, actions ≤25 elements, button text ≤75, action_id ≤255, value ≤2000, url ≤3000,
//! style `primary`|`danger`, confirm dialog title ≤100 / text ≤300 / buttons ≤30). A violation
//! is reported the way Slack reports it in `response_metadata.messages`:
//! `[ERROR] <what> [json-pointer:/blocks/0/text/text]`.
//!
//! Block and element types outside that list are refused too, with a message that says the
//! simulator does not model them, so a backend cannot start relying on something untested.

use serde_json::{Map, Value};

/// Checks a message's `blocks` array. `Err` carries Slack-style error messages.
pub fn validate(blocks: &Value) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    match blocks.as_array() {
        None => errs.push(msg("must be an array", "/blocks")),
        Some(list) => {
            if list.len() > 50 {
                errs.push(msg("no more than 50 items allowed", "/blocks"));
            }
            for (i, b) in list.iter().enumerate() {
                block(b, &format!("/blocks/{i}"), &mut errs);
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn msg(what: &str, at: &str) -> String {
    format!("[ERROR] {what} [json-pointer:{at}]")
}

fn block(b: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(o) = b.as_object() else {
        errs.push(msg("must be an object", at));
        return;
    };
    if let Some(id) = o.get("block_id") {
        max_str(id, 255, &format!("{at}/block_id"), errs);
    }
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "header" => {
            allowed(o, &["type", "block_id", "text"], at, errs);
            match o.get("text") {
                Some(t) => text(t, 150, true, &format!("{at}/text"), errs),
                None => errs.push(msg("missing required field: text", at)),
            }
        }
        "section" => {
            allowed(o, &["type", "block_id", "text", "fields", "accessory"], at, errs);
            if o.get("text").is_none() && o.get("fields").is_none() {
                errs.push(msg("must provide either text or fields", at));
            }
            if let Some(t) = o.get("text") {
                text(t, 3000, false, &format!("{at}/text"), errs);
            }
            if let Some(f) = o.get("fields") {
                list(f, 1, 10, &format!("{at}/fields"), errs, |v, p, e| {
                    text(v, 2000, false, p, e)
                });
            }
            if let Some(a) = o.get("accessory") {
                button(a, &format!("{at}/accessory"), errs);
            }
        }
        "context" => {
            allowed(o, &["type", "block_id", "elements"], at, errs);
            match o.get("elements") {
                Some(els) => list(els, 1, 10, &format!("{at}/elements"), errs, |v, p, e| {
                    if v.get("type").and_then(Value::as_str) == Some("image") {
                        image(v, p, e)
                    } else {
                        text(v, 3000, false, p, e)
                    }
                }),
                None => errs.push(msg("missing required field: elements", at)),
            }
        }
        "actions" => {
            allowed(o, &["type", "block_id", "elements"], at, errs);
            match o.get("elements") {
                Some(els) => {
                    list(els, 1, 25, &format!("{at}/elements"), errs, button);
                    unique_action_ids(els, &format!("{at}/elements"), errs);
                }
                None => errs.push(msg("missing required field: elements", at)),
            }
        }
        "divider" => allowed(o, &["type", "block_id"], at, errs),
        "" => errs.push(msg("missing required field: type", at)),
        other => errs.push(msg(
            &format!("unsupported type `{other}` (the simulator models header, section, context, actions, divider)"),
            &format!("{at}/type"),
        )),
    }
}

fn allowed(o: &Map<String, Value>, keys: &[&str], at: &str, errs: &mut Vec<String>) {
    for k in o.keys() {
        if !keys.contains(&k.as_str()) {
            errs.push(msg(
                &format!("unexpected field `{k}`"),
                &format!("{at}/{k}"),
            ));
        }
    }
}

fn list(
    v: &Value,
    min: usize,
    max: usize,
    at: &str,
    errs: &mut Vec<String>,
    each: impl Fn(&Value, &str, &mut Vec<String>),
) {
    let Some(items) = v.as_array() else {
        errs.push(msg("must be an array", at));
        return;
    };
    if items.len() < min {
        errs.push(msg(&format!("must have at least {min} items"), at));
    }
    if items.len() > max {
        errs.push(msg(&format!("no more than {max} items allowed"), at));
    }
    for (i, item) in items.iter().enumerate() {
        each(item, &format!("{at}/{i}"), errs);
    }
}

/// A composition text object: `plain_text` (optionally `emoji`) or `mrkdwn` (optionally
/// `verbatim`), with 1..=`max` characters of `text`.
fn text(v: &Value, max: usize, plain_only: bool, at: &str, errs: &mut Vec<String>) {
    let Some(o) = v.as_object() else {
        errs.push(msg("must be a text object", at));
        return;
    };
    match o.get("type").and_then(Value::as_str) {
        Some("plain_text") => allowed(o, &["type", "text", "emoji"], at, errs),
        Some("mrkdwn") if !plain_only => allowed(o, &["type", "text", "verbatim"], at, errs),
        Some("mrkdwn") => errs.push(msg("must be plain_text", &format!("{at}/type"))),
        _ => errs.push(msg(
            "must be one of plain_text, mrkdwn",
            &format!("{at}/type"),
        )),
    }
    match o.get("text") {
        Some(Value::String(s)) if s.is_empty() => {
            errs.push(msg("must be more than 0 characters", &format!("{at}/text")))
        }
        Some(t) => max_str(t, max, &format!("{at}/text"), errs),
        None => errs.push(msg("missing required field: text", at)),
    }
}

fn image(v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(o) = v.as_object() else { return };
    allowed(o, &["type", "image_url", "alt_text"], at, errs);
    for k in ["image_url", "alt_text"] {
        match o.get(k) {
            Some(s) => max_str(s, 2000, &format!("{at}/{k}"), errs),
            None => errs.push(msg(&format!("missing required field: {k}"), at)),
        }
    }
}

fn button(v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(o) = v.as_object() else {
        errs.push(msg("must be an object", at));
        return;
    };
    match o.get("type").and_then(Value::as_str) {
        Some("button") => {}
        Some(other) => {
            errs.push(msg(
                &format!("unsupported element type `{other}` (the simulator models button)"),
                &format!("{at}/type"),
            ));
            return;
        }
        None => errs.push(msg("missing required field: type", at)),
    }
    allowed(
        o,
        &[
            "type",
            "text",
            "action_id",
            "value",
            "style",
            "url",
            "confirm",
            "accessibility_label",
        ],
        at,
        errs,
    );
    match o.get("text") {
        Some(t) => text(t, 75, true, &format!("{at}/text"), errs),
        None => errs.push(msg("missing required field: text", at)),
    }
    for (k, max) in [
        ("action_id", 255),
        ("value", 2000),
        ("url", 3000),
        ("accessibility_label", 75),
    ] {
        if let Some(s) = o.get(k) {
            max_str(s, max, &format!("{at}/{k}"), errs);
        }
    }
    if let Some(s) = o.get("style")
        && !matches!(s.as_str(), Some("primary" | "danger"))
    {
        errs.push(msg(
            "must be one of primary, danger",
            &format!("{at}/style"),
        ));
    }
    if let Some(c) = o.get("confirm") {
        confirm(c, &format!("{at}/confirm"), errs);
    }
}

fn confirm(v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(o) = v.as_object() else {
        errs.push(msg("must be an object", at));
        return;
    };
    allowed(o, &["title", "text", "confirm", "deny", "style"], at, errs);
    for (k, max, plain) in [
        ("title", 100, true),
        ("text", 300, false),
        ("confirm", 30, true),
        ("deny", 30, true),
    ] {
        match o.get(k) {
            Some(t) => text(t, max, plain, &format!("{at}/{k}"), errs),
            None => errs.push(msg(&format!("missing required field: {k}"), at)),
        }
    }
    if let Some(s) = o.get("style")
        && !matches!(s.as_str(), Some("primary" | "danger"))
    {
        errs.push(msg(
            "must be one of primary, danger",
            &format!("{at}/style"),
        ));
    }
}

fn unique_action_ids(els: &Value, at: &str, errs: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in els.as_array().into_iter().flatten().enumerate() {
        if let Some(id) = e.get("action_id").and_then(Value::as_str)
            && !seen.insert(id)
        {
            errs.push(msg(
                &format!("action_id `{id}` is already used in this block"),
                &format!("{at}/{i}/action_id"),
            ));
        }
    }
}

fn max_str(v: &Value, max: usize, at: &str, errs: &mut Vec<String>) {
    match v.as_str() {
        Some(s) if s.chars().count() > max => errs.push(msg(
            &format!("must be less than {} characters", max + 1),
            at,
        )),
        Some(_) => {}
        None => errs.push(msg("must be a string", at)),
    }
}
