//! The scale-out tests' servers come up, are private to a test, and go away.

use portico_testkit::{TestPostgres, TestRedis};
use sqlx::Connection as _;

#[tokio::test]
async fn each_test_gets_an_empty_database_that_is_dropped_after_it() {
    let db = TestPostgres::database().await;
    let mut conn = sqlx::postgres::PgConnection::connect(db.url())
        .await
        .expect("connect to the test database");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count tables");
    assert_eq!(tables, 0);
    conn.close().await.expect("close");
    let name = db.name().to_owned();
    drop(db);

    let admin = std::env::var(portico_testkit::services::POSTGRES_URL_VAR).expect("url");
    let mut conn = sqlx::postgres::PgConnection::connect(&admin)
        .await
        .expect("connect");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .expect("look for the database");
    assert_eq!(left, 0, "{name} was not dropped");
}

#[tokio::test]
async fn a_redis_server_answers_on_its_socket_and_stops() {
    use std::io::{Read as _, Write as _};
    let mut redis = TestRedis::start();
    let path = redis.url().trim_start_matches("redis+unix://").to_owned();
    let mut stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    stream.write_all(b"PING\r\n").expect("write");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).expect("read");
    assert_eq!(&reply, b"+PONG\r\n");
    redis.stop();
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
    redis.restart();
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
}
