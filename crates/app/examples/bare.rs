//! The baseline for `cargo xtask bench http`: a bare poem handler doing the same single
//! SQL query as `GET /api/v1/pay/{token}/access` (the consultation by pay-token hash,
//! joined with its payment) on the same database, with no middleware, no domain and no
//! error mapping. The ratio of the two throughputs is what the product's layers cost.
//!
//! usage: bare DATABASE_URL LISTEN_ADDR

use poem::listener::TcpListener;
use poem::web::{Data, Json, Path};
use poem::{EndpointExt, Route, Server, get, handler};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use sha2::{Digest, Sha256};

#[handler]
async fn access(
    Path(token): Path<String>,
    Data(db): Data<&DatabaseConnection>,
) -> Json<serde_json::Value> {
    let hash: String = Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT c.payment_mode, p.status FROM consultations c \
             LEFT JOIN payments p ON p.consultation_id = c.id WHERE c.pay_token_hash = $1"
        }
        _ => {
            "SELECT c.payment_mode, p.status FROM consultations c \
             LEFT JOIN payments p ON p.consultation_id = c.id WHERE c.pay_token_hash = ?"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [hash.into()]))
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, listen] = args.as_slice() else {
        return Err("usage: bare DATABASE_URL LISTEN_ADDR".into());
    };
    let db = Database::connect(url.as_str()).await?;
    let app = Route::new().at("/bare/:token", get(access)).data(db);
    Server::new(TcpListener::bind(listen.as_str()))
        .run(app)
        .await?;
    Ok(())
}
