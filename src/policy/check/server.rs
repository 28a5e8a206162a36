//! Checking the policy's top-level `server:`: settings only a gate server reads — today the
//! identity provider of the web page's sign-in ([`crate::policy::signin`]).

use super::Checker;
use super::values::secret_ref;
use crate::policy::ci::url_allowed;
use crate::policy::diag::Pos;
use crate::policy::signin::{ClientAuth, OidcSignIn};
use crate::policy::yaml::{Node, Value};

const OIDC_KEYS: &[&str] = &[
    "issuer",
    "client_id",
    "client_secret",
    "client_auth",
    "scopes",
    "token_signin",
];

impl Checker<'_> {
    /// The top-level `server: { oidc: {...} }`.
    pub(super) fn server(&mut self, v: &Node, kpos: Pos) -> Option<OidcSignIn> {
        let mut out = None;
        for (key, kp, val) in self.map(v, "`server`").unwrap_or(&[]) {
            match key.as_str() {
                "oidc" => out = self.oidc(val, kpos),
                _ => self.unknown_key(key, *kp, &["oidc"]),
            }
        }
        out
    }

    fn oidc(&mut self, v: &Node, pos: Pos) -> Option<OidcSignIn> {
        let mut s = OidcSignIn {
            pos,
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_auth: ClientAuth::Basic,
            scopes: vec!["openid".into(), "email".into()],
            token_signin: true,
        };
        let mut ok = true;
        for (key, kp, val) in self.map(v, "`server.oidc`")? {
            match key.as_str() {
                "issuer" => match self.str(val, "the issuer's URL") {
                    Some(u) => match url_allowed(&u) {
                        Ok(()) => s.issuer = u,
                        Err(why) => {
                            ok = false;
                            self.d.error_hint(
                                val.pos,
                                format!("`issuer`: `{u}` {why}"),
                                "write the issuer exactly as the provider's discovery document says, e.g. `https://accounts.google.com`",
                            );
                        }
                    },
                    None => ok = false,
                },
                "client_id" => match self.str(val, "the client id") {
                    Some(c) if !c.trim().is_empty() => s.client_id = c,
                    Some(_) => {
                        ok = false;
                        self.d.error(val.pos, "`client_id` must not be empty");
                    }
                    None => ok = false,
                },
                "client_secret" => {
                    let r = self
                        .str(val, "a secret reference")
                        .and_then(|r| secret_ref(r, &mut self.d, val.pos));
                    ok &= r.is_some();
                    s.client_secret = r;
                }
                "client_auth" => match self.str(val, "`basic` or `post`").as_deref() {
                    Some("basic" | "client_secret_basic") => s.client_auth = ClientAuth::Basic,
                    Some("post" | "client_secret_post") => s.client_auth = ClientAuth::Post,
                    Some(other) => {
                        ok = false;
                        self.d.error_hint(
                            val.pos,
                            format!("`client_auth: {other}` is not a way gate authenticates"),
                            "write `basic` (client_secret_basic, the default) or `post` (client_secret_post)",
                        );
                    }
                    None => ok = false,
                },
                "scopes" => {
                    let mut list = self.str_list(val, "scopes");
                    if let Some(bad) = list.iter().find(|x| x.is_empty() || x.contains(' ')) {
                        ok = false;
                        self.d
                            .error(val.pos, format!("scope `{bad}` is empty or has a space"));
                    }
                    // Without `openid` the provider issues no ID token: the sign-in would
                    // fail at every attempt, so it is added rather than left to fail.
                    if !list.iter().any(|x| x == "openid") {
                        list.insert(0, "openid".into());
                    }
                    s.scopes = list;
                }
                "token_signin" => match self.bool(val) {
                    Some(b) => s.token_signin = b,
                    None => ok = false,
                },
                _ => {
                    ok = false;
                    self.unknown_key(key, *kp, OIDC_KEYS);
                }
            }
        }
        let has = |k: &str| matches!(&v.value, Value::Map(m) if m.iter().any(|(x, _, _)| x == k));
        for (field, missing) in [
            ("issuer", s.issuer.is_empty()),
            ("client_id", s.client_id.is_empty()),
        ] {
            if missing && !has(field) {
                ok = false;
                self.d.error_hint(
                    v.pos,
                    format!("`server.oidc` needs `{field}`"),
                    "write `{ issuer: https://idp.example.com, client_id: gate, client_secret: \"file:/etc/gate/oidc-client-secret\" }`",
                );
            }
        }
        ok.then_some(s)
    }
}

impl Checker<'_> {
    /// The identity keys the web page's sign-in reads (`email`, `oidc_sub`), checked for form;
    /// other account kinds are the chat backends' business.
    pub(super) fn identity_account(&mut self, kind: &str, value: &str, pos: Pos) {
        use crate::policy::signin::{IDENTITY_EMAIL, IDENTITY_SUB, email_like};
        if kind == IDENTITY_EMAIL && !email_like(value) {
            self.d.error_hint(
                pos,
                format!("`email: {value}` is not an email address"),
                "write the address the identity provider's `email` claim carries, such as alice@example.com",
            );
        } else if kind == IDENTITY_SUB && value.trim().is_empty() {
            self.d.error_hint(
                pos,
                "`oidc_sub` must not be empty",
                "write the `sub` claim the identity provider issues for this person",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::check::check_file;
    use crate::policy::signin::ClientAuth;

    fn errors(yaml: &str) -> Vec<String> {
        match check_file(Path::new("p.yaml"), yaml) {
            Ok(_) => Vec::new(),
            Err(d) => d
                .into_iter()
                .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.message))
                .collect(),
        }
    }

    #[test]
    fn server_oidc_is_read_with_its_defaults() {
        let f = check_file(
            Path::new("p.yaml"),
            "version: 1\nserver:\n  oidc:\n    issuer: https://idp.example.com\n    client_id: gate\n    scopes: [email, profile]\n",
        )
        .unwrap();
        let o = f.server_oidc.unwrap();
        assert_eq!(o.issuer, "https://idp.example.com");
        assert_eq!(o.client_secret, None);
        assert_eq!(o.client_auth, ClientAuth::Basic);
        assert_eq!(o.scopes, ["openid", "email", "profile"]);
        assert!(o.token_signin);
    }

    #[test]
    fn bad_server_oidc_settings_are_reported_where_they_stand() {
        // (policy body after `version: 1`, an error it must report)
        let table: &[(&str, &str)] = &[
            (
                "server:\n  oidc: { issuer: \"http://idp.example.com\", client_id: g }\n",
                "3:19 `issuer`: `http://idp.example.com` must be https",
            ),
            (
                "server:\n  oidc: { issuer: \"https://i\", client_id: g, client_secret: hunter2 }\n",
                "3:61 secrets are never written into policy files",
            ),
            (
                "server:\n  oidc: { issuer: \"https://i\" }\n",
                "3:9 `server.oidc` needs `client_id`",
            ),
            (
                "server:\n  oidc: { issuer: \"https://i\", client_id: g, client_auth: jwt }\n",
                "3:59 `client_auth: jwt` is not a way gate authenticates",
            ),
            (
                "server:\n  oidc: { issuer: \"https://i\", client_id: g, scope: [openid] }\n",
                "3:46 unknown key `scope`",
            ),
            ("server:\n  tls: {}\n", "3:3 unknown key `tls`"),
            (
                "identities:\n  alice: { email: alice }\n",
                "3:19 `email: alice` is not an email address",
            ),
            (
                "identities:\n  alice: { oidc_sub: \"\" }\n",
                "3:22 `oidc_sub` must not be empty",
            ),
        ];
        for (body, want) in table {
            let got = errors(&format!("version: 1\n{body}"));
            assert!(
                got.iter().any(|g| g.starts_with(want)),
                "{body:?}: want {want:?}, got {got:?}"
            );
        }
    }
}
