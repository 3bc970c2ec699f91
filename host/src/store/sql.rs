//! The one implementation of [`Store`](super::Store), instantiated for each backend.
//!
//! The SQL below is the dialect SQLite (≥ 3.35) and PostgreSQL share: `$n` parameters (the
//! SQLite driver binds `$n` by number), `RETURNING`, `ON CONFLICT … DO UPDATE`. Integers are
//! `i64` on both sides (`BIGINT` in PostgreSQL), byte strings `BLOB`/`BYTEA`.

/// Implements `Store` for `$ty`, a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_sql_store {
    ($ty:ty, $db:ty, $name:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $ty {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn create_user(
                &self,
                user: &$crate::store::NewUser,
                now: $crate::store::UnixSeconds,
            ) -> $crate::store::Result<()> {
                use sqlx::Row as _;
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query(
                    "INSERT INTO users (name, password_hash, counter, created_at) \
                     VALUES ($1, $2, 0, $3) RETURNING id",
                )
                .bind(&user.name)
                .bind(&user.password_hash)
                .bind($crate::store::to_db(now, "now")?)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if $crate::store::is_unique_violation(&e) {
                        $crate::store::StoreError::UserExists
                    } else {
                        e.into()
                    }
                })?;
                let id: i64 = row.try_get(0)?;
                insert_pairs(&mut tx, id, &user.pairs).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_user(
                &self,
                name: &str,
            ) -> $crate::store::Result<Option<$crate::store::UserRecord>> {
                use sqlx::Row as _;
                // One snapshot for the user and its pairs.
                let mut tx = self.pool.begin().await?;
                let Some(row) = sqlx::query(
                    "SELECT id, password_hash, counter, created_at FROM users WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                let id: i64 = row.try_get(0)?;
                let rows = sqlx::query(
                    "SELECT prompt, salt, verifier FROM challenge_pairs \
                     WHERE user_id = $1 ORDER BY idx",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut pairs = Vec::with_capacity(rows.len());
                for r in rows {
                    pairs.push($crate::store::ChallengePair {
                        prompt: r.try_get(0)?,
                        salt: r.try_get(1)?,
                        verifier: $crate::store::Zeroizing::new(r.try_get(2)?),
                    });
                }
                Ok(Some($crate::store::UserRecord {
                    name: name.to_owned(),
                    password_hash: row.try_get(1)?,
                    pairs,
                    counter: $crate::store::from_db(row.try_get(2)?, "counter")?,
                    created: $crate::store::from_db(row.try_get(3)?, "created_at")?,
                }))
            }

            async fn list_users(&self) -> $crate::store::Result<Vec<$crate::store::UserSummary>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT u.name, u.created_at, \
                       COALESCE(t.failures, 0), COALESCE(t.locked_until, 0), \
                       (SELECT COUNT(*) FROM challenge_pairs p WHERE p.user_id = u.id) \
                     FROM users u LEFT JOIN throttle t ON t.key = 'u:' || u.name \
                     ORDER BY u.name",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::UserSummary {
                            name: r.try_get(0)?,
                            created: $crate::store::from_db(r.try_get(1)?, "created_at")?,
                            throttle: $crate::store::ThrottleState {
                                failures: $crate::store::from_db(r.try_get(2)?, "failures")?,
                                locked_until: $crate::store::from_db(
                                    r.try_get(3)?,
                                    "locked_until",
                                )?,
                            },
                            pair_count: $crate::store::from_db(r.try_get(4)?, "pair count")?,
                        })
                    })
                    .collect()
            }

            async fn remove_user(&self, name: &str) -> $crate::store::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query("DELETE FROM users WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM throttle WHERE key = $1")
                    .bind($crate::store::ThrottleKey::User(name).to_key())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn unlock_user(&self, name: &str) -> $crate::store::Result<bool> {
                use sqlx::Row as _;
                sqlx::query("DELETE FROM throttle WHERE key = $1")
                    .bind($crate::store::ThrottleKey::User(name).to_key())
                    .execute(&self.pool)
                    .await?;
                let row = sqlx::query("SELECT COUNT(*) FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get::<i64, _>(0)? > 0)
            }

            async fn replace_pairs(
                &self,
                name: &str,
                pairs: &[$crate::store::ChallengePair],
            ) -> $crate::store::Result<bool> {
                use sqlx::Row as _;
                let mut tx = self.pool.begin().await?;
                // A write first: locks the user row (PostgreSQL) / takes the write lock (SQLite).
                let Some(row) =
                    sqlx::query("UPDATE users SET name = name WHERE name = $1 RETURNING id")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?
                else {
                    return Ok(false);
                };
                let id: i64 = row.try_get(0)?;
                sqlx::query("DELETE FROM challenge_pairs WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_pairs(&mut tx, id, pairs).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn next_counter(&self, name: &str) -> $crate::store::Result<u64> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "UPDATE users SET counter = counter + 1 WHERE name = $1 RETURNING counter",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::store::StoreError::UserNotFound)?;
                $crate::store::from_db(row.try_get(0)?, "counter")
            }

            async fn put_bundle(
                &self,
                bundle: &$crate::store::NewBundle,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO challenge_bundles (id, user_name, body, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&bundle.id)
                .bind(&bundle.user)
                .bind(&bundle.body)
                .bind($crate::store::to_db(bundle.expires_at, "expires_at")?)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if $crate::store::is_unique_violation(&e) {
                        $crate::store::StoreError::Duplicate
                    } else {
                        e.into()
                    }
                })?;
                Ok(())
            }

            async fn take_bundle(
                &self,
                id: &[u8],
                now: $crate::store::UnixSeconds,
            ) -> $crate::store::Result<Option<$crate::store::StoredBundle>> {
                use sqlx::Row as _;
                let Some(row) = sqlx::query(
                    "DELETE FROM challenge_bundles WHERE id = $1 \
                     RETURNING user_name, body, expires_at",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                let expires_at = $crate::store::from_db(row.try_get(2)?, "expires_at")?;
                if now >= expires_at {
                    return Ok(None);
                }
                Ok(Some($crate::store::StoredBundle {
                    user: row.try_get(0)?,
                    body: row.try_get(1)?,
                    expires_at,
                }))
            }

            async fn put_pending_login(
                &self,
                login: &$crate::store::NewPendingLogin,
                now: $crate::store::UnixSeconds,
                max_pending: u64,
            ) -> $crate::store::Result<bool> {
                // One statement: the bound on logins in flight and the insert.
                let n = sqlx::query(
                    "INSERT INTO pending_logins (id, stage, parts, expires_at) \
                     SELECT $1, $2, $3, $4 \
                     WHERE (SELECT COUNT(*) FROM pending_logins WHERE expires_at > $5) < $6",
                )
                .bind(&login.id)
                .bind(login.stage.as_str())
                .bind(&login.parts[..])
                .bind($crate::store::to_db(login.expires_at, "expires_at")?)
                .bind($crate::store::to_db(now, "now")?)
                .bind($crate::store::to_db(max_pending, "max_pending")?)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if $crate::store::is_unique_violation(&e) {
                        $crate::store::StoreError::Duplicate
                    } else {
                        e.into()
                    }
                })?
                .rows_affected();
                Ok(n == 1)
            }

            async fn take_pending_login(
                &self,
                id: &[u8],
                stage: $crate::store::LoginStage,
                now: $crate::store::UnixSeconds,
            ) -> $crate::store::Result<Option<$crate::store::Zeroizing<Vec<u8>>>> {
                use sqlx::Row as _;
                let Some(row) = sqlx::query(
                    "DELETE FROM pending_logins WHERE id = $1 AND stage = $2 \
                     RETURNING parts, expires_at",
                )
                .bind(id)
                .bind(stage.as_str())
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                let parts = $crate::store::Zeroizing::new(row.try_get::<Vec<u8>, _>(0)?);
                let expires_at = $crate::store::from_db(row.try_get(1)?, "expires_at")?;
                if now >= expires_at {
                    return Ok(None);
                }
                Ok(Some(parts))
            }

            async fn create_session(
                &self,
                s: &$crate::store::NewSession,
            ) -> $crate::store::Result<()> {
                let n = sqlx::query(
                    "INSERT INTO sessions (token_hash, session_id, user_id, created_at, \
                       last_seen, expires_at, secret, last_seq_from_client, last_seq_to_client) \
                     SELECT $1, $2, id, $3, $3, $4, $5, 0, 0 FROM users WHERE name = $6",
                )
                .bind(&s.token_hash)
                .bind(&s.session_id)
                .bind($crate::store::to_db(s.created, "created")?)
                .bind($crate::store::to_db(s.expires_at, "expires_at")?)
                .bind(&s.secret[..])
                .bind(&s.user)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    if $crate::store::is_unique_violation(&e) {
                        $crate::store::StoreError::Duplicate
                    } else {
                        e.into()
                    }
                })?
                .rows_affected();
                if n == 0 {
                    return Err($crate::store::StoreError::UserNotFound);
                }
                Ok(())
            }

            async fn touch_session(
                &self,
                token_hash: &[u8],
                now: $crate::store::UnixSeconds,
                idle_timeout: u64,
            ) -> $crate::store::Result<Option<$crate::store::Session>> {
                use sqlx::Row as _;
                let now_db = $crate::store::to_db(now, "now")?;
                // Alive iff last_seen > now - idle and expires_at > now; written so that
                // nothing overflows: idle_seen_after may be negative.
                let idle_seen_after = now_db.saturating_sub($crate::store::to_db(
                    idle_timeout,
                    "idle_timeout",
                )?);
                let row = sqlx::query(
                    "UPDATE sessions SET last_seen = $2 \
                     WHERE token_hash = $1 AND last_seen > $3 AND expires_at > $2 \
                     RETURNING session_id, (SELECT name FROM users WHERE id = user_id), \
                       created_at, expires_at, secret, last_seq_from_client, last_seq_to_client",
                )
                .bind(token_hash)
                .bind(now_db)
                .bind(idle_seen_after)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    // Expired (or absent): make sure it is gone.
                    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(&self.pool)
                        .await?;
                    return Ok(None);
                };
                Ok(Some($crate::store::Session {
                    session_id: row.try_get(0)?,
                    user: row.try_get(1)?,
                    created: $crate::store::from_db(row.try_get(2)?, "created_at")?,
                    last_seen: now,
                    expires_at: $crate::store::from_db(row.try_get(3)?, "expires_at")?,
                    secret: $crate::store::Zeroizing::new(row.try_get(4)?),
                    last_seq_from_client: $crate::store::from_db(row.try_get(5)?, "seq")?,
                    last_seq_to_client: $crate::store::from_db(row.try_get(6)?, "seq")?,
                }))
            }

            async fn delete_session(&self, token_hash: &[u8]) -> $crate::store::Result<bool> {
                let n = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn advance_seq(
                &self,
                session_id: &[u8],
                direction: $crate::store::Direction,
                seq: u64,
            ) -> $crate::store::Result<bool> {
                let q = match direction {
                    $crate::store::Direction::ClientToHost => {
                        "UPDATE sessions SET last_seq_from_client = $2 \
                         WHERE session_id = $1 AND last_seq_from_client < $2"
                    }
                    $crate::store::Direction::HostToClient => {
                        "UPDATE sessions SET last_seq_to_client = $2 \
                         WHERE session_id = $1 AND last_seq_to_client < $2"
                    }
                };
                let n = sqlx::query(q)
                    .bind(session_id)
                    .bind($crate::store::to_db(seq, "seq")?)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn next_seq(
                &self,
                session_id: &[u8],
                direction: $crate::store::Direction,
            ) -> $crate::store::Result<u64> {
                use sqlx::Row as _;
                let q = match direction {
                    $crate::store::Direction::ClientToHost => {
                        "UPDATE sessions SET last_seq_from_client = last_seq_from_client + 1 \
                         WHERE session_id = $1 RETURNING last_seq_from_client"
                    }
                    $crate::store::Direction::HostToClient => {
                        "UPDATE sessions SET last_seq_to_client = last_seq_to_client + 1 \
                         WHERE session_id = $1 RETURNING last_seq_to_client"
                    }
                };
                let row = sqlx::query(q)
                    .bind(session_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::store::StoreError::SessionNotFound)?;
                $crate::store::from_db(row.try_get(0)?, "seq")
            }

            async fn record_failure(
                &self,
                key: $crate::store::ThrottleKey<'_>,
                now: $crate::store::UnixSeconds,
                backoff: &$crate::store::Backoff,
            ) -> $crate::store::Result<$crate::store::ThrottleState> {
                use sqlx::Row as _;
                let key = key.to_key();
                let now_db = $crate::store::to_db(now, "now")?;
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query(
                    "INSERT INTO throttle (key, failures, locked_until, last_failure) \
                     VALUES ($1, 1, 0, $2) \
                     ON CONFLICT (key) DO UPDATE SET failures = throttle.failures + 1, \
                       last_failure = $2 \
                     RETURNING failures, locked_until",
                )
                .bind(&key)
                .bind(now_db)
                .fetch_one(&mut *tx)
                .await?;
                let failures = $crate::store::from_db(row.try_get(0)?, "failures")?;
                let old_until = $crate::store::from_db(row.try_get(1)?, "locked_until")?;
                let lock = backoff.lock_secs(failures);
                let locked_until = if lock == 0 {
                    old_until
                } else {
                    // Capped to what the database holds.
                    now.saturating_add(lock).min(i64::MAX as u64).max(old_until)
                };
                if locked_until != old_until {
                    sqlx::query("UPDATE throttle SET locked_until = $2 WHERE key = $1")
                        .bind(&key)
                        .bind($crate::store::to_db(locked_until, "locked_until")?)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok($crate::store::ThrottleState {
                    failures,
                    locked_until,
                })
            }

            async fn throttle_state(
                &self,
                key: $crate::store::ThrottleKey<'_>,
            ) -> $crate::store::Result<$crate::store::ThrottleState> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT failures, locked_until FROM throttle WHERE key = $1")
                    .bind(key.to_key())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else {
                    return Ok($crate::store::ThrottleState::default());
                };
                Ok($crate::store::ThrottleState {
                    failures: $crate::store::from_db(row.try_get(0)?, "failures")?,
                    locked_until: $crate::store::from_db(row.try_get(1)?, "locked_until")?,
                })
            }

            async fn clear_throttle(
                &self,
                key: $crate::store::ThrottleKey<'_>,
            ) -> $crate::store::Result<()> {
                sqlx::query("DELETE FROM throttle WHERE key = $1")
                    .bind(key.to_key())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn enqueue_message(
                &self,
                recipient: &str,
                body: &[u8],
                now: $crate::store::UnixSeconds,
            ) -> $crate::store::Result<u64> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "INSERT INTO relay_queue (recipient_id, body, created_at) \
                     SELECT id, $2, $3 FROM users WHERE name = $1 RETURNING id",
                )
                .bind(recipient)
                .bind(body)
                .bind($crate::store::to_db(now, "now")?)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::store::StoreError::UserNotFound)?;
                $crate::store::from_db(row.try_get(0)?, "message id")
            }

            async fn fetch_messages(
                &self,
                recipient: &str,
                after: u64,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::store::QueuedMessage>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT q.id, q.body, q.created_at FROM relay_queue q \
                     JOIN users u ON u.id = q.recipient_id \
                     WHERE u.name = $1 AND q.id > $2 ORDER BY q.id LIMIT $3",
                )
                .bind(recipient)
                .bind($crate::store::to_db(after, "after")?)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::QueuedMessage {
                            id: $crate::store::from_db(r.try_get(0)?, "message id")?,
                            recipient: recipient.to_owned(),
                            body: r.try_get(1)?,
                            created: $crate::store::from_db(r.try_get(2)?, "created_at")?,
                        })
                    })
                    .collect()
            }

            async fn ack_message(&self, recipient: &str, id: u64) -> $crate::store::Result<bool> {
                let n = sqlx::query(
                    "DELETE FROM relay_queue WHERE id = $2 \
                     AND recipient_id = (SELECT id FROM users WHERE name = $1)",
                )
                .bind(recipient)
                .bind($crate::store::to_db(id, "message id")?)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            async fn append_audit(
                &self,
                r: &$crate::store::AuditRecord,
            ) -> $crate::store::Result<()> {
                let seq = $crate::store::to_db(r.seq, "seq")?;
                let res = sqlx::query(
                    "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, \
                       created_at) \
                     SELECT $1, $2, $3, $4, $5, $6 \
                     WHERE ($2 = 1 AND NOT EXISTS \
                             (SELECT 1 FROM audit_log WHERE session_id = $1)) \
                        OR EXISTS (SELECT 1 FROM audit_log \
                             WHERE session_id = $1 AND seq = $2 - 1 AND record_hash = $3)",
                )
                .bind(&r.session_id)
                .bind(seq)
                .bind(&r.prev_hash)
                .bind(&r.record_hash)
                .bind(&r.payload)
                .bind($crate::store::to_db(r.created, "created")?)
                .execute(&self.pool)
                .await;
                match res {
                    Ok(done) if done.rows_affected() == 1 => Ok(()),
                    Ok(_) => Err($crate::store::StoreError::AuditChainMismatch),
                    Err(e) if $crate::store::is_unique_violation(&e) => {
                        Err($crate::store::StoreError::AuditChainMismatch)
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn accept_message(
                &self,
                m: &$crate::store::AcceptMessage,
            ) -> $crate::store::Result<$crate::store::AcceptOutcome> {
                use sqlx::Row as _;
                let seq = $crate::store::to_db(m.seq, "seq")?;
                // Starts with a write: SQLite takes its write lock at once, PostgreSQL locks
                // the session row, so concurrent accepts of one session are serialized and
                // the chain head read below is the committed one.
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE sessions SET last_seq_from_client = $2 \
                     WHERE session_id = $1 AND last_seq_from_client < $2",
                )
                .bind(&m.session_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    let last = sqlx::query(
                        "SELECT last_seq_from_client FROM sessions WHERE session_id = $1",
                    )
                    .bind(&m.session_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.rollback().await?;
                    let Some(last) = last else {
                        return Ok($crate::store::AcceptOutcome::NoSession);
                    };
                    let last: i64 = last.try_get(0)?;
                    return Ok(if last == seq {
                        $crate::store::AcceptOutcome::Replayed
                    } else {
                        $crate::store::AcceptOutcome::Reordered
                    });
                }
                let head = sqlx::query(
                    "SELECT seq, record_hash FROM audit_log WHERE session_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(&m.session_id)
                .fetch_optional(&mut *tx)
                .await?;
                let (audit_seq, prev_hash) = match head {
                    Some(r) => (
                        $crate::store::from_db(r.try_get(0)?, "seq")?
                            .checked_add(1)
                            .ok_or($crate::store::StoreError::OutOfRange { what: "seq" })?,
                        r.try_get::<Vec<u8>, _>(1)?,
                    ),
                    None => (1, $crate::audit::genesis_hash(&m.session_id).to_vec()),
                };
                let record_hash =
                    $crate::audit::record_hash(&m.session_id, audit_seq, &prev_hash, &m.payload);
                sqlx::query(
                    "INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, \
                       created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&m.session_id)
                .bind($crate::store::to_db(audit_seq, "seq")?)
                .bind(&prev_hash)
                .bind(&record_hash[..])
                .bind(&m.payload)
                .bind($crate::store::to_db(m.created, "created")?)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if $crate::store::is_unique_violation(&e) {
                        $crate::store::StoreError::AuditChainMismatch
                    } else {
                        e.into()
                    }
                })?;
                let mut queued = None;
                if let Some((recipient, body)) = &m.queue {
                    let row = sqlx::query(
                        "INSERT INTO relay_queue (recipient_id, body, created_at) \
                         SELECT id, $2, $3 FROM users WHERE name = $1 RETURNING id",
                    )
                    .bind(recipient)
                    .bind(body)
                    .bind($crate::store::to_db(m.created, "now")?)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(r) = row {
                        queued = Some($crate::store::from_db(r.try_get(0)?, "message id")?);
                    }
                }
                tx.commit().await?;
                Ok($crate::store::AcceptOutcome::Accepted { audit_seq, queued })
            }

            async fn unchecked_audit_heads(
                &self,
                limit: u32,
            ) -> $crate::store::Result<Vec<(Vec<u8>, u64, Vec<u8>)>> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT a.session_id, a.seq, a.record_hash FROM audit_log a \
                     WHERE a.seq = (SELECT MAX(b.seq) FROM audit_log b \
                                    WHERE b.session_id = a.session_id) \
                       AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c \
                                       WHERE c.session_id = a.session_id AND c.seq = a.seq) \
                     ORDER BY a.session_id LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get(0)?,
                            $crate::store::from_db(r.try_get(1)?, "seq")?,
                            r.try_get(2)?,
                        ))
                    })
                    .collect()
            }

            async fn audit_head(
                &self,
                session_id: &[u8],
            ) -> $crate::store::Result<Option<(u64, Vec<u8>)>> {
                use sqlx::Row as _;
                let row = sqlx::query(
                    "SELECT seq, record_hash FROM audit_log WHERE session_id = $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| Ok(($crate::store::from_db(r.try_get(0)?, "seq")?, r.try_get(1)?)))
                    .transpose()
            }

            async fn audit_page(
                &self,
                after: Option<&$crate::store::AuditCursor>,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::store::AuditRecord>> {
                use sqlx::Row as _;
                const COLS: &str =
                    "SELECT session_id, seq, prev_hash, record_hash, payload, created_at \
                     FROM audit_log";
                let rows = keyset_page(&self.pool, COLS, after, limit).await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::AuditRecord {
                            session_id: r.try_get(0)?,
                            seq: $crate::store::from_db(r.try_get(1)?, "seq")?,
                            prev_hash: r.try_get(2)?,
                            record_hash: r.try_get(3)?,
                            payload: r.try_get(4)?,
                            created: $crate::store::from_db(r.try_get(5)?, "created_at")?,
                        })
                    })
                    .collect()
            }

            async fn put_audit_checkpoint(
                &self,
                c: &$crate::store::AuditCheckpoint,
            ) -> $crate::store::Result<()> {
                let res = sqlx::query(
                    "INSERT INTO audit_checkpoints (session_id, seq, record_hash, signature, \
                       created_at) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE EXISTS (SELECT 1 FROM audit_log \
                       WHERE session_id = $1 AND seq = $2 AND record_hash = $3)",
                )
                .bind(&c.session_id)
                .bind($crate::store::to_db(c.seq, "seq")?)
                .bind(&c.record_hash)
                .bind(&c.signature)
                .bind($crate::store::to_db(c.created, "created")?)
                .execute(&self.pool)
                .await;
                match res {
                    Ok(done) if done.rows_affected() == 1 => Ok(()),
                    Ok(_) => Err($crate::store::StoreError::AuditChainMismatch),
                    Err(e) if $crate::store::is_unique_violation(&e) => {
                        Err($crate::store::StoreError::Duplicate)
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn audit_checkpoint_page(
                &self,
                after: Option<&$crate::store::AuditCursor>,
                limit: u32,
            ) -> $crate::store::Result<Vec<$crate::store::AuditCheckpoint>> {
                use sqlx::Row as _;
                const COLS: &str = "SELECT session_id, seq, record_hash, signature, created_at \
                     FROM audit_checkpoints";
                let rows = keyset_page(&self.pool, COLS, after, limit).await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::AuditCheckpoint {
                            session_id: r.try_get(0)?,
                            seq: $crate::store::from_db(r.try_get(1)?, "seq")?,
                            record_hash: r.try_get(2)?,
                            signature: r.try_get(3)?,
                            created: $crate::store::from_db(r.try_get(4)?, "created_at")?,
                        })
                    })
                    .collect()
            }

            async fn purge_expired(
                &self,
                now: $crate::store::UnixSeconds,
                idle_timeout: u64,
            ) -> $crate::store::Result<$crate::store::Purged> {
                let now_db = $crate::store::to_db(now, "now")?;
                let idle_seen_after =
                    now_db.saturating_sub($crate::store::to_db(idle_timeout, "idle_timeout")?);
                let bundles = sqlx::query("DELETE FROM challenge_bundles WHERE expires_at <= $1")
                    .bind(now_db)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                let pending_logins =
                    sqlx::query("DELETE FROM pending_logins WHERE expires_at <= $1")
                        .bind(now_db)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                let sessions = sqlx::query(
                    "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen <= $2",
                )
                .bind(now_db)
                .bind(idle_seen_after)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok($crate::store::Purged {
                    bundles,
                    sessions,
                    pending_logins,
                })
            }
        }

        /// One page of `select` (a `SELECT … FROM t` over a table keyed by
        /// `(session_id, seq)`), in key order, strictly after `after`. Shared by the audit log and
        /// its checkpoints so both page the same way.
        async fn keyset_page(
            pool: &sqlx::Pool<$db>,
            select: &str,
            after: Option<&$crate::store::AuditCursor>,
            limit: u32,
        ) -> $crate::store::Result<Vec<<$db as sqlx::Database>::Row>> {
            let rows = match after {
                None => {
                    sqlx::query(&format!("{select} ORDER BY session_id, seq LIMIT $1"))
                        .bind(i64::from(limit))
                        .fetch_all(pool)
                        .await?
                }
                Some(c) => {
                    sqlx::query(&format!(
                        "{select} WHERE session_id > $1 OR (session_id = $1 AND seq > $2) \
                         ORDER BY session_id, seq LIMIT $3"
                    ))
                    .bind(&c.session_id)
                    .bind($crate::store::to_db(c.seq, "seq")?)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?
                }
            };
            Ok(rows)
        }

        /// Inserts `pairs` for user `id` in card order.
        async fn insert_pairs(
            tx: &mut sqlx::Transaction<'_, $db>,
            id: i64,
            pairs: &[$crate::store::ChallengePair],
        ) -> $crate::store::Result<()> {
            for (idx, p) in pairs.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO challenge_pairs (user_id, idx, prompt, salt, verifier) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind($crate::store::to_db(idx as u64, "pair index")?)
                .bind(&p.prompt)
                .bind(&p.salt)
                .bind(&p.verifier[..])
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }
    };
}
