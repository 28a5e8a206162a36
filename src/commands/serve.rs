//! `gate serve`, its token management, and `gate login`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use serde_json::json;

use crate::cli::{ServeArgs, ServeCommand, ServeLogCommand, TokenCommand};
use crate::config::Env;
use crate::error::Error;
use crate::output::Output;
use crate::server::api::rfc3339;
use crate::server::auth::{self, Token};
use crate::server::store::{Database, Store};
use crate::server::{Clock, SystemClock};

pub(crate) fn db_path(env: &Env, db: Option<PathBuf>) -> PathBuf {
    db.unwrap_or_else(|| env.state_dir().join("server.db"))
}

/// `--db`: a SQLite file (default: server.db in the state directory) or a PostgreSQL URL. A
/// bad URL is a configuration error naming what is wrong in it, never its password.
fn database(env: &Env, db: Option<PathBuf>) -> Result<Database, Error> {
    Database::from_arg(db_path(env, db)).map_err(|e| Error::config(e.to_string()))
}

/// The database of an existing server: reading or revoking tokens never makes an empty one
/// (a mistyped `--db` would otherwise list "no tokens" and leave a stray file).
pub(crate) fn open_existing(
    env: &Env,
    db: Option<PathBuf>,
) -> Result<std::sync::Arc<dyn Store>, Error> {
    let db = database(env, db)?;
    if let Database::Sqlite(path) = &db
        && !path.exists()
    {
        return Err(Error::config_hint(
            format!("no server database at `{}`", path.display()),
            "name the server's database with `--db PATH` (as given to `gate serve`); `gate serve token issue` makes one",
        ));
    }
    open_db(&db)
}

pub(crate) fn open(env: &Env, db: Option<PathBuf>) -> Result<std::sync::Arc<dyn Store>, Error> {
    open_db(&database(env, db)?)
}

fn open_db(db: &Database) -> Result<std::sync::Arc<dyn Store>, Error> {
    db.open()
        .map_err(|e| Error::config(format!("cannot open the database `{db}`: {e}")))
}

pub fn serve(
    env: &Env,
    out: &Output,
    args: ServeArgs,
    cli_policy: &[PathBuf],
) -> Result<i32, Error> {
    // Every file the server and its subcommands make — the database and SQLite's `-wal` and
    // `-shm` beside it (which hold principal names and requests), its key, its log and the
    // log's side files — is for its own user only, whatever umask it was started with.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    match args.command {
        Some(ServeCommand::Token(t)) => return token(env, out, t, cli_policy),
        Some(ServeCommand::Key { db, key: k }) => return key(env, out, cli_policy, db, k),
        Some(ServeCommand::Log(ServeLogCommand::Export { db, output })) => {
            return export_log(env, out, db, output);
        }
        Some(ServeCommand::Secret(s)) => return crate::commands::secret::secret(env, out, s),
        None => {}
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls::TlsFiles { cert, key }),
        _ => None,
    };
    if !args.listen.ip().is_loopback() && tls.is_none() {
        out.warn(&format!(
            "listening on {} beyond loopback without TLS: tokens and decisions travel in clear; serve TLS with `--tls-cert` and `--tls-key`, or put a TLS-terminating proxy in front",
            args.listen
        ));
    }
    let policy = env.load_policy(cli_policy)?;
    if policy.files.is_empty() {
        out.warn("no policy files: every request needs one approval from anyone but the requester, and no groups exist");
    }
    let chat = chat_config(&policy, args.public_url)?;
    for (name, b) in &chat.backends {
        if let crate::server::chat::ChatBackend::Slack(s) = b
            && s.signing_secret.is_none()
        {
            out.warn(&format!(
                "backend `{name}` has no `signing_secret`: its messages get Approve / Deny buttons, but no click can be verified, so every click is refused; add the Slack app's signing secret (docs/slack.md, Server mode)"
            ));
        }
    }
    let db = database(env, args.db)?;
    if matches!(db, Database::Postgres(_)) && args.audit_log.is_some() {
        return Err(Error::config_hint(
            "`--audit-log` with a PostgreSQL `--db`: the server's log lives in the database, one chain for every replica",
            "leave `--audit-log` out; `gate serve log export --db URL -o FILE` writes the log for `gate log verify`",
        ));
    }
    let signin = signin_config(&policy, chat.public_url.as_deref())?;
    if let Some(si) = &signin {
        out.info(&format!(
            "the web page signs people in through {} (redirect URI {})",
            si.issuer(),
            si.redirect_uri()
        ));
    }
    let vault = crate::commands::secret::server_key(out, &db, &policy, args.secret_key_file)?;
    let opts = crate::server::ServeOptions {
        listen: args.listen,
        key: server_key_path(env, &policy, &db, args.key)?,
        db,
        audit_log: args
            .audit_log
            .unwrap_or_else(|| env.state_dir().join("server-audit.jsonl")),
        policy,
        limits: crate::server::listen::Limits {
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections,
        }
        .check()
        .map_err(|e| Error::Usage(format!("gate serve: {e}")))?,
        chat,
        tls,
        signin,
        vault,
    };
    let db = opts.db.to_string();
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    crate::server::serve(opts, |addr| {
        out.info(&format!("listening on {scheme}://{addr} (database {db})"));
    })
    .map_err(|e| Error::config(e.to_string()))?;
    out.info("stopped");
    Ok(0)
}

/// The server policy's Slack and Teams backends with their secrets resolved, and
/// `--public-url`. A secret that cannot be read is a configuration error naming the backend and
/// the reference (never the value).
fn chat_config(
    policy: &crate::policy::Policy,
    public_url: Option<String>,
) -> Result<crate::server::chat::ChatConfig, Error> {
    use crate::policy::BackendKind;
    use crate::server::chat::{ChatBackend, ChatConfig, SLACK_API, SlackBackend, TeamsBackend};
    let public_url = match public_url {
        None => None,
        Some(u) => match reqwest::Url::parse(&u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                Some(u.trim_end_matches('/').to_owned())
            }
            _ => {
                return Err(Error::Usage(format!(
                    "gate serve: `--public-url {u}` is not an absolute http(s) URL"
                )));
            }
        },
    };
    let resolve = |name: &str, field: &str, reference: &str| {
        crate::secrets::resolve(reference).map_err(|e| {
            Error::config(format!(
                "backend `{name}`: cannot read its `{field}` (`{reference}`): {e}"
            ))
        })
    };
    let mut cfg = ChatConfig {
        backends: Default::default(),
        public_url,
    };
    for (name, b) in &policy.backends {
        let chat = match b {
            BackendKind::Slack {
                channel,
                token,
                api_url,
                signing_secret,
                ..
            } => {
                let mut api_url = api_url.clone().unwrap_or_else(|| SLACK_API.to_owned());
                if !api_url.ends_with('/') {
                    api_url.push('/');
                }
                ChatBackend::Slack(SlackBackend {
                    channel: channel.clone(),
                    token: resolve(name, "token", token)?,
                    api_url,
                    signing_secret: signing_secret
                        .as_deref()
                        .map(|r| resolve(name, "signing_secret", r))
                        .transpose()?,
                })
            }
            BackendKind::Teams { webhook } => {
                if cfg.public_url.is_none() {
                    return Err(Error::config_hint(
                        format!(
                            "backend `{name}` is `kind: teams`: its cards link to this server's pages, so `gate serve` needs `--public-url`"
                        ),
                        "start it as `gate serve --public-url https://gate.example.com` (the address approvers open)",
                    ));
                }
                ChatBackend::Teams(TeamsBackend {
                    webhook: resolve(name, "webhook", webhook)?,
                })
            }
            _ => continue,
        };
        cfg.backends.insert(name.clone(), chat);
    }
    Ok(cfg)
}

/// The server policy's `server.oidc` with its client secret read: the web page's sign-in
/// through the identity provider. A secret that cannot be read, a missing `--public-url` or two
/// principals claiming one email or subject is a configuration error (78).
fn signin_config(
    policy: &crate::policy::Policy,
    public_url: Option<&str>,
) -> Result<Option<crate::server::web::oidc::SignIn>, Error> {
    let Some(spec) = &policy.server_oidc else {
        return Ok(None);
    };
    let secret = spec
        .client_secret
        .as_deref()
        .map(|r| {
            crate::secrets::resolve(r).map_err(|e| {
                Error::config(format!(
                    "`server.oidc`: cannot read its `client_secret` (`{r}`): {e}"
                ))
            })
        })
        .transpose()?;
    crate::server::web::oidc::SignIn::new(spec, secret, public_url, &policy.identities)
        .map(Some)
        .map_err(|e| Error::config(e.to_string()))
}

/// The key `gate serve` signs its decisions and its log's checkpoints with: `--key`, else
/// `<database>.key` beside its database — so the server's identity travels with its database.
/// Never a host's key: a server signing with the key of a host log (the policy's `audit.key`,
/// or the user's own) could cosign that host's checkpoints as if a witness had, so that is
/// refused (78).
fn server_key_path(
    env: &Env,
    policy: &crate::policy::Policy,
    db: &Database,
    key: Option<PathBuf>,
) -> Result<PathBuf, Error> {
    let server = match (key, db) {
        (Some(k), _) => k,
        (None, Database::Sqlite(path)) => path.with_extension("key"),
        // Replicas share one database and must sign with one key: it can't be made beside a URL.
        (None, Database::Postgres(_)) => {
            return Err(Error::config_hint(
                "a PostgreSQL `--db` needs `--key FILE`: the server's signing key, the same file on every replica",
                "make it once with `gate serve key --key FILE` and copy it to each replica (mode 0600)",
            ));
        }
    };
    let host = env.key_path(Some(policy));
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    if same(&server, &host) {
        return Err(Error::config_hint(
            format!(
                "the server's key would be the host signing key `{}`: a server never signs with a host's key",
                server.display()
            ),
            "give the server a key of its own with `gate serve --key FILE` (or let it make `<database>.key`)",
        ));
    }
    Ok(server)
}

/// `gate serve key`: the verifier key of the key `gate serve` signs with — the same policy
/// and database locate it, and it is made the same way when absent.
fn key(
    env: &Env,
    out: &Output,
    cli_policy: &[PathBuf],
    db: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<i32, Error> {
    let policy = env.load_policy(cli_policy)?;
    let signer = crate::server::load_key(&server_key_path(env, &policy, &database(env, db)?, key)?)
        .map_err(|e| Error::config(e.to_string()))?;
    out.data(&signer.verifier().to_vkey());
    Ok(0)
}

/// `gate serve log export`: the server's log kept in a PostgreSQL database, as the JSON lines
/// and signed checkpoint `gate log verify` reads. The records and the checkpoint are read
/// together, so an export taken while replicas append still verifies.
fn export_log(
    env: &Env,
    out: &Output,
    db: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Result<i32, Error> {
    use std::io::Write;
    let db = database(env, db)?;
    let Database::Postgres(url) = &db else {
        return Err(Error::config_hint(
            format!("`{db}` is a SQLite database: its server's log is a file already"),
            "verify that file (`gate serve --audit-log`, default server-audit.jsonl in the state directory) with `gate log verify FILE`",
        ));
    };
    let pg = crate::server::store::PgStore::open(url)
        .map_err(|e| Error::config(format!("cannot open the database `{db}`: {e}")))?;
    let failed = |e: std::io::Error| Error::config(format!("cannot write the export: {e}"));
    let checkpoint = match &output {
        Some(path) => {
            let mut w = std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| {
                        Error::config(format!("cannot create `{}`: {e}", path.display()))
                    })?,
            );
            let cp = pg
                .export_log(|line| writeln!(w, "{line}"))
                .map_err(|e| Error::config(e.to_string()))?;
            w.flush().map_err(failed)?;
            w.get_ref().sync_all().map_err(failed)?;
            if let Some(cp) = &cp {
                std::fs::write(crate::audit::log::checkpoint_path(path), cp).map_err(failed)?;
            }
            cp
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            let cp = pg
                .export_log(|line| writeln!(w, "{line}"))
                .map_err(|e| Error::config(e.to_string()))?;
            match w.flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(failed(e)),
                _ => {}
            }
            cp
        }
    };
    if checkpoint.is_none() {
        return Err(Error::config(format!(
            "the database `{db}` holds no server log yet: `gate serve --db` starts one"
        )));
    }
    if let Some(path) = &output {
        out.info(&format!(
            "wrote the server's log to {} and its signed checkpoint to {}",
            path.display(),
            crate::audit::log::checkpoint_path(path).display()
        ));
    }
    Ok(0)
}

fn token(env: &Env, out: &Output, cmd: TokenCommand, cli_policy: &[PathBuf]) -> Result<i32, Error> {
    match cmd {
        TokenCommand::Issue {
            db,
            principal,
            expires,
        } => {
            if principal.trim().is_empty() || principal.chars().any(char::is_whitespace) {
                return Err(Error::Usage(
                    "`--principal` must be a name without spaces".into(),
                ));
            }
            // A principal in none of the server policy's groups can ask, never approve: say so
            // now rather than at the first refused approval.
            if let Ok(policy) = env.load_policy(cli_policy)
                && !policy.files.is_empty()
                && !policy.groups.values().any(|m| m.contains(&principal))
            {
                out.warn(&format!(
                    "`{principal}` is in no group of the server's policy: it can ask for approval, not approve"
                ));
            }
            let store = open(env, db)?;
            let expires_ms = expires.map(|d| SystemClock.now_ms() + d.as_millis() as i64);
            let (row, secret) =
                auth::issue(store.as_ref(), &principal, expires_ms, SystemClock.now_ms())
                    .map_err(|e| Error::config(e.to_string()))?;
            out.info(&format!(
                "token {} for {principal}{}; it is shown only now",
                row.id,
                expires_ms
                    .map(|e| format!(", valid until {}", rfc3339(e)))
                    .unwrap_or_default()
            ));
            out.data(secret.expose());
            Ok(0)
        }
        TokenCommand::List { db, json } => {
            let store = open_existing(env, db)?;
            let rows = store
                .token_list()
                .map_err(|e| Error::config(e.to_string()))?;
            let now = SystemClock.now_ms();
            let state = |r: &crate::server::store::TokenRow| {
                if r.revoked_ms.is_some() {
                    "revoked"
                } else if r.expires_ms.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                }
            };
            if json {
                for r in &rows {
                    out.data(&json!({
                        "id": r.id, "principal": r.principal, "state": state(r),
                        "created": rfc3339(r.created_ms), "expires": r.expires_ms.map(rfc3339), "revoked": r.revoked_ms.map(rfc3339),
                    }).to_string());
                }
            } else {
                let mut lines = vec![format!(
                    "{:<10} {:<16} {:<8} {:<25} EXPIRES",
                    "ID", "PRINCIPAL", "STATE", "CREATED"
                )];
                for r in &rows {
                    lines.push(format!(
                        "{:<10} {:<16} {:<8} {:<25} {}",
                        r.id,
                        r.principal,
                        state(r),
                        rfc3339(r.created_ms),
                        r.expires_ms.map(rfc3339).unwrap_or_else(|| "never".into())
                    ));
                }
                out.data(&lines.join("\n"));
            }
            Ok(0)
        }
        TokenCommand::Revoke { db, id } => {
            let store = open_existing(env, db)?;
            if store
                .token_revoke(&id, SystemClock.now_ms())
                .map_err(|e| Error::config(e.to_string()))?
            {
                out.info(&format!("revoked token {id}"));
                Ok(0)
            } else {
                // Not a configuration error: the id names nothing to revoke (exit 1).
                out.error(&format!("no active token `{id}`"));
                out.hint("`gate serve token list` shows the ids");
                Ok(1)
            }
        }
    }
}

/// `gate login URL`: check the token against the server, then store it.
pub fn login(env: &Env, out: &Output, url: &str) -> Result<i32, Error> {
    let secret = if std::io::stdin().is_terminal() {
        dialoguer::Password::new()
            .with_prompt(format!("token for {url}"))
            .interact()
            .map_err(|e| Error::Usage(format!("cannot read the token: {e}")))?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::Usage(format!("cannot read the token from stdin: {e}")))?;
        s.trim().to_owned()
    };
    if secret.is_empty() {
        return Err(Error::Usage(
            "no token given (pipe it in, or type it at the prompt)".into(),
        ));
    }
    let token = Token::new(secret);
    let trust = env.trust();
    let client = crate::approval::server::Client::with_trust(url, token.clone(), &trust)
        .map_err(|e| Error::config(e.to_string()))?;
    let me = client.me().map_err(|e| match e {
        crate::approval::server::ClientError::Unauthorized(m) => Error::Denied {
            message: format!("{url} refused the token: {m}"),
            hint: None,
        },
        e @ crate::approval::server::ClientError::Tls { .. } => Error::NoDecision {
            message: e.to_string(),
            hint: Some(crate::approval::server::TLS_HINT.into()),
        },
        other => Error::NoDecision {
            message: other.to_string(),
            hint: Some("check the URL and that `gate serve` runs there".into()),
        },
    })?;
    let principal = me["principal"].as_str().unwrap_or("?").to_owned();
    let server_key = crate::approval::server::server_key(url, &trust);
    match crate::secrets::store(&env.config_dir(), url, &token).map_err(Error::config)? {
        crate::secrets::Stored::Keyring => out.info(&format!(
            "logged in to {url} as {principal}; the token is in the OS keyring"
        )),
        crate::secrets::Stored::File(p) => {
            out.warn("no usable OS keyring here (typical for CI and containers)");
            out.info(&format!(
                "logged in to {url} as {principal}; the token is in {} (mode 0600)",
                p.display()
            ));
        }
    }
    match server_key {
        Ok(k) => {
            out.info(&format!(
                "{url} signs its decisions with the key below; check it with the server's operator \
                 (`gate serve key` there) and pin it in the policy:"
            ));
            let ca = match &env.ca {
                Some(p) => format!(", ca: \"{}\"", p.display()),
                None => String::new(),
            };
            out.info(&format!(
                "  backends: {{ team: {{ kind: server, url: \"{url}\", key: \"{k}\"{ca} }} }}"
            ));
            out.data(&k);
        }
        Err(e) => out.warn(&format!(
            "could not fetch the server's decision key: {e}; `gate serve key` on the server prints it"
        )),
    }
    Ok(0)
}
