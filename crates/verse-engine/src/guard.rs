//! Who acts and what the audit log says of it: every state-changing engine call takes the
//! [`Actor`] the transport authenticated and appends a record through [`Engine::audit`].

use crate::Engine;
use crate::error::{EngineError, EngineResult};
use std::sync::Arc;
use verse_api::guard::{
    AuditLogQuery, Checkpoint, MintRequest, Minted, Record, RevokeRequest, Revoked, VerifyReport,
    VerifyRequest,
};
use verse_guard::audit;

/// Who made a request, as the audit log names them: `local:uid=0` on the
/// unix socket, `token:ID` over TCP, `daemon` for the daemon's own acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn daemon() -> Actor {
        Actor("daemon".into())
    }
}

impl Engine {
    /// Appends one record to the audit log. A record that cannot be written
    /// is a loud error in the daemon's log; the act has already happened.
    pub fn audit(&self, actor: &Actor, action: &str, env: Option<&str>, detail: impl AsRef<str>) {
        if let Err(e) = self.audit.append(&actor.0, action, env, detail.as_ref()) {
            tracing::error!(action, ?env, "AUDIT RECORD LOST: {e}");
        }
    }
}

fn token_error(e: verse_guard::token::TokenError) -> EngineError {
    EngineError::invalid(e.to_string())
}

pub async fn mint_token(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: MintRequest,
) -> EngineResult<Minted> {
    use verse_guard::token;
    let rights = token::parse_rights(&request.allow).map_err(token_error)?;
    let ttl = request
        .ttl
        .as_deref()
        .map(token::parse_ttl)
        .transpose()
        .map_err(token_error)?;
    let minted = token::mint(&daemon.token_root, &rights, ttl).map_err(token_error)?;
    let detail = format!(
        "id={} rights={} expires={}",
        minted.id,
        minted.rights.join(";"),
        minted.expires.as_deref().unwrap_or("never")
    );
    daemon.audit(actor, "token-mint", None, detail);
    Ok(minted)
}

pub async fn revoke_token(
    daemon: &Arc<Engine>,
    actor: &Actor,
    request: RevokeRequest,
) -> EngineResult<Revoked> {
    let id = request.id.trim().to_ascii_lowercase();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            EngineError::invalid(format!("`{}` is not a token id (hex)", request.id))
                .hint("`verse token mint` prints the id of each token it makes"),
        );
    }
    daemon.db.revoke_token(&id)?;
    daemon.audit(actor, "token-revoke", None, format!("id={id}"));
    Ok(Revoked { revoked: id })
}

pub async fn audit_log(daemon: &Arc<Engine>, query: AuditLogQuery) -> EngineResult<Vec<Record>> {
    let dir = daemon.audit.dir().to_path_buf();
    let records =
        tokio::task::spawn_blocking(move || audit::read_records(&dir, query.env.as_deref()))
            .await
            .map_err(EngineError::internal)?
            .map_err(EngineError::internal)?;
    Ok(records)
}

pub async fn audit_verify(
    daemon: &Arc<Engine>,
    request: VerifyRequest,
) -> EngineResult<VerifyReport> {
    let dir = daemon.audit.dir().to_path_buf();
    let key = daemon.audit.verifying_key();
    let report = tokio::task::spawn_blocking(move || {
        audit::verify(&dir, Some(&key), request.checkpoint.as_ref())
    })
    .await
    .map_err(EngineError::internal)?
    .map_err(EngineError::internal)?;
    Ok(report)
}

pub async fn audit_checkpoint(daemon: &Arc<Engine>) -> EngineResult<Checkpoint> {
    match daemon.audit.checkpoint().map_err(EngineError::internal)? {
        Some(checkpoint) => Ok(checkpoint),
        None => Err(EngineError::conflict(
            "the audit log is empty: there is nothing to sign yet",
        )),
    }
}
