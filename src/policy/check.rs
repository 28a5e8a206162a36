//! Turns one file's YAML tree into a [`PolicyFile`], reporting every problem it finds (unknown
//! keys, wrong types, bad globs and regexes, bad durations) instead of stopping at the first.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::{Diagnostic, Diagnostics, Pos};
use super::schema::*;
use super::yaml::{self, Node, Value};

/// Parses and checks one policy file's text. Cross-file checks happen when files merge.
pub fn check_file(path: &Path, source: &str) -> Result<PolicyFile, Vec<Diagnostic>> {
    let (file, diags) = check_file_partial(path, source);
    match file {
        Some(f) if diags.is_empty() => Ok(f),
        _ => Err(diags),
    }
}

/// Like [`check_file`], but also returns what could be read of a file with problems, so the
/// cross-file checks can still report theirs in the same run. `None` when the YAML itself is
/// unreadable.
pub fn check_file_partial(path: &Path, source: &str) -> (Option<PolicyFile>, Vec<Diagnostic>) {
    let mut c = Checker {
        d: Diagnostics::new(path, source),
    };
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            c.d.error_hint(
                Pos { line: 1, col: 1 },
                "empty policy file",
                "a policy starts with `version: 1`",
            );
            return (None, c.d.items);
        }
        Err(e) => {
            c.d.error(e.pos, format!("YAML syntax error: {}", e.message));
            return (None, c.d.items);
        }
    };
    let mut file = PolicyFile {
        path: path.to_path_buf(),
        source: source.to_owned(),
        ..PolicyFile::default()
    };
    c.file(&root, &mut file);
    (Some(file), c.d.items)
}

struct Checker<'a> {
    d: Diagnostics<'a>,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "defaults",
    "context",
    "groups",
    "identities",
    "backends",
    "audit",
    "rules",
    "tests",
];

impl Checker<'_> {
    fn file(&mut self, root: &Node, f: &mut PolicyFile) {
        let Some(map) = self.map(root, "the policy file") else {
            return;
        };
        let mut version_seen = false;
        for (key, kpos, v) in map {
            match key.as_str() {
                "version" => {
                    version_seen = true;
                    match v.value {
                        Value::Int(1) => {}
                        Value::Int(n) => self.d.error_hint(
                            v.pos,
                            format!("unsupported policy version {n}"),
                            "this gate reads `version: 1`",
                        ),
                        _ => self.wrong_type(v, "the integer 1"),
                    }
                }
                "defaults" => self.defaults(v, &mut f.defaults),
                "context" => self.context(v, &mut f.context),
                "groups" => {
                    for (name, npos, members) in self.map(v, "`groups`").unwrap_or(&[]) {
                        let list = self.str_list(members, "group members");
                        f.groups.push((at(name, *npos), list));
                    }
                }
                "identities" => {
                    for (name, npos, ids) in self.map(v, "`identities`").unwrap_or(&[]) {
                        let mut accounts = BTreeMap::new();
                        for (k, _, val) in self.map(ids, "an identity").unwrap_or(&[]) {
                            if let Some(s) = self.str(val, "an account id") {
                                accounts.insert(k.clone(), s);
                            }
                        }
                        f.identities.push((at(name, *npos), accounts));
                    }
                }
                "backends" => {
                    for (name, npos, spec) in self.map(v, "`backends`").unwrap_or(&[]) {
                        if let Some(b) = self.backend(spec) {
                            f.backends.push((at(name, *npos), b));
                        }
                    }
                }
                "audit" => self.audit(v, &mut f.audit),
                "rules" => {
                    for r in self.seq(v, "`rules`").unwrap_or(&[]) {
                        if let Some(rule) = self.rule(r) {
                            f.rules.push(rule);
                        }
                    }
                }
                "tests" => {
                    for t in self.seq(v, "`tests`").unwrap_or(&[]) {
                        if let Some(case) = self.test_case(t) {
                            f.tests.push(case);
                        }
                    }
                }
                _ => self.unknown_key(key, *kpos, TOP_KEYS),
            }
        }
        if !version_seen {
            self.d.error_hint(
                root.pos,
                "missing `version`",
                "add `version: 1` at the top of the file",
            );
        }
    }

    fn defaults(&mut self, v: &Node, out: &mut Defaults) {
        for (key, kpos, val) in self.map(v, "`defaults`").unwrap_or(&[]) {
            match key.as_str() {
                "decision" => {
                    out.decision = self.decision(val).map(|d| At {
                        value: d,
                        pos: val.pos,
                    })
                }
                "backend" => out.backend = self.str(val, "a backend name").map(|s| at(&s, val.pos)),
                "timeout" => {
                    out.timeout = self.duration(val).map(|d| At {
                        value: d,
                        pos: val.pos,
                    })
                }
                "opaque_shell" => {
                    out.opaque_shell = self.decision(val).map(|d| At {
                        value: d,
                        pos: val.pos,
                    })
                }
                "opaque_approval" => out.opaque_approval = self.opaque_approval(val, *kpos),
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &[
                        "decision",
                        "backend",
                        "timeout",
                        "opaque_shell",
                        "opaque_approval",
                    ],
                ),
            }
        }
    }

    /// `defaults.opaque_approval`: `approvers` and `min_approvals`, checked as in a rule's
    /// `approval`; the other approval keys have no meaning here and are unknown.
    fn opaque_approval(&mut self, v: &Node, kpos: Pos) -> Option<OpaqueApproval> {
        let mut a = OpaqueApproval {
            pos: kpos,
            approvers: Vec::new(),
            min_approvals: At {
                value: 1,
                pos: v.pos,
            },
        };
        for (key, kp, val) in self.map(v, "`opaque_approval`")? {
            match key.as_str() {
                "approvers" => {
                    for item in self.seq(val, "`approvers`").unwrap_or(&[]) {
                        if let Some(s) = self.str(item, "a group or principal name") {
                            a.approvers.push(at(&s, item.pos));
                        }
                    }
                }
                "min_approvals" => {
                    if let Some(n) = self.min_approvals(val) {
                        a.min_approvals = n;
                    }
                }
                _ => self.unknown_key(key, *kp, &["approvers", "min_approvals"]),
            }
        }
        Some(a)
    }

    fn min_approvals(&mut self, val: &Node) -> Option<At<u32>> {
        match val.value {
            Value::Int(n) if (1..=100).contains(&n) => Some(At {
                value: n as u32,
                pos: val.pos,
            }),
            Value::Int(n) => {
                self.d.error(
                    val.pos,
                    format!("`min_approvals` must be 1 to 100, not {n}"),
                );
                None
            }
            _ => {
                self.wrong_type(val, "an integer");
                None
            }
        }
    }

    fn context(&mut self, v: &Node, out: &mut Context) {
        for (key, kpos, val) in self.map(v, "`context`").unwrap_or(&[]) {
            match key.as_str() {
                "env" => out.env = self.str_list(val, "environment variable names"),
                "redact" => {
                    for item in self.seq(val, "`redact`").unwrap_or(&[]) {
                        if let Some(re) = self.str(item, "a regular expression")
                            && self.regex_ok(&re, item.pos)
                        {
                            out.redact.push(at(&re, item.pos));
                        }
                    }
                }
                _ => self.unknown_key(key, *kpos, &["env", "redact"]),
            }
        }
    }

    fn backend(&mut self, v: &Node) -> Option<BackendKind> {
        let map = self.map(v, "a backend")?;
        let mut fields: BTreeMap<&str, (String, Pos)> = BTreeMap::new();
        let mut kind = None;
        for (key, kpos, val) in map {
            if key == "kind" {
                kind = self.str(val, "a backend kind").map(|k| (k, val.pos));
                continue;
            }
            const KNOWN: &[&str] = &[
                "kind", "spool", "url", "key", "channel", "token", "api_url", "webhook",
            ];
            match KNOWN.iter().find(|k| **k == key) {
                Some(k) => {
                    if let Some(s) = self.str(val, "a string") {
                        fields.insert(k, (s, val.pos));
                    }
                }
                None => self.unknown_key(key, *kpos, KNOWN),
            }
        }
        let Some((kind, kpos)) = kind else {
            self.d.error_hint(
                v.pos,
                "backend without `kind`",
                "one of: local, server, slack, teams",
            );
            return None;
        };
        // Taken out first: only a server backend has a `key`; elsewhere it "does not apply".
        let server_key = (kind == "server").then(|| fields.remove("key")).flatten();
        let mut need = |name: &str, d: &mut Diagnostics| -> Option<(String, Pos)> {
            let got = fields.remove(name);
            if got.is_none() {
                d.error(v.pos, format!("a `{kind}` backend needs `{name}`"));
            }
            got
        };
        let b = match kind.as_str() {
            "local" => BackendKind::Local {
                spool: fields.remove("spool").map(|(s, _)| PathBuf::from(s)),
            },
            "server" => {
                let url = need("url", &mut self.d);
                // A missing or bad key is reported here; the backend is still defined (with
                // the key as written) so rules naming it are not reported as well. A policy
                // with errors is never used.
                let key = match server_key {
                    None => {
                        self.d.error_hint(
                            v.pos,
                            "a `server` backend needs `key`: the verifier key its decisions must be signed with",
                            "`gate login URL` (or `gate serve key` on the server) prints it; add `key: \"<vkey>\"`",
                        );
                        String::new()
                    }
                    Some((key, kpos)) => {
                        if let Err(why) = check_vkey(&key) {
                            self.d.error_hint(
                                kpos,
                                format!("`key` is not a server verifier key: {why}"),
                                "copy it as `gate login URL` or `gate serve key` prints it: `<name>+<8 hex>+<base64>`",
                            );
                        }
                        key
                    }
                };
                BackendKind::Server { url: url?.0, key }
            }
            "slack" => {
                let channel = need("channel", &mut self.d);
                let token = need("token", &mut self.d);
                BackendKind::Slack {
                    channel: channel?.0,
                    token: {
                        let (token, pos) = token?;
                        secret_ref(token, &mut self.d, pos)?
                    },
                    api_url: fields.remove("api_url").map(|(s, _)| s),
                }
            }
            "teams" => BackendKind::Teams {
                webhook: {
                    let (webhook, pos) = need("webhook", &mut self.d)?;
                    secret_ref(webhook, &mut self.d, pos)?
                },
            },
            other => {
                self.d.error_hint(
                    kpos,
                    format!("unknown backend kind `{other}`"),
                    "one of: local, server, slack, teams",
                );
                return None;
            }
        };
        for (name, (_, pos)) in fields {
            self.d.error(
                pos,
                format!("`{name}` does not apply to a `{}` backend", b.kind()),
            );
        }
        Some(b)
    }

    fn audit(&mut self, v: &Node, out: &mut Audit) {
        for (key, kpos, val) in self.map(v, "`audit`").unwrap_or(&[]) {
            match key.as_str() {
                "path" => {
                    out.path = self.str(val, "a file path").map(PathBuf::from);
                    out.path_pos = Some(val.pos);
                }
                "key" => {
                    out.key = self.str(val, "a file path").map(PathBuf::from);
                    out.key_pos = Some(val.pos);
                }
                "require_remote" => {
                    out.require_remote = self.bool(val);
                    out.require_remote_pos = Some(val.pos);
                }
                "sinks" => {
                    for s in self.seq(val, "`sinks`").unwrap_or(&[]) {
                        let spec = to_json(s);
                        // Checked here so `gate policy lint` names a bad sink's place.
                        match serde_json::from_value::<super::SinkSpec>(spec.clone()) {
                            Ok(super::SinkSpec::Http { token: Some(t), .. })
                                if secret_ref(t.clone(), &mut self.d, s.pos).is_none() => {}
                            Ok(_) => {}
                            Err(e) => self.d.error_hint(
                                s.pos,
                                format!("bad sink: {e}"),
                                "kinds: server {url}, syslog {url, ca?, app_name?}, http {url, preset?, token?, labels?}, file {path}",
                            ),
                        }
                        out.sinks.push(spec);
                    }
                }
                _ => self.unknown_key(key, *kpos, &["path", "key", "sinks", "require_remote"]),
            }
        }
    }

    fn rule(&mut self, v: &Node) -> Option<Rule> {
        let map = self.map(v, "a rule")?;
        let mut name = None;
        let mut matcher = None;
        let mut decision = None;
        let mut decision_written = false;
        let (mut risk, mut category, mut message, mut approval) = (None, None, None, None);
        for (key, kpos, val) in map {
            match key.as_str() {
                "name" => name = self.str(val, "a rule name").map(|s| at(&s, val.pos)),
                "match" => matcher = self.matcher(val),
                "decision" => {
                    decision_written = true;
                    decision = self.decision(val);
                }
                "risk" => risk = self.str(val, "a string"),
                "category" => category = self.str(val, "a string"),
                "message" => message = self.str(val, "a string"),
                "approval" => approval = self.approval(val),
                _ => {
                    // A misspelt `decision` is reported once, as the unknown key it is.
                    decision_written |= similar(key, "decision");
                    self.unknown_key(
                        key,
                        *kpos,
                        &[
                            "name", "match", "decision", "risk", "category", "message", "approval",
                        ],
                    )
                }
            }
        }
        let Some(name) = name else {
            self.d.error(v.pos, "rule without `name`");
            return None;
        };
        let Some(decision) = decision else {
            if decision_written {
                // Already reported where it was written.
                return None;
            }
            self.d.error_hint(
                v.pos,
                format!("rule `{}` has no `decision`", name.value),
                "one of: allow, confirm, approve, deny",
            );
            return None;
        };
        if approval.is_some() && decision != Decision::Approve {
            self.d.error(
                v.pos,
                format!(
                    "rule `{}` has `approval` but its decision is `{}`",
                    name.value,
                    decision.as_str()
                ),
            );
        }
        let approval = match (decision, approval) {
            (Decision::Approve, None) => Some(Approval {
                approvers: Vec::new(),
                min_approvals: At {
                    value: 1,
                    pos: v.pos,
                },
                allow_requester: false,
                timeout: None,
                backend: None,
                reuse: None,
            }),
            (_, a) => a,
        };
        Some(Rule {
            name,
            matcher: matcher.unwrap_or_default(),
            decision,
            risk,
            category,
            message,
            approval,
        })
    }

    fn matcher(&mut self, v: &Node) -> Option<Match> {
        let mut m = Match::default();
        for (key, kpos, val) in self.map(v, "`match`")? {
            match key.as_str() {
                "program" => m.program = self.glob(val),
                "args" => m.args = self.glob_list(val),
                "args_any" => m.args_any = self.glob_list(val),
                "regex" => {
                    if let Some(re) = self.str(val, "a regular expression")
                        && self.regex_ok(&re, val.pos)
                    {
                        m.regex = Some(at(&re, val.pos));
                    }
                }
                "env" => {
                    for (name, _, g) in self.map(val, "`env`").unwrap_or(&[]) {
                        if let Some(g) = self.glob(g) {
                            m.env.push((name.clone(), g));
                        }
                    }
                }
                "cwd" => m.cwd = self.glob(val),
                "user" => m.user = self.glob(val),
                "host" => m.host = self.glob(val),
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &[
                        "program", "args", "args_any", "regex", "env", "cwd", "user", "host",
                    ],
                ),
            }
        }
        Some(m)
    }

    fn approval(&mut self, v: &Node) -> Option<Approval> {
        let mut a = Approval {
            approvers: Vec::new(),
            min_approvals: At {
                value: 1,
                pos: v.pos,
            },
            allow_requester: false,
            timeout: None,
            backend: None,
            reuse: None,
        };
        for (key, kpos, val) in self.map(v, "`approval`")? {
            match key.as_str() {
                "approvers" => {
                    for item in self.seq(val, "`approvers`").unwrap_or(&[]) {
                        if let Some(s) = self.str(item, "a group or principal name") {
                            a.approvers.push(at(&s, item.pos));
                        }
                    }
                }
                "min_approvals" => {
                    if let Some(n) = self.min_approvals(val) {
                        a.min_approvals = n;
                    }
                }
                "allow_requester" => a.allow_requester = self.bool(val).unwrap_or(false),
                "timeout" => a.timeout = self.duration(val),
                "backend" => a.backend = self.str(val, "a backend name").map(|s| at(&s, val.pos)),
                "reuse" => a.reuse = self.duration(val),
                _ => self.unknown_key(
                    key,
                    *kpos,
                    &[
                        "approvers",
                        "min_approvals",
                        "allow_requester",
                        "timeout",
                        "backend",
                        "reuse",
                    ],
                ),
            }
        }
        Some(a)
    }

    fn test_case(&mut self, v: &Node) -> Option<TestCase> {
        let map = self.map(v, "a test case")?;
        let mut case = TestCase {
            pos: v.pos,
            run: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            user: None,
            host: None,
            expect_decision: Decision::Allow,
            expect_rules: Vec::new(),
            expect_min_approvals: None,
        };
        let (mut run_seen, mut expect_seen) = (false, false);
        for (key, kpos, val) in map {
            match key.as_str() {
                "run" => {
                    run_seen = true;
                    case.run = self.str_list(val, "the command's argv");
                    if case.run.is_empty() {
                        self.d.error(val.pos, "`run` needs at least the program");
                    }
                }
                "env" => {
                    for (k, _, e) in self.map(val, "`env`").unwrap_or(&[]) {
                        if let Some(s) = self.str(e, "a string") {
                            case.env.insert(k.clone(), s);
                        }
                    }
                }
                "cwd" => case.cwd = self.str(val, "a directory"),
                "user" => case.user = self.str(val, "a user name"),
                "host" => case.host = self.str(val, "a host name"),
                "expect" => {
                    expect_seen = true;
                    let mut decision_seen = false;
                    for (k, kp, e) in self.map(val, "`expect`").unwrap_or(&[]) {
                        match k.as_str() {
                            "decision" => {
                                decision_seen = true;
                                if let Some(d) = self.decision(e) {
                                    case.expect_decision = d;
                                }
                            }
                            "rule" => case.expect_rules.extend(self.str(e, "a rule name")),
                            "rules" => case.expect_rules = self.str_list(e, "rule names"),
                            "min_approvals" => match e.value {
                                Value::Int(n) if n >= 0 => {
                                    case.expect_min_approvals = Some(n as u32)
                                }
                                _ => self.wrong_type(e, "a non-negative integer"),
                            },
                            _ => self.unknown_key(
                                k,
                                *kp,
                                &["decision", "rule", "rules", "min_approvals"],
                            ),
                        }
                    }
                    if !decision_seen {
                        self.d.error(val.pos, "`expect` needs a `decision`");
                    }
                }
                _ => self.unknown_key(key, *kpos, &["run", "env", "cwd", "user", "host", "expect"]),
            }
        }
        if !run_seen || !expect_seen {
            self.d.error(v.pos, "a test case needs `run` and `expect`");
            return None;
        }
        Some(case)
    }

    // ---- typed accessors: each reports a wrong type at the value's position ----

    fn map<'n>(&mut self, v: &'n Node, what: &str) -> Option<&'n [(String, Pos, Node)]> {
        match &v.value {
            Value::Map(m) => {
                // Small mappings (nearly all of them) are checked without hashing.
                let mut seen = HashSet::new();
                for (i, (k, p, _)) in m.iter().enumerate() {
                    let dup = if m.len() <= 16 {
                        m[..i].iter().any(|(k2, _, _)| k2 == k)
                    } else {
                        !seen.insert(k.as_str())
                    };
                    if k.starts_with('\u{0}') {
                        self.d.error(*p, "mapping keys must be plain strings");
                    } else if dup {
                        self.d.error(*p, format!("duplicate key `{k}`"));
                    }
                }
                Some(m)
            }
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(v, &format!("a mapping for {what}"));
                None
            }
        }
    }

    fn seq<'n>(&mut self, v: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &v.value {
            Value::Seq(s) => Some(s),
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(v, &format!("a list for {what}"));
                None
            }
        }
    }

    fn str(&mut self, v: &Node, what: &str) -> Option<String> {
        match &v.value {
            Value::Str(s) => Some(s.clone()),
            // Plain scalars like `1` or `true` in a string position are almost always a
            // mistake in intent but harmless in meaning: accept their text.
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.wrong_type(v, what);
                None
            }
        }
    }

    fn str_list(&mut self, v: &Node, what: &str) -> Vec<String> {
        match &v.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.str(i, what)).collect(),
            _ => {
                self.wrong_type(v, &format!("a list of {what}"));
                Vec::new()
            }
        }
    }

    fn bool(&mut self, v: &Node) -> Option<bool> {
        match v.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(v, "`true` or `false`");
                None
            }
        }
    }

    fn decision(&mut self, v: &Node) -> Option<Decision> {
        let s = self.str(v, "a decision")?;
        let d = Decision::parse(&s);
        if d.is_none() {
            self.d.error_hint(
                v.pos,
                format!("unknown decision `{s}`"),
                "one of: allow, confirm, approve, deny",
            );
        }
        d
    }

    fn duration(&mut self, v: &Node) -> Option<Duration> {
        let s = self.str(v, "a duration")?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.d.error(v.pos, "a duration must be longer than zero");
                None
            }
            Err(e) => {
                self.d.error_hint(
                    v.pos,
                    format!("bad duration `{s}`: {e}"),
                    "write durations like `90s`, `15m` or `1h 30m`",
                );
                None
            }
        }
    }

    fn glob(&mut self, v: &Node) -> Option<At<String>> {
        let s = self.str(v, "a glob pattern")?;
        // A pattern without any of the characters globset's parser treats specially is a
        // literal, which always parses: skip building the `Glob` just to drop it. (Commas are
        // special only inside braces, which need `{`.)
        if !s.contains(['?', '*', '[', '{', '}', '\\']) {
            return Some(At {
                value: s,
                pos: v.pos,
            });
        }
        match super::compile::glob(&s) {
            Ok(_) => Some(at(&s, v.pos)),
            Err(e) => {
                self.d.error(v.pos, format!("bad glob `{s}`: {e}"));
                None
            }
        }
    }

    fn glob_list(&mut self, v: &Node) -> Vec<At<String>> {
        match &v.value {
            Value::Seq(items) => items.iter().filter_map(|i| self.glob(i)).collect(),
            _ => {
                self.wrong_type(v, "a list of glob patterns");
                Vec::new()
            }
        }
    }

    fn regex_ok(&mut self, re: &str, pos: Pos) -> bool {
        match regex_syntax::Parser::new().parse(re) {
            Ok(_) => true,
            Err(e) => {
                let first = e.to_string();
                let detail = first.lines().last().unwrap_or("").trim();
                let detail = detail.strip_prefix("error: ").unwrap_or(detail).to_owned();
                self.d.error(pos, format!("bad regex `{re}`: {detail}"));
                false
            }
        }
    }

    fn wrong_type(&mut self, v: &Node, expected: &str) {
        self.d.error(
            v.pos,
            format!("expected {expected}, found {}", v.value.type_name()),
        );
    }

    fn unknown_key(&mut self, key: &str, pos: Pos, known: &[&str]) {
        let close = known.iter().find(|k| similar(key, k));
        let hint = match close {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        };
        self.d.error_hint(pos, format!("unknown key `{key}`"), hint);
    }
}

fn at(s: &str, pos: Pos) -> At<String> {
    At {
        value: s.to_owned(),
        pos,
    }
}

/// Secrets live outside policy files: only references are accepted.
fn secret_ref(s: String, d: &mut Diagnostics, pos: Pos) -> Option<String> {
    if ["keyring:", "env:", "file:"]
        .iter()
        .any(|p| s.starts_with(p))
    {
        Some(s)
    } else {
        d.error_hint(
            pos,
            "secrets are never written into policy files",
            "refer to it as `keyring:SERVICE/NAME`, `env:VAR` or `file:PATH`",
        );
        None
    }
}

/// Checks a note verifier key's form, `<name>+<8 hex key id>+<base64(0x01 ‖ Ed25519 key)>`,
/// and that its id belongs to its name and key (DESIGN §8). Written out here rather than taken
/// from `audit::note`, which sits above the policy layer; the client parses it again there.
fn check_vkey(vkey: &str) -> Result<(), &'static str> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    if vkey.starts_with("PRIVATE+KEY+") {
        return Err(
            "this is a private signing key — pin the verifier key `gate serve key` prints, and treat this one as leaked",
        );
    }
    let mut parts = vkey.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected `<name>+<key id>+<base64 key>`");
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("bad key name");
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the key id is not 8 hex digits");
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the key is not base64")?;
    if raw.len() != 33 || raw[0] != 0x01 {
        return Err("not an Ed25519 verifier key");
    }
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', 0x01]);
    h.update(&raw[1..]);
    if !hex::encode(&h.finalize()[..4]).eq_ignore_ascii_case(id) {
        return Err("the key id does not match the name and key");
    }
    Ok(())
}

/// Edit distance ≤ 2, for "did you mean" hints.
pub(super) fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.value {
        Value::Null | Value::Unsupported(_) | Value::Float => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, _, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod vkey_tests {
    use super::check_vkey;

    #[test]
    fn server_keys_are_checked_for_form_and_id() {
        // `gate serve key` output for a host named gate.example.com.
        let good = "gate/gate.example.com+569121fc+AYP8Fo7gNUPHxesDjW460kNOSlklOnqf4i3sX9/gay7X";
        assert_eq!(check_vkey(good), Ok(()));
        let cases = [
            ("", "expected"),
            ("gate/x", "expected"),
            ("gate/x+569121fc", "expected"),
            (&good.replace("+569121fc+", "+569121fd+"), "does not match"),
            (&good.replace("+569121fc+", "+56912+"), "8 hex"),
            (&good.replace("+AYP8", "+AoP8"), "Ed25519"),
            (&good.replace("AYP8Fo7", "AYP8Fo!"), "base64"),
            (
                &good.replace("gate/gate.example.com", "gate/other"),
                "does not match",
            ),
            (&good.replace("gate/gate.example.com", "gate /x"), "name"),
            (&good[..good.len() - 4], "Ed25519"),
            (
                "PRIVATE+KEY+gate/x+569121fc+AYP8Fo7gNUPHxesDjW460kNOSlklOnqf4i3sX9/gay7X",
                "private",
            ),
        ];
        for (k, why) in cases {
            let err = check_vkey(k).expect_err(k);
            assert!(err.contains(why), "{k}: {err}");
        }
    }
}
