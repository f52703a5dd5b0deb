//! Accounts: users, their argon2id password hashes, roles and token versions.

use super::*;
use api::UserId;
use api::v1::Role;

#[derive(Clone, Debug)]
pub struct UserRecord {
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
    })
}

const USER_COLUMNS: &str = "id, username, password_hash, role, disabled, token_version";

impl Db {
    pub async fn user_count(&self) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    pub async fn user_insert(&self, username: &str, password_hash: &str, role: Role) -> DbResult<UserRecord> {
        let id = UserId::new_random();
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, disabled, token_version, created_at)
             VALUES ($1, $2, $3, $4, 0, 0, $5)",
        )
        .bind(id.to_string())
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now_ms())
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
        })
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

    /// Invalidate every token issued to the user so far (logout, password change).
    pub async fn user_bump_token_version(&self, id: UserId) -> DbResult<()> {
        sqlx::query("UPDATE users SET token_version = token_version + 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
