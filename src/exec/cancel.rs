//! The stop request before the command starts: termination signals (Ctrl-C, SIGTERM, SIGHUP,
//! SIGQUIT) turned into a flag from the start of a run until [`super::Forwarder`] takes the
//! signals over. A signal in that span cancels a wait for approval, and one that arrives after
//! the decision but before the start keeps the command from starting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The flag and the handlers that set it; dropping it removes the handlers.
pub struct Cancel {
    pub flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Cancel {
    pub fn register() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let ids = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGQUIT,
        ]
        .into_iter()
        .filter_map(|sig| signal_hook::flag::register(sig, Arc::clone(&flag)).ok())
        .collect();
        Cancel { flag, ids }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
