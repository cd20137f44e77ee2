//! Route handlers, one module per API family.

pub(crate) mod health;
pub(crate) mod openai;
