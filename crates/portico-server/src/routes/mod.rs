//! Route handlers besides the data plane's ([`crate::data_plane`]): the model list, health,
//! the admin API, and what a control plane serves its hybrid gateways.

pub(crate) mod admin;
pub(crate) mod gateway_sync;
pub(crate) mod health;
pub(crate) mod models;
