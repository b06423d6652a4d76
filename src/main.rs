//! The `jailwarden` command: parses the command line and dispatches; the
//! work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;
use jailwarden::cli::complete;
use jailwarden::cli::test_filter::{self, Format};

#[derive(Parser)]
#[command(
    name = "jailwarden",
    version,
    about = "Intrusion prevention for modern Linux: follows the journal, bans in nftables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (in the foreground; systemd runs it as a service).
    Daemon {
        /// Main configuration file (jail.d/ next to it is read too).
        #[arg(long, value_name = "PATH", default_value = jailwarden::config::DEFAULT_CONFIG,
              value_hint = clap::ValueHint::FilePath)]
        config: PathBuf,
        /// State directory (default: $STATE_DIRECTORY, then /var/lib/jailwarden).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Also print readable log lines on stderr.
        #[arg(long)]
        foreground: bool,
        /// Remove the firewall table when stopping (bans normally stay).
        #[arg(long)]
        flush_on_exit: bool,
    },
    /// Validate the configuration and every filter it uses.
    CheckConfig {
        /// Main configuration file (jail.d/ next to it is read too).
        #[arg(long, value_name = "PATH", default_value = jailwarden::config::DEFAULT_CONFIG,
              value_hint = clap::ValueHint::FilePath)]
        config: PathBuf,
    },
    /// List the available filters with their modes and description.
    ///
    /// Lists every filter along the filter path (see FILTER SEARCH PATH),
    /// the first of each name, with the modes a jail can select and the
    /// number of problems check-config would report in it.
    Filters {
        /// Look for filters here first (repeatable).
        #[arg(long = "filter-dir", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        filter_dirs: Vec<PathBuf>,
        /// Configuration whose [daemon] filter_dirs are searched too.
        #[arg(long, value_name = "PATH", default_value = jailwarden::config::DEFAULT_CONFIG,
              value_hint = clap::ValueHint::FilePath)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run a filter over a log file (or stdin) and show what it finds.
    ///
    /// What fail2ban-regex is to Fail2ban: streams the log through the
    /// filter on every core, prints the failures (text: the first 20 and a
    /// summary with each pattern's hits; tsv: LINE, HOST, TIME per failure;
    /// json: one document), and on a terminal a progress line while it reads.
    TestFilter {
        /// Filter name (searched along the filter path) or path to a filter file.
        #[arg(add = ArgValueCompleter::new(complete::filters))]
        filter: String,
        /// Log file, or - for stdin.
        #[arg(value_hint = clap::ValueHint::FilePath)]
        log: PathBuf,
        /// Filter mode.
        #[arg(long, default_value = "normal")]
        mode: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Look for filters here first (repeatable).
        #[arg(long = "filter-dir", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        filter_dirs: Vec<PathBuf>,
        /// Configuration whose [daemon] filter_dirs are searched too.
        #[arg(long, value_name = "PATH", default_value = jailwarden::config::DEFAULT_CONFIG,
              value_hint = clap::ValueHint::FilePath)]
        config: PathBuf,
    },
    /// Translate a Fail2ban configuration into jailwarden's (a dry run
    /// unless --write): jails, filters, actions, and a report of every
    /// item not carried over exactly.
    #[command(name = "import-fail2ban")]
    ImportFail2ban {
        /// Fail2ban's configuration directory (with its jail.local, jail.d/,
        /// filter.d/, action.d/).
        #[arg(default_value = "/etc/fail2ban", value_name = "DIR")]
        dir: PathBuf,
        /// jailwarden's configuration directory to write into (jail.d/50-fail2ban.toml,
        /// filters/).
        #[arg(long, default_value = "/etc/jailwarden", value_name = "DIR")]
        output: PathBuf,
        /// Write the files (they are printed otherwise); runs the checks of
        /// check-config on the result and writes nothing if they fail.
        #[arg(long)]
        write: bool,
        /// Replace files that exist and differ (never done otherwise).
        #[arg(long, requires = "write")]
        force: bool,
        /// Carry over the bans Fail2ban holds now, with their remaining time
        /// (from its database; listed in a dry run).
        #[arg(long)]
        bans: bool,
        /// Fail2ban's database [default: its dbfile setting,
        /// /var/lib/fail2ban/fail2ban.sqlite3].
        #[arg(long, value_name = "PATH")]
        fail2ban_db: Option<PathBuf>,
        /// jailwarden's state directory, for --bans while the daemon is stopped
        /// [default: the configuration's state_dir, then /var/lib/jailwarden].
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Control socket of a running daemon, for --bans [default: as the client commands].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    #[command(flatten)]
    Client(jailwarden::control::cli::Command),
    /// Write the manual pages or print shell completions (for packaging).
    #[command(hide = true, subcommand)]
    Generate(Generate),
}

#[derive(Subcommand)]
enum Generate {
    /// Write jailwarden.8, jailwarden.toml.5 and jailwarden-filter.5 into DIR.
    Man { dir: PathBuf },
    /// Print the completion script for SHELL (bash, zsh, fish).
    Completions { shell: complete::Shell },
}

/// The environment variable the completion scripts set when they ask the
/// binary for candidates.
const COMPLETE_VAR: &str = "JAILWARDEN_COMPLETE";

fn main() -> ExitCode {
    // Installed as fail2ban-client (make install-compat): Fail2ban's
    // client commands, for scripts and monitoring written for it.
    let mut args = std::env::args_os();
    if args
        .next()
        .is_some_and(|a| jailwarden::compat::invoked_as_client(&a))
    {
        // SAFETY: as below, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(u8::try_from(jailwarden::compat::run(rest)).unwrap_or(255));
    }
    // A completion request from a shell script: answer and exit.
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .completer("jailwarden")
        .complete();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Daemon { .. }) {
        // Commands whose output goes to `head` or `less` end quietly when the
        // reader goes away, like every Unix tool (Rust ignores SIGPIPE, which
        // turns that into a panic on the next print). Not the daemon: it
        // must survive a client closing a socket on it.
        // SAFETY: restoring a signal's default disposition before any thread
        // is started has no memory-safety implications.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let status = match cli.command {
        Command::Daemon {
            config,
            state_dir,
            foreground,
            flush_on_exit,
        } => jailwarden::daemon::run_with(
            jailwarden::daemon::Options {
                config,
                state_dir,
                foreground,
                flush_on_exit,
            },
            jailwarden::control::surfaces(),
        ),
        Command::Filters {
            filter_dirs,
            config,
            json,
        } => jailwarden::cli::filters::run(&filter_dirs, &config, json),
        Command::CheckConfig { config } => jailwarden::cli::check_config::run(&config),
        Command::TestFilter {
            filter,
            log,
            mode,
            format,
            filter_dirs,
            config,
        } => test_filter::run(&test_filter::Options {
            filter,
            log,
            mode,
            format,
            filter_dirs,
            config,
        }),
        Command::ImportFail2ban {
            dir,
            output,
            write,
            force,
            bans,
            fail2ban_db,
            state_dir,
            socket,
        } => jailwarden::r#import::run(&jailwarden::r#import::Options {
            dir,
            output,
            write,
            force,
            bans,
            fail2ban_db,
            state_dir,
            socket,
        }),
        Command::Client(command) => jailwarden::control::cli::run(command),
        Command::Generate(Generate::Man { dir }) => {
            match jailwarden::manual::write(Cli::command(), &dir) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    0
                }
                Err(e) => {
                    eprintln!(
                        "jailwarden: writing the manual pages into {}: {e}",
                        dir.display()
                    );
                    1
                }
            }
        }
        Command::Generate(Generate::Completions { shell }) => {
            print!("{}", complete::script(shell, COMPLETE_VAR));
            0
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
