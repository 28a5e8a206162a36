//! Recording a run: the decision before anything starts, then exactly one way out — the
//! [`Recorder`] writes the result of a command that ran, and settles every exit before that
//! ([`NotRun`]) with the record it calls for and the error gate exits with.

use std::time::{Duration, Instant};

use crate::audit::log::Placed;
use crate::audit::sinks::Sink;
use crate::audit::{AuditError, AuditLog, Body, DecisionInfo, ResultInfo};
use crate::config::Env;
use crate::error::Error;
use crate::exec::{ExecError, Finished};
use crate::output::Output;
use crate::policy::{Classification, Decision, Policy};
use crate::request::Request;

/// How long a run waits for its decision record to reach the sinks before it starts.
const DECISION_DELIVERY: Duration = Duration::from_secs(2);
/// After a sink fails, runs that need not deliver skip it for this long.
const SINK_QUIET: Duration = Duration::from_secs(30);
/// How long it waits for the result record after the command ended.
const RESULT_DELIVERY: Duration = Duration::from_secs(2);

/// Where this run's records go, checked before anyone is asked to decide.
pub struct Audit {
    log: AuditLog,
    sinks: Vec<Box<dyn Sink>>,
    require_remote: bool,
}

impl Audit {
    /// Opens the log and the sinks the policy names. A decision someone must make (confirm,
    /// approve) first checks that the log is writable, so nobody approves what cannot be
    /// recorded; an allowed or denied command's append is its own check.
    pub fn open(env: &Env, policy: &Policy, class: &Classification) -> Result<Self, Error> {
        let log = env.audit_log(Some(policy));
        if matches!(class.decision, Decision::Confirm | Decision::Approve) {
            log.check_writable()?;
        }
        let sinks = crate::audit::sinks::build(&|url| env.server_token(url), &policy.audit_sinks)
            .map_err(Error::config)?;
        if policy.require_remote && sinks.is_empty() {
            return Err(Error::config(
                "`audit.require_remote: true` but no `audit.sinks` are configured: nothing could ever run",
            ));
        }
        Ok(Audit {
            log,
            sinks,
            require_remote: policy.require_remote,
        })
    }

    /// Appends the decision — it is on disk before anything runs — and ships it within a
    /// bounded wait. The result goes to the same log, right after a decision still in place,
    /// or nowhere: never into a new chain.
    pub fn record_decision<'o>(
        mut self,
        out: &'o Output,
        req: &Request,
        decision: DecisionInfo,
    ) -> Result<Recorder<'o>, Error> {
        let (_, decided) = self.log.append_placed(vec![Body::Decision {
            request: Box::new(req.view.clone()),
            decision: Box::new(decision),
        }])?;
        // A run that must deliver always tries; others skip a sink that just failed, so a host
        // whose audit server is down is not slowed by it on every command.
        let quiet = (!self.require_remote).then_some(SINK_QUIET);
        let shipped = ship(out, &self.log, &mut self.sinks, DECISION_DELIVERY, quiet);
        Ok(Recorder {
            out,
            log: self.log,
            sinks: self.sinks,
            request_id: req.id().to_owned(),
            decided,
            delivered_as_required: shipped || !self.require_remote,
        })
    }
}

/// Why a command whose decision is recorded did not run, or did not start.
#[derive(Debug)]
pub enum NotRun {
    /// The decision said no; its record (`run: false`) is the whole story.
    Refused(Error),
    /// `audit.require_remote`, and the decision did not reach every sink.
    Undelivered,
    /// A payload file changed after the decision: the approval is void.
    PayloadChanged(String),
    /// The program is not there, or not executable.
    Unresolved(ExecError),
    /// Signal forwarding could not be set up, so the command could not be supervised.
    NoForwarding(std::io::Error),
    /// A signal asked gate to stop after the decision, before the start.
    Cancelled,
    /// The program could not be started.
    StartFailed(ExecError),
    /// The approving server's secrets could not be fetched (the reason holds no value).
    Release(String),
}

impl NotRun {
    /// The result record this exit leaves (none when the decision record says it all), what
    /// happened to the command in words (for a result that could not be recorded), and the
    /// error gate exits with.
    fn settle(self) -> (Option<ResultInfo>, &'static str, Error) {
        let not_run = |error: String| ResultInfo {
            exit_code: None,
            signal: None,
            duration_ms: 0,
            error: Some(error),
        };
        let failed = |e: &ExecError| ResultInfo {
            exit_code: Some(e.exit_code()),
            signal: None,
            duration_ms: 0,
            error: Some(e.to_string()),
        };
        let exec = |e: ExecError| Error::Exec {
            message: e.to_string(),
            code: e.exit_code(),
        };
        match self {
            NotRun::Refused(error) => (None, "nothing ran", error),
            NotRun::Undelivered => (
                Some(not_run(
                    "not run: the decision could not be delivered to every audit sink".into(),
                )),
                "nothing ran",
                Error::NoDecision {
                    message: "the policy requires a remote copy of the decision before the command starts (`audit.require_remote`), and delivery failed".into(),
                    hint: Some("nothing ran; `gate log push` delivers pending records once the sink is back".into()),
                },
            ),
            NotRun::PayloadChanged(file) => (
                Some(not_run(format!(
                    "payload file `{file}` changed after the decision"
                ))),
                "nothing ran",
                Error::Denied {
                    message: format!("`{file}` changed after it was approved; the approval is void"),
                    hint: Some("run the command again to ask for a new approval".into()),
                },
            ),
            NotRun::Unresolved(e) => (Some(failed(&e)), "nothing ran", exec(e)),
            NotRun::NoForwarding(e) => {
                let message = format!("cannot set up signal forwarding: {e}");
                (
                    Some(not_run(message.clone())),
                    "nothing ran",
                    Error::config(message),
                )
            }
            NotRun::Cancelled => (
                Some(not_run(
                    "cancelled by a signal before the command started".into(),
                )),
                "nothing ran",
                Error::NoDecision {
                    message: "cancelled before the command started".into(),
                    hint: None,
                },
            ),
            NotRun::Release(why) => (
                Some(not_run(format!("not run: {why}"))),
                "nothing ran",
                Error::NoDecision {
                    message: why,
                    hint: Some(
                        "nothing ran: the command runs only with the secrets its approval releases; ask again"
                            .into(),
                    ),
                },
            ),
            NotRun::StartFailed(e) => (
                Some(failed(&e)),
                "the command could not be started",
                exec(e),
            ),
        }
    }
}

/// Finishes a run whose decision is recorded. A result that cannot be recorded is reported,
/// and never changes the exit status: before the start it is the reason nothing ran, after it
/// the command's own.
pub struct Recorder<'o> {
    out: &'o Output,
    log: AuditLog,
    sinks: Vec<Box<dyn Sink>>,
    request_id: String,
    decided: Placed,
    /// False when `audit.require_remote` asked for a remote copy of the decision that did not
    /// get there: then nothing may start.
    pub delivered_as_required: bool,
}

impl Recorder<'_> {
    /// Settles an exit before (or instead of) the command's run: records what it calls for
    /// and returns the error to exit with.
    pub fn stop(&mut self, why: NotRun) -> Error {
        // The sinks have just failed to take the decision: its result waits for the next run
        // or `gate log push` instead of a second bounded wait.
        let ship = !matches!(why, NotRun::Undelivered);
        let (result, what, error) = why.settle();
        if let Some(result) = result {
            self.result(result, what, ship);
        }
        error
    }

    /// Records how the command ended; returns gate's exit status (the command's own).
    pub fn finish(&mut self, done: &Finished) -> i32 {
        let what = match done.signal {
            Some(sig) => format!(
                "the command ran and was killed by signal {sig} (status {})",
                done.status()
            ),
            None => format!("the command ran and exited with status {}", done.status()),
        };
        self.result(
            ResultInfo {
                exit_code: done.exit_code,
                signal: done.signal,
                duration_ms: done.duration.as_millis() as u64,
                error: None,
            },
            &what,
            true,
        );
        done.status()
    }

    fn result(&mut self, result: ResultInfo, what: &str, ship_it: bool) {
        let body = Body::Result {
            request_id: self.request_id.clone(),
            result,
        };
        match self.log.append_after(&self.decided, vec![body]) {
            Ok(_) if !ship_it => {}
            Ok(_) => {
                ship(
                    self.out,
                    &self.log,
                    &mut self.sinks,
                    RESULT_DELIVERY,
                    Some(SINK_QUIET),
                );
            }
            Err(e) => unrecorded(self.out, what, &self.decided, &e),
        }
    }
}

/// Delivers pending records to every sink within `limit`; true when nothing is left pending.
/// What could not be delivered stays pending for the next run or `gate log push`.
fn ship(
    out: &Output,
    log: &AuditLog,
    sinks: &mut [Box<dyn Sink>],
    limit: Duration,
    quiet_after_failure: Option<Duration>,
) -> bool {
    if sinks.is_empty() {
        return true;
    }
    let reports = crate::audit::sinks::push_with(
        log.path(),
        sinks,
        Instant::now() + limit,
        quiet_after_failure,
    );
    let mut all = true;
    for r in reports.iter().filter(|r| r.pending > 0) {
        all = false;
        out.warn(&format!(
            "{} record{} not yet delivered to sink {}{}; `gate log push` delivers them",
            r.pending,
            if r.pending == 1 { "" } else { "s" },
            r.sink,
            r.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    all
}

/// Says, loudly, that a result record was lost: what happened to the command (`what`), why
/// the log would not take the record, and which decision stays without its result.
fn unrecorded(out: &Output, what: &str, decided: &Placed, e: &AuditError) {
    out.error(&format!(
        "{what}, but its result could not be recorded: {e}"
    ));
    out.hint(&format!(
        "its decision (seq {} of log {}) stands without a result; `gate log verify` on the log that holds it shows that",
        decided.seq, decided.log_id
    ));
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::audit::record::{Kind, Record};
    use crate::identity::Identity;
    use crate::output::ColorChoice;
    use crate::request::NewRequest;

    struct Run {
        _dir: tempfile::TempDir,
        log: PathBuf,
        out: Output,
        req: Request,
    }

    fn setup() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let req = Request::new(NewRequest {
            argv: vec!["true".into()],
            cwd: dir.path().to_owned(),
            executable: None,
            requester: Identity::current(),
            env: Default::default(),
            context_env: &[],
            reason: None,
            redact: &|s| s.to_owned(),
        });
        Run {
            log: dir.path().join("audit.jsonl"),
            _dir: dir,
            out: Output::new(ColorChoice::Never, true, true, 0, false),
            req,
        }
    }

    fn decision() -> DecisionInfo {
        DecisionInfo {
            decision: "allow".into(),
            outcome: "allowed".into(),
            run: true,
            rules: Vec::new(),
            by_default: true,
            required: None,
            approvals: Vec::new(),
            denied_by: None,
            message: None,
            commands: Vec::new(),
            opaque: None,
            statement: None,
            release: Vec::new(),
            reuse: None,
        }
    }

    impl Run {
        fn recorder(&self) -> Recorder<'_> {
            let audit = Audit {
                log: AuditLog::new(&self.log),
                sinks: Vec::new(),
                require_remote: false,
            };
            audit
                .record_decision(&self.out, &self.req, decision())
                .unwrap()
        }

        fn records(&self) -> Vec<Record> {
            crate::audit::log::read_all(&self.log)
                .unwrap()
                .into_iter()
                .map(Result::unwrap)
                .collect()
        }
    }

    #[test]
    fn every_exit_before_the_start_is_settled_with_its_record_and_status() {
        let not_found = || ExecError::NotFound("nope".into());
        let not_executable = || ExecError::NotExecutable("/x".into());
        // (exit, exit status, the result record's exit_code and error; None: no result record)
        type Row = (NotRun, i32, Option<(Option<i32>, &'static str)>);
        let table: Vec<Row> = vec![
            (
                NotRun::Refused(Error::Denied {
                    message: "denied by rule `x`".into(),
                    hint: None,
                }),
                77,
                None,
            ),
            (
                NotRun::Undelivered,
                75,
                Some((
                    None,
                    "not run: the decision could not be delivered to every audit sink",
                )),
            ),
            (
                NotRun::PayloadChanged("p.json".into()),
                77,
                Some((None, "payload file `p.json` changed after the decision")),
            ),
            (
                NotRun::Unresolved(not_found()),
                127,
                Some((Some(127), "`nope`: command not found")),
            ),
            (
                NotRun::NoForwarding(std::io::Error::other("no signalfd")),
                78,
                Some((None, "cannot set up signal forwarding: no signalfd")),
            ),
            (
                NotRun::Cancelled,
                75,
                Some((None, "cancelled by a signal before the command started")),
            ),
            (
                NotRun::StartFailed(not_executable()),
                126,
                Some((Some(126), "`/x`: permission denied (not executable)")),
            ),
        ];
        for (why, status, result) in table {
            let what = format!("{why:?}");
            let run = setup();
            let error = run.recorder().stop(why);
            assert_eq!(error.exit_code(), status, "{what}");
            let records = run.records();
            // genesis, the decision, and the result if the exit calls for one.
            let last = records.last().unwrap();
            match result {
                None => {
                    assert_eq!(records.len(), 2, "{what}");
                    assert_eq!(last.kind, Kind::Decision, "{what}");
                }
                Some((exit_code, message)) => {
                    assert_eq!(records.len(), 3, "{what}");
                    assert_eq!(last.kind, Kind::Result, "{what}");
                    assert_eq!(last.request_id.as_deref(), Some(run.req.id()), "{what}");
                    let r = last.result.as_ref().unwrap();
                    assert_eq!(r.exit_code, exit_code, "{what}");
                    assert_eq!(r.signal, None, "{what}");
                    assert_eq!(r.duration_ms, 0, "{what}");
                    assert_eq!(r.error.as_deref(), Some(message), "{what}");
                }
            }
        }
    }

    #[test]
    fn a_finished_command_is_recorded_and_its_status_returned() {
        let run = setup();
        let status = run.recorder().finish(&Finished {
            exit_code: None,
            signal: Some(15),
            duration: Duration::from_millis(12),
        });
        assert_eq!(status, 143);
        let records = run.records();
        let r = records.last().unwrap().result.clone().unwrap();
        assert_eq!(
            r,
            ResultInfo {
                exit_code: None,
                signal: Some(15),
                duration_ms: 12,
                error: None
            }
        );
    }

    #[test]
    fn a_result_the_log_will_not_take_never_changes_the_exit() {
        let run = setup();
        let mut recorder = run.recorder();
        // The log the decision went to is gone: the result has nowhere to go.
        std::fs::remove_file(&run.log).unwrap();
        let error = recorder.stop(NotRun::Cancelled);
        assert_eq!(error.exit_code(), 75);
        assert_eq!(error.to_string(), "cancelled before the command started");
        assert!(!run.log.exists(), "the result must not start a new chain");
    }

    /// `audit.require_remote`: only a decision that reached every sink may start anything.
    #[test]
    fn a_required_copy_that_did_not_arrive_holds_the_start() {
        let run = setup();
        let recorder = |copy: PathBuf, require_remote: bool| {
            let spec = crate::policy::SinkSpec::File { path: copy.clone() };
            let audit = Audit {
                log: AuditLog::new(&run.log),
                sinks: crate::audit::sinks::build(&|_| None, &[spec]).unwrap(),
                require_remote,
            };
            audit
                .record_decision(&run.out, &run.req, decision())
                .unwrap()
                .delivered_as_required
        };
        let dir = run.log.parent().unwrap().to_owned();
        let unreachable = dir.join("no-such-dir").join("copy.jsonl");
        assert!(!recorder(unreachable.clone(), true));
        // Not required: a sink that is down keeps its records pending and the run goes on.
        assert!(recorder(unreachable, false));
        let copy = dir.join("copy.jsonl");
        assert!(recorder(copy.clone(), true));
        assert!(
            std::fs::read_to_string(copy)
                .unwrap()
                .contains(run.req.id())
        );
    }

    /// The result of a run stopped for an undelivered decision is not pushed after it (the
    /// sinks just failed; `gate log push` delivers it); every other result is.
    #[test]
    fn only_an_undelivered_decision_keeps_its_result_home() {
        for (why, shipped) in [(NotRun::Undelivered, false), (NotRun::Cancelled, true)] {
            let run = setup();
            let copy = run.log.parent().unwrap().join("copy.jsonl");
            let spec = crate::policy::SinkSpec::File { path: copy.clone() };
            let audit = Audit {
                log: AuditLog::new(&run.log),
                sinks: crate::audit::sinks::build(&|_| None, &[spec]).unwrap(),
                require_remote: true,
            };
            let mut recorder = audit
                .record_decision(&run.out, &run.req, decision())
                .unwrap();
            let _ = recorder.stop(why);
            let lines = std::fs::read_to_string(&copy).unwrap().lines().count();
            assert_eq!(
                run.records().len(),
                3,
                "the result is in the log either way"
            );
            assert_eq!(lines, if shipped { 3 } else { 2 });
        }
    }
}
