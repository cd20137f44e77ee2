//! Following one pub/sub channel for as long as the process runs: a dedicated connection
//! (a subscribed connection can do nothing else), made again whenever it drops (Redis
//! restarted, the network broke), with a short backoff, so that a restarted Redis is followed
//! again within about a second.
//!
//! Messages published while the subscription was down are lost (Redis does not keep them):
//! each follower is told when it is subscribed again ([`Event::Subscribed`]) so it can read
//! what it may have missed from a key.

use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

/// What happened on a followed channel.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// Subscribed (again): messages may have been missed.
    Subscribed,
    /// A message's payload.
    Message(&'a [u8]),
}

/// The longest pause between two attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long one attempt to connect and subscribe may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// Follows `channel` until `stop`, calling `on` with each event.
pub(crate) async fn follow(
    client: redis::Client,
    channel: String,
    stop: CancellationToken,
    mut on: impl FnMut(Event<'_>) + Send,
) {
    let mut backoff = Duration::from_millis(50);
    let mut lost = false;
    loop {
        let subscribed = tokio::select! {
            () = stop.cancelled() => return,
            subscribed = tokio::time::timeout(CONNECT_WITHIN, subscribe(&client, &channel)) => subscribed,
        };
        match subscribed {
            Ok(Ok(mut pubsub)) => {
                if lost {
                    tracing::info!(%channel, "Redis: subscribed again");
                }
                backoff = Duration::from_millis(50);
                on(Event::Subscribed);
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    match message {
                        Some(message) => on(Event::Message(message.get_payload_bytes())),
                        None => break,
                    }
                }
                tracing::debug!(%channel, "Redis: subscription lost; subscribing again");
            }
            Ok(Err(error)) => {
                if !lost {
                    tracing::debug!(%channel, %error, "Redis: cannot subscribe; retrying");
                }
            }
            Err(_) => tracing::debug!(%channel, "Redis: subscribing timed out; retrying"),
        }
        lost = true;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
