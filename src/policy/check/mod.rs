//! Turns one file's YAML tree into a [`PolicyFile`], reporting every problem it finds (unknown
//! keys, wrong types, bad globs and regexes, bad durations) instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod ci;
mod rules;
mod server;
mod urls;
mod values;

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
        Err(yaml::YamlError::Syntax(e)) => {
            c.d.error(e.pos, format!("YAML syntax error: {}", e.message));
            return (None, c.d.items);
        }
        Err(yaml::YamlError::Refused(refused)) => {
            for r in refused {
                c.d.error_hint(r.pos, r.message(), r.hint());
            }
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

/// The `name` a rule node writes, when it is a string: a rule left out for its other problems
/// still claims its name.
fn written_name(rule: &Node) -> Option<At<String>> {
    let Value::Map(entries) = &rule.value else {
        return None;
    };
    // As `Checker::str` reads a name: a plain number or boolean is its text.
    entries.iter().find_map(|(k, _, v)| match &v.value {
        _ if k != "name" => None,
        Value::Str(s) => Some(at(s, v.pos)),
        Value::Int(i) => Some(at(&i.to_string(), v.pos)),
        Value::Bool(b) => Some(at(&b.to_string(), v.pos)),
        _ => None,
    })
}

pub(super) use values::similar;
use values::{at, check_vkey, secret_ref, to_json};

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
    "ci",
    "server",
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
                                if k == "slack" && !slack_member_id(&s) {
                                    self.d.error_hint(
                                        val.pos,
                                        format!("`slack: {s}` is not a Slack member id"),
                                        "copy it from the person's Slack profile (⋮ → Copy member ID): `U` or `W` and upper-case letters and digits, such as U024BE7LH",
                                    );
                                }
                                self.identity_account(k, &s, val.pos);
                                accounts.insert(k.clone(), s);
                            }
                        }
                        f.identities.push((at(name, *npos), accounts));
                    }
                }
                "backends" => {
                    for (name, npos, spec) in self.map(v, "`backends`").unwrap_or(&[]) {
                        match self.backend(spec) {
                            Some(b) => f.backends.push((at(name, *npos), b)),
                            None => f.dropped_backends.push(at(name, *npos)),
                        }
                    }
                }
                "audit" => self.audit(v, &mut f.audit),
                "ci" => {
                    f.ci_pos = Some(*kpos);
                    f.ci_issuers = self.ci_issuers(v);
                }
                "server" => f.server_oidc = self.server(v, *kpos),
                "rules" => {
                    for r in self.seq(v, "`rules`").unwrap_or(&[]) {
                        match self.rule(r) {
                            Some(rule) => f.rules.push(rule),
                            None => f.dropped_rules.extend(written_name(r)),
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
                "opaque_arguments" => {
                    out.opaque_arguments = self.decision(val).map(|d| At {
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
                        "opaque_arguments",
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
        let mut urls: Option<(Vec<String>, Pos)> = None;
        for (key, kpos, val) in map {
            if key == "kind" {
                kind = self.str(val, "a backend kind").map(|k| (k, val.pos));
                continue;
            }
            if key == "urls" {
                urls = Some((self.server_urls(val), *kpos));
                continue;
            }
            const KNOWN: &[&str] = &[
                "kind",
                "spool",
                "url",
                "key",
                "channel",
                "token",
                "api_url",
                "webhook",
                "signing_secret",
                "poll",
                "urls",
                "ca",
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
        // Taken out first: only a server backend has a `key`, `urls` or `ca`; elsewhere they
        // "do not apply".
        let server_key = (kind == "server").then(|| fields.remove("key")).flatten();
        let server_ca = (kind == "server").then(|| fields.remove("ca")).flatten();
        if kind != "server"
            && let Some((_, pos)) = &urls
        {
            self.d
                .error(*pos, format!("`urls` does not apply to a `{kind}` backend"));
        }
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
                let urls = match (fields.remove("url"), urls) {
                    (Some((url, _)), None) => Some(vec![url]),
                    (None, Some((list, _))) => Some(list),
                    (Some(_), Some((_, pos))) => {
                        self.d.error_hint(
                            pos,
                            "a `server` backend takes `url` or `urls`, not both",
                            "list every replica under `urls: [https://a.example.com, https://b.example.com]`",
                        );
                        None
                    }
                    (None, None) => {
                        self.d
                            .error(v.pos, "a `server` backend needs `url` (or `urls`)");
                        None
                    }
                };
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
                let urls = urls.filter(|u| !u.is_empty())?;
                BackendKind::Server {
                    url: urls[0].clone(),
                    urls,
                    key,
                    ca: server_ca.map(|(c, _)| PathBuf::from(c)),
                }
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
                    signing_secret: match fields.remove("signing_secret") {
                        Some((s, pos)) => Some(secret_ref(s, &mut self.d, pos)?),
                        None => None,
                    },
                    poll: match fields.remove("poll") {
                        None => None,
                        Some((p, pos)) => match humantime::parse_duration(&p) {
                            Ok(d) if d >= std::time::Duration::from_millis(100) => Some(d),
                            Ok(_) => {
                                self.d.error_hint(
                                    pos,
                                    format!("`poll: {p}` is shorter than 100ms"),
                                    "Slack allows about 50 `reactions.get` calls a minute; the default is 2s",
                                );
                                None
                            }
                            Err(e) => {
                                self.d.error_hint(
                                    pos,
                                    format!("`poll: {p}` is not a duration: {e}"),
                                    "write it like `2s` or `500ms`",
                                );
                                None
                            }
                        },
                    },
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
                        // Typed here, so `gate policy lint` names a bad sink's place and
                        // nothing later reads a sink from untyped JSON.
                        match serde_json::from_value::<super::SinkSpec>(to_json(s)) {
                            Ok(spec) => {
                                if let super::SinkSpec::Http { token: Some(t), .. } = &spec {
                                    secret_ref(t.clone(), &mut self.d, s.pos);
                                }
                                out.sinks.push(spec);
                            }
                            Err(e) => self.d.error_hint(
                                s.pos,
                                format!("bad sink: {e}"),
                                "kinds: server {url, ca?}, syslog {url, ca?, app_name?}, http {url, preset?, token?, labels?}, file {path}",
                            ),
                        }
                    }
                }
                _ => self.unknown_key(key, *kpos, &["path", "key", "sinks", "require_remote"]),
            }
        }
    }
}

/// A Slack member id as Slack writes them: `U` or `W`, then upper-case letters and digits.
/// The Slack backend counts reactions by these ids only, so a name here would match nobody.
fn slack_member_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('U' | 'W'))
        && (3..=32).contains(&s.len())
        && c.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}
