//! `consultpay`: the ConsultPay server and its command line.
//!
//! This crate wires; it holds no business rule. Configuration comes from the
//! environment (and an optional TOML file); `serve` migrates, starts the HTTP server
//! and the reconciliation job; the other commands are one-shot operations for the
//! operator.

use std::path::PathBuf;
use std::process::ExitCode;

use billing_core::access::{Actor, Role};
use billing_core::ids::{PractitionerId, UserId};
use billing_core::invitation::LinkPurpose;
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
    /// Run the background jobs once (holds placed and renewed off-session, lapsed
    /// holds, reconciliation) and print what they did.
    Reconcile,
    /// Operator tasks on the Stripe platform account.
    Stripe {
        #[command(subcommand)]
        command: StripeCommand,
    },
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum StripeCommand {
    /// Create (or find, and bring up to date) the platform's two webhook endpoints —
    /// the platform's own and the Connect one — at `{public URL}/webhooks/stripe`,
    /// with exactly the event types ConsultPay reads. A new endpoint's signing secret
    /// is printed once: put it in STRIPE_WEBHOOK_SECRET / STRIPE_CONNECT_WEBHOOK_SECRET.
    SetupWebhooks {
        /// The URL Stripe delivers to (default: CONSULTPAY_PUBLIC_URL + /webhooks/stripe).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Practitioner,
    Secretary,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a practitioner or a secretary; prints `{"id": …, "token": …}`, and with
    /// `--email` the invitation link (`"invite_url"`, valid 7 days, single use) where
    /// they choose the password they sign in with.
    Add {
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        name: String,
        /// The e-mail they will sign in with: makes an invitation link.
        #[arg(long)]
        email: Option<String>,
        /// The practitioner(s) a secretary works for (repeat for several).
        #[arg(long = "for")]
        for_: Vec<PractitionerId>,
        /// The practitioner's IANA time zone (default Europe/Paris).
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// List staff users, one JSON line each (`live_tokens: 0` = locked out).
    List,
    /// Issue a new token and revoke the old ones; prints `{"id": …, "token": …}`.
    RotateToken {
        /// The user's id.
        id: UserId,
    },
    /// Revoke every token of a user and remove their password (nothing signs them in;
    /// open sessions end).
    Revoke {
        /// The user's id.
        id: UserId,
    },
    /// A link (valid one hour, single use) where a user who lost their password
    /// chooses a new one, to sign in with `--email`. Prints `{"id", "email",
    /// "reset_url", "expires_at"}`: send it to them.
    ResetPassword {
        /// The user's id.
        id: UserId,
        /// The e-mail they sign in with.
        #[arg(long)]
        email: String,
    },
    /// Set the e-mail and password a user signs in to the dashboard with (12 to 128
    /// characters, read from the first line of standard input); every session they had
    /// ends. Prints `{"id": …, "email": …}`.
    SetPassword {
        /// The user's id.
        id: UserId,
        /// The e-mail they sign in with.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (never from the command line, where
        /// other users of the machine could see it). It is not hidden while typed:
        /// pipe it, e.g. `read -rs PW && printf '%s\n' "$PW" | consultpay user
        /// set-password …`.
        #[arg(long, required = true)]
        password_stdin: bool,
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
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
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
        Command::User { command } => {
            let app = wiring::App::build(&config).await?;
            user(&app, command).await
        }
        Command::Reconcile => {
            let app = wiring::App::build(&config).await?;
            let report = app.billing.reconcile.run_once().await?;
            for change in report.changed.iter().chain(&report.holds.changed) {
                println!("{} {} -> {}", change.payment, change.from, change.to);
            }
            for (id, why) in &report.attention {
                println!("{id} needs attention: {why}");
            }
            for (id, why) in report.failed.iter().chain(&report.holds.failed) {
                println!("{id} not reconciled: {why}");
            }
            println!(
                "{} change(s), {} hold(s) placed, {} renewed, {} refused, {} expiring hold(s), \
                 {} to check, {} failure(s)",
                report.changed.len() + report.holds.changed.len(),
                report.holds.placed.len(),
                report.holds.renewed.len(),
                report.holds.refused.len(),
                report.expiring.len(),
                report.attention.len(),
                report.failed.len() + report.holds.failed.len()
            );
            let mail = app.billing.outbox.deliver_due().await?;
            if app.billing.outbox.sends() {
                println!(
                    "{} e-mail(s) sent, {} to retry, {} refused",
                    mail.sent, mail.retried, mail.failed
                );
            }
            Ok(())
        }
        Command::Stripe {
            command: StripeCommand::SetupWebhooks { url },
        } => wiring::setup_webhooks(&config, url).await,
        Command::Config => {
            print!("{}", config.redacted());
            Ok(())
        }
        Command::Openapi => {
            // The document depends on no data: build against a throwaway in-memory
            // database rather than migrating (or creating) the configured one.
            let config = Config {
                database_url: app::config::DatabaseUrl::new("sqlite::memory:"),
                ..config
            };
            let app = wiring::App::build(&config).await?;
            println!("{}", http_poem::openapi_document(&app.http_state(&config)));
            Ok(())
        }
    }
}

async fn user(app: &wiring::App, command: UserCommand) -> Result<(), wiring::AppError> {
    let staff = &app.billing.staff;
    match command {
        UserCommand::Add {
            role,
            name,
            email,
            for_,
            time_zone,
        } => {
            let created = match role {
                RoleArg::Practitioner => {
                    if !for_.is_empty() {
                        return Err(wiring::AppError::Usage(
                            "--for only applies to secretaries".into(),
                        ));
                    }
                    staff.add_practitioner(&name, time_zone.as_deref()).await?
                }
                RoleArg::Secretary => staff.add_secretary(&name, &for_).await?,
            };
            let mut out = serde_json::json!({
                "id": created.id.to_string(),
                "token": created.token.expose(),
            });
            if let Some(email) = email {
                let link = app
                    .billing
                    .team
                    .issue_link(&Actor::System, created.id, &email, LinkPurpose::Invitation)
                    .await?;
                out["invite_url"] = link.url.into();
                out["expires_at"] = link.expires_at.to_rfc3339().into();
            }
            println!("{out}");
        }
        UserCommand::ResetPassword { id, email } => {
            let link = app
                .billing
                .team
                .issue_link(&Actor::System, id, &email, LinkPurpose::Reset)
                .await?;
            println!(
                "{}",
                serde_json::json!({
                    "id": id.to_string(),
                    "email": link.email.as_str(),
                    "reset_url": link.url,
                    "expires_at": link.expires_at.to_rfc3339(),
                })
            );
        }
        UserCommand::List => {
            for record in staff.list_users().await? {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": record.user.id.to_string(),
                        "name": record.user.name,
                        "role": record.user.role.kind().as_str(),
                        "practitioners": match &record.user.role {
                            Role::Practitioner(_) => serde_json::Value::Null,
                            Role::Secretary(ps) => ps.iter().map(ToString::to_string).collect(),
                        },
                        "created_at": record.created_at.to_rfc3339(),
                        "live_tokens": record.live_tokens,
                    })
                );
            }
        }
        UserCommand::RotateToken { id } => print_token(&staff.rotate_token(id).await?),
        UserCommand::SetPassword {
            id,
            email,
            password_stdin: _,
        } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            app.billing
                .sessions
                .set_password(id, &email, password)
                .await?;
            println!(
                "{}",
                serde_json::json!({ "id": id.to_string(), "email": email.trim().to_lowercase() })
            );
        }
        UserCommand::Revoke { id } => {
            let revoked = staff.revoke_tokens(id).await?;
            println!(
                "{}",
                serde_json::json!({ "id": id.to_string(), "revoked_tokens": revoked })
            );
        }
    }
    Ok(())
}

fn print_token(created: &billing_core::staff::NewStaff) {
    println!(
        "{}",
        serde_json::json!({ "id": created.id.to_string(), "token": created.token.expose() })
    );
}
