//! `AuthUser`: the caller, from `Authorization: Bearer <access JWT>`, loaded fresh from the
//! database so that deactivation and role changes take effect at once.

use crate::domain::Actor;
use crate::errors::AppError;
use crate::errors::ProblemCode;
use crate::state::AppState;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use std::ops::Deref;

#[derive(Debug, Clone)]
pub struct AuthUser(pub Actor);

impl Deref for AuthUser {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.0
    }
}

fn unauthorized(detail: &str) -> AppError {
    AppError::Unauthorized {
        code: ProblemCode::Unauthorized,
        detail: detail.to_owned(),
    }
}

/// The bearer token of a request, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<AuthUser, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let token = token.ok_or_else(|| unauthorized("missing bearer token"))?;
            Ok(AuthUser(authenticate(&state, &token).await?.0))
        })
    }
}

/// Verifies an access token and loads its user fresh: the actor and the token's expiry.
pub async fn authenticate(
    state: &AppState,
    token: &str,
) -> Result<(Actor, chrono::DateTime<chrono::Utc>), AppError> {
    let claims = state
        .keys
        .verify(token, state.clock.now())
        .map_err(unauthorized)?;
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0)
        .ok_or_else(|| unauthorized("invalid token"))?;
    Ok((active_user(state, claims.sub).await?, expires))
}

/// The active user with this id, as an actor; 401 if gone or deactivated. Read through the
/// instance's short-lived [`ActorCache`](crate::auth::actor_cache::ActorCache).
pub async fn active_user(state: &AppState, user_id: String) -> Result<Actor, AppError> {
    let asked = std::time::Instant::now();
    if let Some(actor) = state.actors.get(&user_id, asked) {
        return Ok(actor);
    }
    let actor = state
        .db(move |conn| crate::service::users::active_actor(conn, &user_id))
        .await?
        .ok_or_else(|| unauthorized("the user no longer exists or is deactivated"))?;
    state.actors.put(actor.clone(), asked);
    Ok(actor)
}
