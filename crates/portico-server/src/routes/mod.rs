//! Route handlers, one module per API family.

pub(crate) mod admin;
pub(crate) mod health;
pub(crate) mod messages;
pub(crate) mod openai;
