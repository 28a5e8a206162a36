//! `urls:` of a `kind: server` backend: the addresses of replicas that share one database, each
//! an absolute http(s) URL, none twice. A bad entry is a diagnostic at its own place.

use super::Checker;
use crate::policy::yaml::{Node, Value};

impl Checker<'_> {
    /// The entries of `urls:` that are usable; each one that is not is reported where it is.
    pub(super) fn server_urls(&mut self, v: &Node) -> Vec<String> {
        let Value::Seq(items) = &v.value else {
            self.wrong_type(v, "a list of server URLs");
            return Vec::new();
        };
        if items.is_empty() {
            self.d.error_hint(
                v.pos,
                "`urls` is empty",
                "list the address of every replica: `urls: [https://a.example.com, https://b.example.com]`",
            );
        }
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let Some(u) = self.str(item, "a server URL") else {
                continue;
            };
            match reqwest::Url::parse(&u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                    let u = u.trim_end_matches('/').to_owned();
                    if out.contains(&u) {
                        self.d
                            .error(item.pos, format!("`{u}` is listed twice in `urls`"));
                    } else {
                        out.push(u);
                    }
                }
                Ok(_) => self.d.error_hint(
                    item.pos,
                    format!("`{u}` is not an http(s) URL with a host"),
                    "write it like `https://gate-a.example.com`",
                ),
                Err(e) => self.d.error_hint(
                    item.pos,
                    format!("`{u}` is not a URL: {e}"),
                    "write it like `https://gate-a.example.com`",
                ),
            }
        }
        out
    }
}
