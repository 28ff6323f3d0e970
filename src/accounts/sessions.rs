//! Sessions: login, refresh-token rotation with reuse detection, logout.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Accounts, ServiceError, new_id};
use crate::auth::Principal;
use crate::auth::token::{new_refresh_token, refresh_token_digest};
use crate::storage::{RefreshTokenRow, Tx, UserRow, now_rfc3339};
use crate::validation::{self, FieldError};

/// `POST /api/auth/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account e-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Tenant slug; optional when unambiguous or pinned.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A token pair and the user it belongs to.
#[derive(Debug, Serialize)]
pub struct Session {
    /// JWT.
    pub access_token: String,
    /// Opaque, single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The user.
    pub user: UserRow,
}

const BAD_CREDENTIALS: &str = "invalid email, password or tenant";

enum RefreshOutcome {
    Rotated(Box<Session>),
    Refused(&'static str),
}

impl Accounts {
    /// Check credentials and open a session. Every wrong credential gives the
    /// same 401 after the same amount of hashing work.
    pub async fn login(&self, req: LoginRequest, addr: IpAddr) -> Result<Session, ServiceError> {
        let mut errors = Vec::new();
        if req.email.trim().is_empty() {
            errors.push(FieldError::new("email", "required", "must not be empty"));
        }
        if let Err(e) = validation::check_password(&req.password) {
            errors.push(e);
        }
        if let Some(slug) = &req.tenant
            && let Err(e) = validation::check_slug(slug)
        {
            errors.push(FieldError::new("tenant", &e.code, e.message));
        }
        ServiceError::fields(errors)?;

        let email = validation::normalize_email(&req.email);
        let account = email.clone();
        self.inner
            .limiter
            .check(&account, addr)
            .map_err(|retry_after| ServiceError::RateLimited { retry_after })?;

        let slug = req
            .tenant
            .clone()
            .or_else(|| self.inner.pinned_tenant.clone());
        let lookup_email = email.clone();
        let candidates = self
            .inner
            .db
            .read(move |tx| -> Result<Vec<UserRow>, ServiceError> {
                Ok(match slug {
                    Some(slug) => match tx.tenant_by_slug(&slug)? {
                        Some(t) => tx
                            .user_by_email(&t.id, &lookup_email)?
                            .into_iter()
                            .collect(),
                        None => Vec::new(),
                    },
                    None => tx.users_by_email(&lookup_email)?,
                })
            })
            .await?;

        let hashes = candidates.iter().map(|u| u.password_hash.clone()).collect();
        let verdicts = self.verify_passwords(req.password, hashes).await?;
        let mut matched: Vec<UserRow> = candidates
            .into_iter()
            .zip(verdicts)
            .filter_map(|(u, ok)| ok.then_some(u))
            .collect();

        let user = match matched.len() {
            0 => {
                self.inner.limiter.record_failure(&account, addr);
                return Err(ServiceError::Unauthorized(BAD_CREDENTIALS.into()));
            }
            1 => matched.remove(0),
            _ => {
                return Err(ServiceError::field(FieldError::new(
                    "tenant",
                    "required",
                    "this account exists in several tenants: give the tenant's slug",
                )));
            }
        };
        self.inner.limiter.record_success(&account, addr);

        let this = self.clone();
        let session = self
            .inner
            .db
            .write(move |tx| -> Result<Option<Session>, ServiceError> {
                let Some(tenant) = tx.tenant_by_id(&user.tenant_id)? else {
                    return Ok(None);
                };
                if !user.active || !tenant.active {
                    return Ok(None);
                }
                Ok(Some(this.open_session(tx, user, None)?))
            })
            .await?;
        session.ok_or_else(|| ServiceError::Unauthorized(BAD_CREDENTIALS.into()))
    }

    /// Exchange a refresh token for a new pair. A token that was already
    /// exchanged revokes its whole family (it was stolen or replayed).
    pub async fn refresh(&self, refresh_token: String) -> Result<Session, ServiceError> {
        let digest = refresh_token_digest(&refresh_token);
        let this = self.clone();
        let outcome = self
            .inner
            .db
            .write(move |tx| -> Result<RefreshOutcome, ServiceError> {
                let now = now_rfc3339();
                let Some(row) = tx.refresh_token_by_hash(&digest)? else {
                    return Ok(RefreshOutcome::Refused("unknown refresh token"));
                };
                if row.revoked_at.is_some() {
                    return Ok(RefreshOutcome::Refused("refresh token revoked"));
                }
                if row.rotated_at.is_some() {
                    tx.revoke_refresh_family(&row.family_id, &now)?;
                    return Ok(RefreshOutcome::Refused(
                        "refresh token already used; its session is revoked",
                    ));
                }
                if row.expires_at <= now {
                    return Ok(RefreshOutcome::Refused("refresh token expired"));
                }
                let user = tx.user_by_id(&row.tenant_id, &row.user_id)?;
                let tenant = tx.tenant_by_id(&row.tenant_id)?;
                match (user, tenant) {
                    (Some(user), Some(tenant)) if user.active && tenant.active => {
                        tx.mark_refresh_rotated(&row.id, &now)?;
                        let session = this.open_session(tx, user, Some(row.family_id))?;
                        Ok(RefreshOutcome::Rotated(Box::new(session)))
                    }
                    _ => Ok(RefreshOutcome::Refused("account disabled")),
                }
            })
            .await?;
        match outcome {
            RefreshOutcome::Rotated(session) => Ok(*session),
            RefreshOutcome::Refused(why) => Err(ServiceError::Unauthorized(why.into())),
        }
    }

    /// Revoke the caller's refresh token. Unknown or foreign tokens are
    /// ignored (the answer is the same, so it reveals nothing).
    pub async fn logout(
        &self,
        actor: &Principal,
        refresh_token: String,
    ) -> Result<(), ServiceError> {
        let digest = refresh_token_digest(&refresh_token);
        let user_id = actor.user_id().to_owned();
        self.inner
            .db
            .write(move |tx| -> Result<(), ServiceError> {
                if let Some(row) = tx.refresh_token_by_hash(&digest)?
                    && row.user_id == user_id
                {
                    tx.revoke_refresh_token(&row.id, &now_rfc3339())?;
                }
                Ok(())
            })
            .await
    }

    fn open_session(
        &self,
        tx: &Tx<'_>,
        user: UserRow,
        family: Option<String>,
    ) -> Result<Session, ServiceError> {
        let refresh_token = new_refresh_token();
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(self.inner.refresh_ttl)
            .unwrap_or_else(|_| chrono::Duration::days(30));
        let expires_at = (now + ttl).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        tx.insert_refresh_token(&RefreshTokenRow {
            id: new_id(),
            token_hash: refresh_token_digest(&refresh_token),
            family_id: family.unwrap_or_else(new_id),
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            created_at: now_rfc3339(),
            expires_at,
            rotated_at: None,
            revoked_at: None,
        })?;
        Ok(Session {
            access_token: self.inner.keys.issue(&user.id, &user.tenant_id),
            refresh_token,
            token_type: "Bearer",
            expires_in: self.inner.keys.access_ttl().as_secs(),
            user,
        })
    }
}
