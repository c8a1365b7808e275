//! `consultpay`: the ConsultPay server and its command line.
//!
//! This crate wires; it holds no business rule. Configuration comes from the
//! environment (and an optional TOML file); `serve` migrates, starts the HTTP server
//! and the reconciliation job; the other commands are one-shot operations for the
//! operator.

use std::path::PathBuf;
use std::process::ExitCode;

use billing_core::ids::PractitionerId;
use clap::{Parser, Subcommand, ValueEnum};

use app::config::Config;
use app::{telemetry, wiring};

#[derive(Debug, Parser)]
#[command(
    name = "consultpay",
    version,
    about = "Billing for teleconsultations on Stripe Connect"
)]
struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "CONSULTPAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, then serve the API, the pages and the webhooks.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage staff users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run one reconciliation pass and print what it changed.
    Reconcile,
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Practitioner,
    Secretary,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a practitioner or a secretary; prints `{"id": …, "token": …}`.
    Add {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        name: String,
        /// The practitioner(s) a secretary works for (repeat for several).
        #[arg(long = "for")]
        for_: Vec<PractitionerId>,
        /// The practitioner's IANA time zone (default Europe/Paris).
        #[arg(long)]
        time_zone: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("consultpay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("consultpay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consultpay: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), wiring::AppError> {
    match command {
        Command::Serve => wiring::serve(config).await,
        Command::Migrate => {
            wiring::migrate(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    role,
                    name,
                    for_,
                    time_zone,
                },
        } => {
            let app = wiring::App::build(&config).await?;
            let created = match role {
                RoleArg::Practitioner => {
                    if !for_.is_empty() {
                        return Err(wiring::AppError::Usage(
                            "--for only applies to secretaries".into(),
                        ));
                    }
                    app.billing
                        .staff
                        .add_practitioner(&name, time_zone.as_deref())
                        .await?
                }
                RoleArg::Secretary => app.billing.staff.add_secretary(&name, &for_).await?,
            };
            println!(
                "{}",
                serde_json::json!({ "id": created.id.to_string(), "token": created.token.expose() })
            );
            Ok(())
        }
        Command::Reconcile => {
            let app = wiring::App::build(&config).await?;
            let report = app.billing.reconcile.run_once().await?;
            for change in &report.changed {
                println!("{} {} -> {}", change.payment, change.from, change.to);
            }
            for (id, why) in &report.failed {
                println!("{id} not reconciled: {why}");
            }
            println!(
                "{} change(s), {} expiring hold(s), {} failure(s)",
                report.changed.len(),
                report.expiring.len(),
                report.failed.len()
            );
            Ok(())
        }
        Command::Config => {
            print!("{}", config.redacted());
            Ok(())
        }
        Command::Openapi => {
            let app = wiring::App::build(&config).await?;
            println!("{}", http_poem::openapi(&app.http_state(&config)).spec());
            Ok(())
        }
    }
}
