//! The web page at `/`: sign in with a token, see pending requests with their context, approve
//! or deny. (Placeholder until the page lands.)

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::AppState;

/// Signed-in browser sessions.
#[derive(Default)]
pub struct Sessions {
    pub map: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", get(|| async { "gate server\n" }))
}
