//! The `gate` binary: parse the command line, dispatch, map errors to exit codes. Nothing else.
#![forbid(unsafe_code)]

use clap::Parser;

use gate::cli::{Cli, Color, Commands, LogCommand, PolicyCommand};
use gate::commands::{check, generate, log, policy, requests, serve};
use gate::config::Env;
use gate::error::Error;
use gate::output::{ColorChoice, Output};
use gate::run::{RunOptions, run};

fn main() {
    let cli = Cli::parse();
    let env = Env::capture();
    let g = &cli.global;
    let json = (cli.run.json && cli.command.is_none())
        || matches!(
            cli.command,
            Some(Commands::Check { json: true, .. })
                | Some(Commands::Requests { json: true, .. })
                | Some(Commands::Log(LogCommand::Verify { json: true, .. }))
        );
    let out = Output::new(
        match g.color {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        },
        env.no_color,
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
    let code = match dispatch(cli, &env, &out) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                Error::Config { message, .. } if message.contains("\n") => out.raw_stderr(message),
                _ => out.error(&e.to_string()),
            }
            if let Some(h) = e.hint() {
                out.hint(h);
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli, env: &Env, out: &Output) -> Result<i32, Error> {
    let policy_files = cli.global.policy.clone();
    let Some(command) = cli.command else {
        if cli.run.command.is_empty() {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let _ = cmd.print_help();
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
                json: cli.run.json,
            },
            env,
            out,
        );
    };
    let r = &cli.run;
    if r.reason.is_some() || r.timeout.is_some() || r.no_wait || r.json {
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
            since,
            request,
            n,
            path,
        }) => log::show(
            env,
            out,
            log::ShowOptions {
                json,
                since,
                request,
                n,
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
        Commands::Requests { json, server } => {
            requests::list(env, out, json, server.as_deref(), &policy_files)
        }
        Commands::Approve {
            id,
            comment,
            server,
        } => requests::decide(
            env,
            out,
            &id,
            true,
            comment,
            server.as_deref(),
            &policy_files,
        ),
        Commands::Deny { id, reason, server } => requests::decide(
            env,
            out,
            &id,
            false,
            Some(reason),
            server.as_deref(),
            &policy_files,
        ),
        Commands::Login { url } => serve::login(env, out, &url),
        Commands::Serve(args) => serve::serve(env, out, args, &policy_files),
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
