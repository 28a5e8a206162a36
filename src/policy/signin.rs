//! The server policy's `server: { oidc: {...} }`: the identity provider people sign in to the
//! web page through (issue 14 §4). Only what the file says, checked for form; the sign-in
//! itself (discovery, code exchange, ID-token checks) is the server's (`server::web::oidc`).

use super::diag::Pos;

/// How the server authenticates itself at the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the client id and secret (the default).
    Basic,
    /// `client_secret_post`: both in the form body.
    Post,
}

/// `server.oidc`, as written. No secret here: `client_secret` is a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSignIn {
    /// Where `server:` was written (for tier and duplicate messages).
    pub pos: Pos,
    /// The provider's issuer exactly as its discovery document and ID tokens say it (an https
    /// URL; plain http only on a loopback host).
    pub issuer: String,
    pub client_id: String,
    /// A secret reference (`keyring:`, `env:`, `file:`); `None`: a public client (PKCE alone).
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
    /// Always holds `openid`.
    pub scopes: Vec<String>,
    /// Whether the page still offers sign-in with an API token (default true).
    pub token_signin: bool,
}

/// The identity keys the sign-in reads: a verified `email` claim, or the `sub` claim.
pub const IDENTITY_EMAIL: &str = "email";
pub const IDENTITY_SUB: &str = "oidc_sub";

/// Whether `s` looks like one email address: one `@` with something on each side, no spaces.
pub fn email_like(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
