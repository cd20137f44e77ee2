//! The one loop that runs a dialect's stream state machine over an upstream's stream.
//!
//! A dialect's [`Translate`] is pure: fed one piece of the upstream's stream at a time, it
//! appends the OpenAI chunks that piece gives. [`translate`] drives it lazily, the same way
//! for every dialect: a piece is read only when the client side polls for the next chunk, the
//! chunks a piece gave go out before the error it ended with, nothing follows an error, and
//! nothing more is read once the answer is complete. Dropping the stream drops the upstream
//! (and so cancels it).

use std::collections::VecDeque;
use std::pin::Pin;

use futures::{Stream, StreamExt, stream};

use crate::{EventStream, ProviderError, SseEvent};

/// A stream's state machine: one upstream piece in, OpenAI chunks out.
pub trait Translate: Send + 'static {
    /// One piece of the upstream's stream (an SSE event, an AWS event-stream frame).
    type Input: Send + 'static;

    /// Translates one piece, appending the chunks it gives to `out`.
    ///
    /// # Errors
    ///
    /// An in-band error of the upstream, or a piece that cannot be read; it ends the stream,
    /// after the chunks appended before it.
    fn on_input(
        &mut self,
        input: Self::Input,
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError>;

    /// The upstream's stream ended: appends the closing chunks.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] when the answer was cut short.
    fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError>;

    /// Whether the answer is complete (`[DONE]` written): nothing more is read.
    fn is_done(&self) -> bool;
}

/// What the loop carries between polls.
struct State<S, T> {
    inputs: Pin<Box<S>>,
    translator: T,
    /// Chunks given but not yet taken.
    pending: VecDeque<SseEvent>,
    /// The error that ends the stream, sent once the chunks before it are out.
    failure: Option<ProviderError>,
    ended: bool,
}

/// The OpenAI chunks of an upstream stream, translated lazily by `translator` (see the
/// module docs).
pub fn translate<S, T>(inputs: S, translator: T) -> EventStream
where
    S: Stream<Item = Result<T::Input, ProviderError>> + Send + 'static,
    T: Translate,
{
    let state = State {
        inputs: Box::pin(inputs),
        translator,
        pending: VecDeque::new(),
        failure: None,
        ended: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if let Some(err) = state.failure.take() {
                return Some((Err(err), state));
            }
            if state.ended || state.translator.is_done() {
                return None;
            }
            let mut out = Vec::new();
            let step = match state.inputs.next().await {
                Some(Ok(input)) => state.translator.on_input(input, &mut out),
                Some(Err(err)) => Err(err),
                None => {
                    state.ended = true;
                    state.translator.on_end(&mut out)
                }
            };
            state.pending.extend(out);
            if let Err(err) = step {
                state.ended = true;
                state.failure = Some(err);
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;

    /// Echoes each number as a chunk; `0` is an in-band error, `9` completes the answer.
    struct Numbers(bool);

    impl Translate for Numbers {
        type Input = u8;

        fn on_input(&mut self, n: u8, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
            match n {
                0 => Err(ProviderError::StreamBroken("zero".into())),
                9 => {
                    self.0 = true;
                    out.push(SseEvent::done());
                    Ok(())
                }
                n => {
                    out.push(SseEvent::data(n.to_string()));
                    Ok(())
                }
            }
        }

        fn on_end(&mut self, _out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
            Err(ProviderError::StreamBroken("cut".into()))
        }

        fn is_done(&self) -> bool {
            self.0
        }
    }

    fn run(inputs: Vec<u8>) -> Vec<String> {
        let events = translate(stream::iter(inputs.into_iter().map(Ok)), Numbers(false));
        block_on(events.collect::<Vec<_>>())
            .into_iter()
            .map(|item| match item {
                Ok(event) => String::from_utf8_lossy(&event.data).into_owned(),
                Err(err) => format!("error: {err}"),
            })
            .collect()
    }

    #[test]
    fn chunks_then_the_error_and_nothing_after_done() {
        assert_eq!(run(vec![1, 2, 9, 3]), ["1", "2", "[DONE]"]);
        assert_eq!(
            run(vec![1, 0, 2]),
            ["1", "error: the upstream stream broke: zero"]
        );
        assert_eq!(run(vec![1]), ["1", "error: the upstream stream broke: cut"]);
    }
}
