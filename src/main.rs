//! The `gate` binary: parse the command line, dispatch, map errors to exit codes. Nothing else.
#![forbid(unsafe_code)]

use clap::FromArgMatches;

use gate::cli::{
    Cli, Color, Commands, ExportFormat, HookAgent, HookEvent, LogCommand, LogFilter, OutcomeFilter,
    PolicyCommand, SetupCommand, ShimCommand,
};
use gate::commands::{
    check, doctor, generate, hook, log, policy, requests, serve, setup, setup_agents, shim,
};
use gate::config::Env;
use gate::error::Error;
use gate::output::{ColorChoice, Output};
use gate::run::{RunOptions, run};

fn main() {
    // Started under another program's name (a PATH shim): that program, through the run form.
    if let Some(argv0) = std::env::args_os().next()
        && gate::shim::shim_name(Some(&argv0)).is_some()
    {
        std::process::exit(shim_main(argv0));
    }
    let env = Env::capture();
    let cli = parse(&env);
    let g = &cli.global;
    let json = (cli.run.json && cli.command.is_none())
        || matches!(
            cli.command,
            Some(Commands::Check { json: true, .. })
                | Some(Commands::Requests { json: true, .. })
                | Some(Commands::Log(LogCommand::Verify { json: true, .. }))
                | Some(Commands::Doctor { json: true, .. })
        );
    let out = Output::new(
        match g.color {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        },
        env.no_color || env.dumb_term,
        g.quiet,
        g.verbose,
        json,
    );
    // Diagnostics (`tracing`) go to stderr: warnings by default, more with -v / -vv.
    let level = match g.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(out.color)
        .with_target(false)
        .try_init();
    // A hook's every failure is the agent's blocking answer (exit 2), never another status.
    let hook_mode = match &cli.command {
        Some(Commands::Hook { agent, event, .. }) => Some((hook_agent(*agent), hook_event(*event))),
        _ => None,
    };
    let code = match guarded(|| dispatch(cli, &env, &out)) {
        Ok(code) => code,
        Err(e) => match hook_mode {
            Some((agent, event)) => hook::fail_closed(&out, agent, event, &e),
            None => {
                out.report(&e);
                e.exit_code()
            }
        },
    };
    std::process::exit(code);
}

/// gate run as a shim: no option parsing, every argument belongs to the program.
fn shim_main(argv0: std::ffi::OsString) -> i32 {
    let env = Env::capture();
    let out = Output::new(
        ColorChoice::Auto,
        env.no_color || env.dumb_term,
        false,
        0,
        false,
    );
    let args = std::env::args_os().skip(1).collect();
    guarded(|| shim::invoked(&env, &out, &argv0, args)).unwrap_or_else(|e| {
        out.report(&e);
        e.exit_code()
    })
}

/// The command line, or exit 2: clap's message, or a better one for a misspelt subcommand or
/// a command written without `--` (see [`gate::cli::misuse`]).
fn parse(env: &Env) -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // clap's own help and errors follow `--color`, `NO_COLOR` and `TERM=dumb` as gate's do.
    let color = match color_flag(&args) {
        _ if env.no_color || env.dumb_term => ColorChoice::Never,
        Some("always") => ColorChoice::Always,
        Some("never") => ColorChoice::Never,
        _ => ColorChoice::Auto,
    };
    let cmd = gate::cli::command().color(match color {
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
        ColorChoice::Auto => clap::ColorChoice::Auto,
    });
    let e = match cmd
        .clone()
        .try_get_matches_from(&args)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
    {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    use clap::error::ErrorKind;
    use gate::cli::misuse::{self, Misuse};
    // Only where clap refused a word it did not expect: a bad value or a missing argument is
    // clap's to explain, whatever else the line holds.
    let unexpected = e.kind() == ErrorKind::UnknownArgument;
    if (unexpected || e.kind() == ErrorKind::InvalidSubcommand)
        && let Some(m) = misuse::find(&cmd, &args, &|word| is_program(env, word), unexpected)
    {
        let out = Output::new(color, false, false, 0, false);
        if matches!(m, Misuse::ProgramNamedLikeSubcommand { .. }) {
            let _ = e.print();
        } else {
            out.error(&m.message());
        }
        if let Some(h) = m.hint() {
            out.hint(&h);
        }
        std::process::exit(gate::error::exit::USAGE);
    }
    e.exit()
}

/// The value of `--color` before any `--`, read before clap so that its messages follow it.
fn color_flag(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut words = args.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    let mut found = None;
    while let Some(w) = words.next() {
        match w {
            "--" => break,
            "--color" => found = words.next(),
            _ => {
                if let Some(v) = w.strip_prefix("--color=") {
                    found = Some(v);
                }
            }
        }
    }
    found
}

/// Whether `word` names a program the run form could start.
fn is_program(env: &Env, word: &str) -> bool {
    let cwd = std::env::current_dir().unwrap_or_default();
    gate::exec::resolve(word, env.path.as_deref(), &cwd).is_ok()
}

/// Runs `f`, turning a panic on this thread into [`Error::Internal`] (exit 70, with where it
/// happened) rather than a Rust backtrace and exit 101 that a wrapper script might take for
/// the command's own status. Like every error, it fails closed: nothing runs after it.
fn guarded(f: impl FnOnce() -> Result<i32, Error>) -> Result<i32, Error> {
    use std::sync::{Arc, Mutex};
    let caught: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = Arc::clone(&caught);
    let main_thread = std::thread::current().id();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Other threads (signal forwarding, the server's workers) keep the usual report.
        if std::thread::current().id() != main_thread {
            return default_hook(info);
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = slot.lock() {
            *slot = Some(format!("{what}{at}"));
        }
    }));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        let what = caught.lock().ok().and_then(|mut s| s.take());
        Err(Error::internal(
            what.unwrap_or_else(|| "a panic".to_owned()),
        ))
    })
}

fn dispatch(cli: Cli, env: &Env, out: &Output) -> Result<i32, Error> {
    // A crash point for the test suite, in debug builds only: a bug in gate fails closed.
    #[cfg(debug_assertions)]
    if std::env::var_os("GATE_TEST_PANIC").is_some_and(|v| v == "dispatch") {
        panic!("crash point `dispatch` (GATE_TEST_PANIC)");
    }
    let policy_files = cli.global.policy.clone();
    let Some(command) = cli.command else {
        if cli.run.command.is_empty() {
            let _ = gate::cli::command().print_help();
            return Err(Error::Usage(
                "no command given: write it after `--`, e.g. `gate -- ls`".into(),
            ));
        }
        return run(
            RunOptions {
                argv: cli.run.command,
                policy_files,
                reason: cli.run.reason,
                timeout: cli.run.timeout,
                no_wait: cli.run.no_wait,
                request: cli.run.request,
                wait: cli.run.wait,
                json: cli.run.json,
            },
            env,
            out,
        );
    };
    let r = &cli.run;
    if r.reason.is_some()
        || r.timeout.is_some()
        || r.no_wait
        || r.json
        || r.request.is_some()
        || r.wait
    {
        return Err(Error::Usage(
            "`--reason`, `--timeout`, `--no-wait` and `--json` before a subcommand belong to the run form \
             (`gate [OPTIONS] -- PROGRAM`); put a subcommand's own options after its name"
                .into(),
        ));
    }
    match command {
        Commands::Check { json, command } => check::check(env, out, &policy_files, command, json),
        Commands::Policy(PolicyCommand::Lint { files }) => {
            policy::lint(env, out, files, &policy_files)
        }
        Commands::Policy(PolicyCommand::Test { files }) => {
            policy::test(env, out, files, &policy_files)
        }
        Commands::Log(LogCommand::Show {
            json,
            filter,
            n,
            path,
        }) => log::show(
            env,
            out,
            log::ShowOptions {
                json,
                filter: log_filter(filter),
                n,
                path,
            },
            &policy_files,
        ),
        Commands::Log(LogCommand::Tail {
            json,
            follow,
            filter,
            n,
            path,
        }) => log::tail(
            env,
            out,
            log::TailOptions {
                json,
                follow,
                filter: log_filter(filter),
                n,
                path,
            },
            &policy_files,
        ),
        Commands::Log(LogCommand::Export {
            format,
            filter,
            output,
            path,
        }) => log::export(
            env,
            out,
            log::ExportOptions {
                csv: format == ExportFormat::Csv,
                filter: log_filter(filter),
                output,
                path,
            },
            &policy_files,
        ),
        Commands::Log(LogCommand::Verify {
            path,
            key,
            checkpoint,
            json,
            threads,
            remote,
            server_key,
        }) => log::verify(
            env,
            out,
            log::VerifyOptions {
                path,
                key,
                checkpoint,
                json,
                threads,
                remote,
                server_keys: server_key,
            },
            &policy_files,
        ),
        Commands::Log(LogCommand::Push {
            path,
            timeout,
            json,
        }) => log::push(env, out, path, timeout, json, &policy_files),
        Commands::Log(LogCommand::Key) => log::key(env, out, &policy_files),
        Commands::Requests {
            id,
            json,
            server,
            ca,
        } => requests::list(
            &env.with_ca(ca),
            out,
            id.as_deref(),
            json,
            server.as_deref(),
            &policy_files,
        ),
        Commands::Approve {
            id,
            comment,
            server,
            ca,
        } => requests::decide(
            &env.with_ca(ca),
            out,
            &id,
            true,
            comment,
            server.as_deref(),
            &policy_files,
        ),
        Commands::Deny {
            id,
            reason,
            server,
            ca,
        } => requests::decide(
            &env.with_ca(ca),
            out,
            &id,
            false,
            Some(reason),
            server.as_deref(),
            &policy_files,
        ),
        Commands::Login { url, ca } => serve::login(&env.with_ca(ca), out, &url),
        Commands::Serve(args) => serve::serve(env, out, args, &policy_files),
        Commands::Setup(SetupCommand::Local {
            group,
            spool,
            policy_file,
            dry_run,
            json,
        }) => setup::local(
            out,
            setup::LocalSetup {
                group,
                spool,
                policy_file: policy_file.unwrap_or_else(setup::LocalSetup::default_policy_file),
                dry_run,
                json,
            },
        ),
        Commands::Hook {
            agent,
            event,
            timeout,
        } => Ok(hook::hook(
            env,
            out,
            hook::HookOptions {
                agent: hook_agent(agent),
                event: hook_event(event),
                timeout,
                policy_files,
            },
        )),
        Commands::Setup(SetupCommand::ClaudeCode(a)) => {
            setup_agents::setup(env, out, agent_setup(HookAgent::ClaudeCode, a))
        }
        Commands::Setup(SetupCommand::Codex(a)) => {
            setup_agents::setup(env, out, agent_setup(HookAgent::Codex, a))
        }
        Commands::Setup(SetupCommand::Gemini(a)) => {
            setup_agents::setup(env, out, agent_setup(HookAgent::Gemini, a))
        }
        Commands::Setup(SetupCommand::Cursor(a)) => {
            setup_agents::setup(env, out, agent_setup(HookAgent::Cursor, a))
        }
        Commands::Shim(ShimCommand::Install { names, dir }) => shim::install(env, out, &names, dir),
        Commands::Shim(ShimCommand::List { dir, json }) => shim::list(env, out, dir, json),
        Commands::Shim(ShimCommand::Remove { names, dir }) => shim::remove(env, out, &names, dir),
        Commands::Doctor { json, shim_dir } => {
            doctor::doctor(env, out, &policy_files, shim_dir, json)
        }
        Commands::Completions { shell, out_dir } => {
            match out_dir {
                Some(dir) => generate::completions_to_dir(&dir)?,
                None => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&generate::completion(shell));
                }
            }
            Ok(0)
        }
        Commands::Man { out_dir } => {
            match out_dir {
                Some(dir) => generate::man_to_dir(&dir)?,
                None => {
                    use std::io::Write;
                    let pages = generate::man_pages()?;
                    let _ = std::io::stdout().write_all(&pages[0].1);
                }
            }
            Ok(0)
        }
    }
}

/// `gate setup AGENT` as plain settings.
fn agent_setup(agent: HookAgent, a: gate::cli::AgentSetupArgs) -> setup_agents::AgentSetup {
    setup_agents::AgentSetup {
        agent: hook_agent(agent),
        project: a.project,
        print: a.print,
    }
}

fn hook_agent(a: HookAgent) -> gate::hook::Agent {
    match a {
        HookAgent::ClaudeCode => gate::hook::Agent::ClaudeCode,
        HookAgent::Codex => gate::hook::Agent::Codex,
        HookAgent::Gemini => gate::hook::Agent::Gemini,
        HookAgent::Cursor => gate::hook::Agent::Cursor,
    }
}

fn hook_event(e: Option<HookEvent>) -> Option<gate::hook::Event> {
    e.map(|e| match e {
        HookEvent::Pre => gate::hook::Event::Pre,
        HookEvent::Post => gate::hook::Event::Post,
    })
}

/// `gate log` filters as plain settings: an outcome in the decision records' spelling.
fn log_filter(f: LogFilter) -> log::FilterOptions {
    log::FilterOptions {
        since: f.since,
        until: f.until,
        request: f.request,
        user: f.user,
        outcome: f.outcome.map(OutcomeFilter::as_str),
        rule: f.rule,
    }
}
