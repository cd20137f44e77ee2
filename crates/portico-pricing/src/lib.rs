//! The cost of a request: Portico's built-in price table and the arithmetic on usage.
//!
//! Where it sits: above `portico-core`; the engine prices each record with it, the admin API
//! lists prices from it.
//!
//! This crate prices tokens; it does no I/O and keeps no state beyond the table parsed once
//! from `prices.json`, a data file compiled into the binary (its header names each
//! provider's source and the date the prices were checked). It does not decide *whose*
//! price applies beyond "catalog override, else built-in, else unknown" ([`cost_usd`]).
//!
//! - [`PriceTable`]: list prices by provider kind and model, with the name normalisation a
//!   user expects (dated snapshots, `models/` prefixes, Bedrock profile prefixes).
//! - [`ModelPrice`]: one model's prices and [`ModelPrice::cost`] of a [`Usage`].
//! - [`PriceOverride`]: a catalog override whose missing fields come from the table.
//!
//! An unknown price is `None`, never zero and never a guess.

mod normalize;
mod price;
mod table;

pub use price::{ModelPrice, PriceOverride};
pub use table::{PriceTable, PriceTableError};

use portico_core::{ProviderKind, Usage};

/// The price of `model` of a provider of `kind`: the catalog's override (`models[].pricing`)
/// laid over the built-in price field by field ([`PriceOverride::resolve`]), or the built-in
/// price alone; `None` when input or output price stays unknown.
pub fn price_of(
    kind: ProviderKind,
    model: &str,
    override_price: Option<&PriceOverride>,
) -> Option<ModelPrice> {
    let builtin = PriceTable::builtin().lookup(kind, model);
    match override_price {
        Some(over) => over.resolve(builtin),
        None => builtin,
    }
}

/// The cost in USD of `usage` on `model` of a provider of `kind`, at [`price_of`]; `None`
/// when the price is unknown or the upstream reported no usage.
pub fn cost_usd(
    override_price: Option<&PriceOverride>,
    kind: ProviderKind,
    model: &str,
    usage: Option<Usage>,
) -> Option<f64> {
    let usage = usage?;
    Some(price_of(kind, model, override_price)?.cost(&usage))
}

#[cfg(test)]
mod tests;
