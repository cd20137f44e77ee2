//! Route handlers besides the data plane's ([`crate::data_plane`]): the model list, health,
//! the admin API.

pub(crate) mod admin;
pub(crate) mod health;
pub(crate) mod models;
