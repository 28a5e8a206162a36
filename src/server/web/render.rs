//! The page's HTML, from `maud` templates: every spliced value is escaped by the template
//! engine, so no handler can forget to. Attacker-controlled text (argv, reasons, env, claims)
//! also goes through [`show`], which makes control, bidi and zero-width characters visible as
//! `\n`, `\u{202e}`, ... so nothing hides in what an approver reads. The stylesheet and script
//! are files next to this one, compiled in.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, Render, html};

use super::session::{Flash, Session};
use crate::request::shell_join;
use crate::server::api::{RequestDoc, RequestView};

pub const PAGE_JS: &str = include_str!("assets/page.js");
pub const PAGE_CSS: &str = include_str!("assets/page.css");

/// One entry of the pending list: a request, with the time it has left, or one whose stored
/// document cannot be read (its id and why).
pub enum Item {
    Request(Box<RequestView>, i64),
    Unreadable(String, String),
}

/// Characters that hide or reorder text: shown as escapes so argv reads as it will run.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Attacker-controlled text, rendered escaped, with deceptive characters made visible.
pub struct Shown<'a>(&'a str);

pub fn show(s: &str) -> Shown<'_> {
    Shown(s)
}

impl Render for Shown<'_> {
    fn render_to(&self, out: &mut String) {
        let mut rest = self.0;
        while !rest.is_empty() {
            let end = rest.find(is_deceptive).unwrap_or(rest.len());
            rest[..end].render_to(out);
            let Some(c) = rest[end..].chars().next() else {
                break;
            };
            let esc = match c {
                '\n' => "\\n".to_owned(),
                '\t' => "\\t".to_owned(),
                '\r' => "\\r".to_owned(),
                c => format!("\\u{{{:x}}}", c as u32),
            };
            html! { span.ctl { (esc) } }.render_to(out);
            rest = &rest[end + c.len_utf8()..];
        }
    }
}

pub fn page(status: StatusCode, body: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
    )
        .into_response()
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        shell(
            "gate",
            html! {
                main.narrow {
                    h1 { "gate" }
                    p.flash.err role="alert" { (message) }
                    p { a href="/" { "Back to the page" } }
                }
            },
        ),
    )
}

fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                link rel="stylesheet" href="/page.css";
                script src="/page.js" defer {}
            }
            body { (body) }
        }
    }
}

/// How the sign-in page offers to sign in: through the identity provider (its label), with an
/// API token, or both.
pub struct SigninChoices<'a> {
    pub provider: Option<&'a str>,
    pub token: bool,
}

pub fn signin(csrf: &str, error: Option<&str>, choices: &SigninChoices<'_>) -> Markup {
    shell(
        "gate — sign in",
        html! {
            main.narrow {
                h1 { "gate" }
                @if let Some(m) = error {
                    p.flash.err role="alert" id="signin-error" { (m) }
                }
                @if let Some(provider) = choices.provider {
                    p {
                        a.button href="/auth/login" id="signin-oidc" {
                            "Sign in with " (provider)
                        }
                    }
                }
                @if choices.token {
                    p {
                        "Sign in with your gate token ("
                        code { "gate serve token issue --principal NAME" }
                        " makes one). The token stays on the server: your browser gets a session cookie."
                    }
                    form method="post" action="/signin" id="signin" {
                        input type="hidden" name="csrf" value=(csrf);
                        label {
                            "Token "
                            input type="password" name="token" id="token" autocomplete="off" autofocus required;
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        },
    )
}

/// After a sign-in through the identity provider: moves on to `return_to` by itself (a
/// same-site navigation, which carries the new session cookie), with a link for a browser
/// that does not.
pub fn signed_in(principal: &str, return_to: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                meta http-equiv="refresh" content=(format!("0;url={return_to}"));
                title { "gate — signed in" }
                link rel="stylesheet" href="/page.css";
            }
            body {
                main.narrow {
                    h1 { "gate" }
                    p { "Signed in as " b { (principal) } "." }
                    p { a href=(return_to) id="continue" { "Continue" } }
                }
            }
        }
    }
}

pub fn main_page(s: &Session, flash: Option<&Flash>, list: Markup) -> Markup {
    shell(
        "gate — pending requests",
        html! {
            header {
                h1 { "gate" }
                div.who {
                    "Signed in as "
                    b id="principal" { (s.principal) }
                    form.inline method="post" action="/signout" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button type="submit" id="signout" { "Sign out" }
                    }
                }
            }
            main {
                @if let Some(f) = flash {
                    p class=(if f.ok { "flash ok" } else { "flash err" }) role="status" id="flash" {
                        (show(&f.text))
                    }
                }
                section id="requests" aria-live="polite" { (list) }
                p.note {
                    "This list refreshes by itself (pausing while you write a comment). "
                    a href="/" { "Reload" }
                }
            }
        },
    )
}

/// The pending requests, as the section's contents.
pub fn list(items: &[Item], s: &Session) -> Markup {
    html! {
        h2 { "Pending requests (" (items.len()) ")" }
        @if items.is_empty() {
            p.empty id="none-pending" { "No pending requests." }
        }
        @for item in items {
            @match item {
                Item::Request(v, left_ms) => (request(v, *left_ms, s)),
                Item::Unreadable(id, why) => {
                    article.request { p.flash.err { "request " (id) ": " (why) } }
                }
            }
        }
    }
}

fn request(v: &RequestView, left_ms: i64, s: &Session) -> Markup {
    let d = &v.doc;
    let id = &v.id;
    html! {
        article.request id={ "r-" (id) } data-id=(id) {
            h3 { code.cmd { (show(&shell_join(&d.argv))) } }
            dl {
                dt { "Requester" }
                dd {
                    b.requester { (v.requester) }
                    @if let Some(u) = &d.claims.user {
                        " (says: user " (show(u))
                        @if let Some(uid) = d.claims.uid { ", uid " (uid) }
                        ")"
                    }
                    @if v.requester == s.principal && !d.requirement.allow_requester {
                        " — " em { "your request: someone else must approve it" }
                    }
                }
                dt { "Host" }
                dd {
                    @match &d.claims.host {
                        Some(h) => (show(h)),
                        None => i { "not given" },
                    }
                }
                @if let Some(agent) = &d.claims.agent {
                    dt { "Agent" } dd { (show(agent)) }
                }
                @if let Some(v) = &d.ci_verified {
                    dt { "CI (verified)" }
                    dd {
                        "by the server, from the job's ID token (" (show(&v.issuer)) ")"
                        (kv_table(verified_rows(v).iter().map(|(k, v)| (k, v))))
                    }
                }
                @if let Some(ci) = d.claims.ci.as_ref().filter(|c| !c.is_empty()) {
                    dt { "CI (claims)" }
                    dd { em { "unverified: the requester's own word" } (kv_table(ci.iter())) }
                }
                dt { "Directory" } dd { code { (show(&d.cwd)) } }
                dt { "Arguments" }
                dd { ol.argv start="0" { @for a in &d.argv { li { code { (show(a)) } } } } }
                dt { "Reason" }
                dd {
                    @match &d.reason {
                        Some(r) => (show(r)),
                        None => i { "none given" },
                    }
                }
                dt { "Context" }
                dd {
                    @if d.context.is_empty() { i { "none" } } @else { (kv_table(d.context.iter())) }
                }
                @if !d.payload.is_empty() {
                    dt { "Payload" }
                    dd {
                        ul {
                            @for p in &d.payload {
                                li {
                                    code { (show(&p.path)) } " sha256 "
                                    @match &p.sha256 {
                                        Some(h) => (show(h)),
                                        None => i { "unreadable" },
                                    }
                                }
                            }
                        }
                    }
                }
                dt { "Matched rules" }
                dd {
                    @if d.rules.is_empty() { i { "none (server default)" } } @else { (names(&d.rules)) }
                    @if !d.client_rules.is_empty() { "; the client's: " (names(&d.client_rules)) }
                }
                dt { "Needs" } dd { (requirement(d)) }
                @if !d.release.is_empty() {
                    dt { "Releases" }
                    dd.release {
                        "on approval, the run receives the server's secrets as: "
                        @for (i, r) in d.release.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (show(&r.env)) } " ← " code { "secret:" (show(&r.secret)) }
                        }
                    }
                }
                dt { "Approvals" }
                dd {
                    @if v.approvals.is_empty() {
                        i { "none yet" }
                    } @else {
                        ul.approvals {
                            @for a in &v.approvals {
                                li {
                                    b { (a.principal) } " at " (a.at)
                                    @if let Some(c) = &a.comment { ": “" (show(c)) "”" }
                                }
                            }
                        }
                    }
                    " "
                    span.needed {
                        (v.needed) " more approval" (if v.needed == 1 { " is" } else { "s are" }) " needed"
                    }
                }
                dt { "Expires" } dd { (v.expires) " (" (left(left_ms)) ")" }
                dt { "Request" }
                dd { code { (id) } ", digest " code.digest { (v.digest) } }
            }
            form.decide method="post" action={ "/requests/" (id) "/decide" } {
                input type="hidden" name="csrf" value=(s.csrf);
                label for={ "c-" (id) } { "Comment" }
                textarea name="comment" id={ "c-" (id) } rows="2" maxlength="2000" {}
                div.buttons {
                    button.approve type="submit" name="decision" value="approve" { "Approve" }
                    " "
                    button.deny type="submit" name="decision" value="deny" { "Deny" }
                }
            }
        }
    }
}

/// A verified CI identity's claims as rows (the issuer is said above them).
fn verified_rows(v: &crate::ci::VerifiedCi) -> Vec<(String, String)> {
    let mut rows = vec![("sub".to_owned(), v.sub.clone())];
    for k in crate::ci::CLAIM_KEYS
        .iter()
        .filter(|k| !matches!(**k, "issuer" | "sub"))
    {
        if let Some(val) = v.get(k) {
            rows.push(((*k).to_owned(), val));
        }
    }
    rows
}

fn kv_table<'a>(kv: impl Iterator<Item = (&'a String, &'a String)>) -> Markup {
    html! {
        table.kv {
            @for (k, v) in kv {
                tr { th { code { (show(k)) } } td { code { (show(v)) } } }
            }
        }
    }
}

fn names(list: &[String]) -> Markup {
    html! {
        @for (i, r) in list.iter().enumerate() {
            @if i > 0 { ", " }
            code { (show(r)) }
        }
    }
}

/// Who may approve, in words.
fn requirement(d: &RequestDoc) -> Markup {
    let r = &d.requirement;
    html! {
        (r.min_approvals) " distinct approval" (if r.min_approvals == 1 { "" } else { "s" }) ": "
        @for (i, c) in r.clauses.iter().enumerate() {
            @if i > 0 { "; " }
            (c.min_approvals) " from "
            @match &c.eligible {
                None => "anyone",
                Some(e) => {
                    @if !c.approvers.is_empty() { (c.approvers.join(", ")) " (" }
                    (e.iter().map(String::as_str).collect::<Vec<_>>().join(", "))
                    @if !c.approvers.is_empty() { ")" }
                }
            }
            " (rule " code { (show(&c.rule)) } ")"
        }
        @if !r.allow_requester { "; never the requester" }
    }
}

/// "in 12 min", coarse on purpose so the refreshed list only changes when something does.
fn left(ms: i64) -> String {
    let min = ms / 60_000;
    match min {
        i64::MIN..=0 => "in under a minute".into(),
        1..=119 => format!("in {min} min"),
        _ => format!("in {} h {} min", min / 60, min % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_hidden_characters_shown() {
        assert_eq!(
            show("a\u{202e}b\n<").render().into_string(),
            "a<span class=\"ctl\">\\u{202e}</span>b<span class=\"ctl\">\\n</span>&lt;"
        );
        assert_eq!(
            show(r#"<a href="x" onclick='y'>&</a>"#)
                .render()
                .into_string(),
            "&lt;a href=&quot;x&quot; onclick='y'&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(
            show("\u{1b}[2J\u{0}").render().into_string(),
            "<span class=\"ctl\">\\u{1b}</span>[2J<span class=\"ctl\">\\u{0}</span>"
        );
        let p = error_page(StatusCode::FORBIDDEN, "<script>x</script>\"");
        assert_eq!(p.status(), StatusCode::FORBIDDEN);
    }
}
