//! Why a sign-in was refused, and what the page says and answers for each.

use axum::http::StatusCode;

use crate::ci::jwt::JwtError;

/// Why a sign-in was refused: each becomes a page with its status, and no session.
#[derive(Debug)]
#[must_use]
pub enum Refused {
    MissingState,
    UnknownState,
    Expired,
    OtherBrowser,
    Repeated(String),
    MixUp,
    Provider(String),
    MissingCode,
    CodeRejected(String),
    NoIdToken,
    IdToken(JwtError),
    Azp,
    NonceMissing,
    NonceMismatch,
    EmailUnverified(String),
    NotKnown(String),
    BadReturnTo,
    Unreachable(String),
    Internal(String),
}

impl Refused {
    pub fn status(&self) -> StatusCode {
        use Refused::*;
        match self {
            MissingState | MissingCode | Repeated(_) | BadReturnTo => StatusCode::BAD_REQUEST,
            UnknownState | Expired | OtherBrowser | MixUp | Provider(_) | CodeRejected(_)
            | NoIdToken | IdToken(_) | Azp | NonceMissing | NonceMismatch => {
                StatusCode::UNAUTHORIZED
            }
            EmailUnverified(_) | NotKnown(_) => StatusCode::FORBIDDEN,
            Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        use Refused::*;
        let again = "Sign in again from the gate page.";
        match self {
            MissingState => format!("This sign-in answer has no `state`. {again}"),
            UnknownState => format!(
                "This sign-in answer is unknown or was already used (each works once). {again}"
            ),
            Expired => format!("This sign-in took longer than ten minutes. {again}"),
            OtherBrowser => format!(
                "This sign-in was started in another browser: a sign-in link works only where it was started. {again}"
            ),
            Repeated(p) => format!("This sign-in answer names `{p}` more than once."),
            MixUp => format!(
                "This sign-in answer names another identity provider than the one asked. {again}"
            ),
            Provider(e) => format!("The identity provider refused the sign-in: {e}. {again}"),
            MissingCode => format!("This sign-in answer has no `code`. {again}"),
            CodeRejected(e) => {
                format!("The identity provider rejected the sign-in code ({e}). {again}")
            }
            NoIdToken => "The identity provider answered without an ID token.".into(),
            IdToken(e) => format!("The identity provider's answer is not acceptable: {e}."),
            Azp => "The ID token was issued to another client (`azp`).".into(),
            NonceMissing => "The ID token carries no `nonce`.".into(),
            NonceMismatch => {
                "The ID token's `nonce` is not the one this sign-in sent: it belongs to another sign-in."
                    .into()
            }
            EmailUnverified(e) => format!(
                "Your identity provider has not verified the address {e}, so it cannot be matched to a gate approver."
            ),
            NotKnown(who) => format!(
                "You signed in as {who}, who is not a known approver: no principal's `email` or `oidc_sub` under `identities:` in the server's policy matches. Ask the server's operator to add you."
            ),
            BadReturnTo => {
                "After sign-in the page can only go to a path on this server (such as `/`).".into()
            }
            Unreachable(why) => format!(
                "The identity provider cannot be reached just now ({why}); try again shortly."
            ),
            Internal(why) => format!("The sign-in failed on the server: {why}"),
        }
    }
}
