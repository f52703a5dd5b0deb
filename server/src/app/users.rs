//! Account management: pool admins create, disable, re-role and reset users; everyone changes their
//! own password and console language. Validation names the field that is wrong.

use super::AppError;
use super::auth::{hash_password, verify_password};
use crate::db::{Db, UserRecord};
use api::UserId;
use api::v1::{CreateUserRequest, Language, UpdateUserRequest, User};

pub const MIN_PASSWORD_LENGTH: usize = 10;

fn validate_username(username: &str) -> Result<(), AppError> {
    let valid = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(AppError::bad_request("invalid-username", "username must be 1 to 64 letters, digits, '.', '_' or '-'"))
    }
}

pub fn validate_password(field: &'static str, password: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(AppError::bad_request(
            "weak-password",
            format!("{field} must be at least {MIN_PASSWORD_LENGTH} characters"),
        ));
    }
    if password.len() > 1024 {
        return Err(AppError::bad_request("invalid-password", format!("{field} must be at most 1024 bytes")));
    }
    Ok(())
}

async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(AppError::internal)?
}

pub async fn list(db: &Db) -> Result<Vec<User>, AppError> {
    Ok(db.user_list().await?.iter().map(UserRecord::to_api).collect())
}

pub async fn create(db: &Db, request: CreateUserRequest) -> Result<User, AppError> {
    let username = request.username.trim().to_owned();
    validate_username(&username)?;
    validate_password("password", &request.password)?;
    let hash = hash(request.password).await?;
    Ok(db.user_insert(&username, &hash, request.role).await?.to_api())
}

pub async fn update(db: &Db, acting: &UserRecord, id: UserId, request: UpdateUserRequest) -> Result<User, AppError> {
    if acting.id == id && request.disabled == Some(true) {
        return Err(AppError::bad_request("cannot-disable-self", "you cannot disable your own account"));
    }
    let user = db.user_update(id, request.role, request.disabled).await?;
    Ok(user.ok_or_else(|| AppError::NotFound(format!("no user with id {id}")))?.to_api())
}

pub async fn reset_password(db: &Db, id: UserId, new_password: String) -> Result<(), AppError> {
    validate_password("new_password", &new_password)?;
    let hash = hash(new_password).await?;
    if !db.user_set_password(id, &hash).await? {
        return Err(AppError::NotFound(format!("no user with id {id}")));
    }
    Ok(())
}

pub async fn change_own_password(
    db: &Db,
    user: &UserRecord,
    current_password: String,
    new_password: String,
) -> Result<(), AppError> {
    validate_password("new_password", &new_password)?;
    let stored = user.password_hash.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&current_password, &stored))
        .await
        .map_err(AppError::internal)?;
    if !matches {
        return Err(AppError::bad_request("wrong-current-password", "current_password is not your current password"));
    }
    let hash = hash(new_password).await?;
    db.user_set_password(user.id, &hash).await?;
    Ok(())
}

/// Remember the console language `user` chose, so it follows them to another browser.
pub async fn set_own_language(db: &Db, user: &UserRecord, language: Language) -> Result<(), AppError> {
    if !db.user_set_language(user.id, language).await? {
        return Err(AppError::NotFound(format!("no user with id {}", user.id)));
    }
    Ok(())
}
