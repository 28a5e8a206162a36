//! A PostgreSQL connection URL that never shows its password: `Debug`, `Display` and every
//! error message built through [`PgUrl::scrub`] print `postgres://user:***@host/db`.

use std::str::FromStr;

use super::StoreError;

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

#[derive(Clone)]
pub struct PgUrl {
    config: postgres::Config,
    redacted: String,
    password: Option<String>,
}

impl PgUrl {
    /// Parses a `postgres://` or `postgresql://` URL; an error names what is wrong in it (with
    /// the password hidden).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let redacted = redact(url);
        let bad = |why: String| StoreError::Config(format!("bad database URL `{redacted}`: {why}"));
        if !is_postgres_url(url) {
            return Err(bad(
                "it must start with `postgres://` or `postgresql://`".into()
            ));
        }
        let password = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.password().map(percent_decode))
            .or_else(|| query_value(url, "password"));
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| bad(scrub_with(&e.to_string(), password.as_deref())))?;
        if config.get_hosts().is_empty() {
            return Err(bad(
                "it names no host (write `postgres://USER@HOST:PORT/DATABASE`)".into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(bad(
                "it names no user (write `postgres://USER@HOST:PORT/DATABASE`)".into(),
            ));
        }
        // This build speaks to PostgreSQL without TLS: a URL that asks for it must not be
        // quietly downgraded to a clear-text connection.
        if matches!(config.get_ssl_mode(), postgres::config::SslMode::Require) {
            return Err(bad(
                "`sslmode=require`: this gate connects to PostgreSQL without TLS; reach the database over a private network or a local tunnel and write `sslmode=disable`".into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        config.ssl_mode(postgres::config::SslMode::Disable);
        Ok(PgUrl {
            config,
            redacted,
            password,
        })
    }

    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// `text` with this URL's password (if any) replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        scrub_with(text, self.password.as_deref())
    }
}

fn scrub_with(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_owned(),
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.redacted)
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// The URL with the password of its user part and of a `password=` parameter replaced by `***`.
/// Works on text that is not a valid URL too, so even a malformed `--db` is shown safely.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map(|i| rest_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let user = userinfo[..colon].to_owned();
                out.replace_range(rest_start..rest_start + at, &format!("{user}:***"));
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

fn query_value(url: &str, key: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://gate:s3cret@db:5432/gate",
                "postgres://gate:***@db:5432/gate",
            ),
            (
                "postgresql://gate@db/gate?password=s3cret&application_name=x",
                "postgresql://gate@db/gate?password=***&application_name=x",
            ),
            ("postgres://gate@db/gate", "postgres://gate@db/gate"),
            (
                "postgres://gate:p%40ss@db/gate",
                "postgres://gate:***@db/gate",
            ),
        ] {
            assert_eq!(redact(url), shown);
            let u = PgUrl::parse(url).unwrap();
            assert_eq!(u.to_string(), shown);
            assert!(!format!("{u:?}").contains("s3cret"));
        }
        let u = PgUrl::parse("postgres://gate:p%40ss@db/gate").unwrap();
        assert_eq!(u.scrub("auth for p@ss failed"), "auth for *** failed");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, why) in [
            ("postgres://gate:s3cret@/gate", "names no host"),
            (
                "postgres://gate:s3cret@db:notaport/gate",
                "bad database URL",
            ),
            ("postgres://db/gate?password=s3cret", "names no user"),
            (
                "postgres://gate:s3cret@db/gate?sslmode=require",
                "without TLS",
            ),
        ] {
            let e = PgUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
    }
}
