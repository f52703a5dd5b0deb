//! Accounts: users, their argon2id password hashes, roles, token versions and console languages.

use super::*;
use api::UserId;
use api::v1::{Language, Role};

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub created_at: i64,
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub token_version: i64,
}

fn user_from_row(row: &AnyRow) -> DbResult<UserRecord> {
    let role_text: String = row.try_get("role")?;
    Ok(UserRecord {
        id: get_id(row, "id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role_text).ok_or_else(|| DbError::Corrupt(format!("role = {role_text:?}")))?,
        disabled: get_bool(row, "disabled")?,
        token_version: row.try_get("token_version")?,
        created_at: row.try_get("created_at")?,
    })
}

impl UserRecord {
    pub fn to_api(&self) -> api::v1::User {
        api::v1::User {
            id: self.id,
            username: self.username.clone(),
            role: self.role,
            disabled: self.disabled,
            created_at: ms_to_time(self.created_at),
        }
    }
}

const USER_COLUMNS: &str = "id, username, password_hash, role, disabled, token_version, created_at";

impl Db {
    pub async fn user_count(&self) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    pub async fn user_insert(&self, username: &str, password_hash: &str, role: Role) -> DbResult<UserRecord> {
        let id = UserId::new_random();
        let created_at = now_ms();
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, disabled, token_version, created_at)
             VALUES ($1, $2, $3, $4, 0, 0, $5)",
        )
        .bind(id.to_string())
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                return Err(DbError::Conflict(format!("user {username:?}")));
            }
            Err(error) => return Err(error.into()),
        }
        Ok(UserRecord {
            id,
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
            disabled: false,
            token_version: 0,
            created_at,
        })
    }

    pub async fn user_list(&self) -> DbResult<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Change role and/or disabled flag in one transaction, refusing a change that would leave no
    /// enabled pool admin (nobody could manage accounts any more). Disabling revokes the user's tokens.
    pub async fn user_update(
        &self,
        id: UserId,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> DbResult<Option<UserRecord>> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let current = user_from_row(&row)?;
        let new_role = role.unwrap_or(current.role);
        let new_disabled = disabled.unwrap_or(current.disabled);
        let was_active_admin = current.role == Role::PoolAdmin && !current.disabled;
        let stays_active_admin = new_role == Role::PoolAdmin && !new_disabled;
        if was_active_admin && !stays_active_admin {
            let row =
                sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'pool-admin' AND disabled = 0 AND id <> $1")
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            let others: i64 = row.try_get("n")?;
            if others == 0 {
                return Err(DbError::Refused(format!(
                    "{:?} is the last enabled pool admin; make another user pool admin first",
                    current.username
                )));
            }
        }
        let revoke = i64::from(new_disabled && !current.disabled);
        sqlx::query("UPDATE users SET role = $1, disabled = $2, token_version = token_version + $3 WHERE id = $4")
            .bind(new_role.as_str())
            .bind(flag(new_disabled))
            .bind(revoke)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.user_fetch(id).await
    }

    /// Store a new password hash and revoke every token issued before.
    pub async fn user_set_password(&self, id: UserId, password_hash: &str) -> DbResult<bool> {
        let result =
            sqlx::query("UPDATE users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2")
                .bind(password_hash)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn user_fetch_by_name(&self, username: &str) -> DbResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        let row = sqlx::query(&sql).bind(username).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_fetch(&self, id: UserId) -> DbResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The console language the user chose; `None` when never chosen (or the user is gone).
    pub async fn user_language(&self, id: UserId) -> DbResult<Option<Language>> {
        let row = sqlx::query("SELECT language FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: Option<String> = row.try_get("language")?;
        text.map(|text| Language::parse(&text).ok_or_else(|| DbError::Corrupt(format!("language = {text:?}"))))
            .transpose()
    }

    /// Remember the user's console language; false when there is no such user.
    pub async fn user_set_language(&self, id: UserId, language: Language) -> DbResult<bool> {
        let result = sqlx::query("UPDATE users SET language = $1 WHERE id = $2")
            .bind(language.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Invalidate every token issued to the user so far (logout, password change).
    pub async fn user_bump_token_version(&self, id: UserId) -> DbResult<()> {
        sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
