//! The anchors of `cargo xtask bench http`: bare poem handlers doing the least work a
//! route can do on the same database, with the server's pool sizing and no middleware,
//! no domain and no error mapping. The ratio of the server's throughput to theirs is
//! what the product's layers cost.
//!
//! - `GET /bare/{token}`: the single SQL query of `GET /api/v1/pay/{token}/access` (the
//!   consultation by pay-token hash, joined with its payment).
//! - `GET /healthz`: `{"status":"ok"}`, as the server answers it (the scripts ask it
//!   once their own requests are all sent).
//! - `POST /bare/webhook`: what a Stripe delivery cannot do without: the signature
//!   checked (HMAC-SHA256 over `t.body`, as `Stripe-Signature` says), the event's id
//!   read from the JSON, and the id stored once (`INSERT … ON CONFLICT DO NOTHING`).
//!
//! Pools as `storage_seaorm::Store::connect` opens them: on a SQLite file 8 reading
//! connections and one writing connection in a pool of its own, WAL, a busy timeout;
//! on PostgreSQL 10 connections; never a ping before a connection is used.
//!
//! usage: bare DATABASE_URL LISTEN_ADDR WEBHOOK_SECRET

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::{Data, Json, Path};
use poem::{Body, EndpointExt, Request, Route, Server, get, handler, post};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Pools {
    read: DatabaseConnection,
    write: DatabaseConnection,
    webhook_secret: String,
}

/// `?` placeholders on SQLite, `$n` on PostgreSQL.
fn statement(
    db: &DatabaseConnection,
    sqlite: &str,
    postgres: &str,
    values: Vec<sea_orm::Value>,
) -> Statement {
    let backend = db.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        postgres
    } else {
        sqlite
    };
    Statement::from_sql_and_values(backend, sql, values)
}

#[handler]
async fn access(Path(token): Path<String>, Data(pools): Data<&Pools>) -> Json<serde_json::Value> {
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sql = "SELECT c.payment_mode, p.status FROM consultations c \
               LEFT JOIN payments p ON p.consultation_id = c.id WHERE c.pay_token_hash = ";
    let row = pools
        .read
        .query_one_raw(statement(
            &pools.read,
            &format!("{sql}?"),
            &format!("{sql}$1"),
            vec![hash.into()],
        ))
        .await
        .ok()
        .flatten();
    let can_enter = row.is_some_and(|r| {
        let mode: String = r.try_get("", "payment_mode").unwrap_or_default();
        let status: Option<String> = r.try_get("", "status").unwrap_or_default();
        mode == "none"
            || matches!(
                status.as_deref(),
                Some("authorized" | "captured" | "partially_refunded")
            )
    });
    Json(serde_json::json!({ "can_enter": can_enter }))
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Whether `header` (`t=…,v1=…`) signs `body` with `secret`.
fn signed(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1.push(value),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    let mac = mac
        .chain_update(t.as_bytes())
        .chain_update(b".")
        .chain_update(body);
    v1.iter().any(|hex| {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        bytes.is_some_and(|b| mac.clone().verify_slice(&b).is_ok())
    })
}

#[handler]
async fn webhook(req: &Request, body: Body, Data(pools): Data<&Pools>) -> StatusCode {
    let Ok(bytes) = body.into_bytes().await else {
        return StatusCode::BAD_REQUEST;
    };
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !signed(&pools.webhook_secret, header, &bytes) {
        return StatusCode::BAD_REQUEST;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return StatusCode::BAD_REQUEST;
    };
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return StatusCode::BAD_REQUEST;
    };
    let sql = "INSERT INTO webhook_events (event_id, kind, received_at) VALUES ";
    let inserted = pools
        .write
        .execute_raw(statement(
            &pools.write,
            &format!("{sql}(?, ?, ?) ON CONFLICT DO NOTHING"),
            &format!("{sql}($1, $2, $3) ON CONFLICT DO NOTHING"),
            vec![id.into(), kind.into(), chrono::Utc::now().into()],
        ))
        .await;
    match inserted {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn pools(url: &str) -> Result<(DatabaseConnection, DatabaseConnection), sea_orm::DbErr> {
    let options = |connections: u32| {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .max_connections(connections)
            .test_before_acquire(false);
        if url.starts_with("sqlite:") {
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
            });
        }
        options
    };
    if url.starts_with("sqlite:") {
        let write = Database::connect(options(1)).await?;
        let read = Database::connect(options(8)).await?;
        Ok((read, write))
    } else {
        let db = Database::connect(options(10)).await?;
        Ok((db.clone(), db))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, listen, webhook_secret] = args.as_slice() else {
        return Err("usage: bare DATABASE_URL LISTEN_ADDR WEBHOOK_SECRET".into());
    };
    let (read, write) = pools(url).await?;
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/bare/webhook", post(webhook))
        .at("/bare/:token", get(access))
        .data(Pools {
            read,
            write,
            webhook_secret: webhook_secret.clone(),
        });
    Server::new(TcpListener::bind(listen.as_str()))
        .run(app)
        .await?;
    Ok(())
}
