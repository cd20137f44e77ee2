//! Conditional-routing queries: Portkey's operators, parsed strictly and evaluated over the
//! request.
//!
//! A query is a JSON object. Each key is either a logical operator (`$and`, `$or`: arrays of
//! queries) or a field (`metadata.<path>`, `params.<path>` into the request body, or
//! `url.pathname`). A field's value is a literal (shorthand for `$eq`) or an object of
//! comparison operators: `$eq $ne $gt $gte $lt $lte $in $nin $regex`, plus Portkey's
//! `$length` (the length of an array, compared with a number or with operators). Several keys
//! in one object, and several operators on one field, must all hold.
//!
//! Semantics follow Portkey's router, with its rough edges fixed:
//! - `$eq`/`$ne`/`$in`/`$nin` compare JSON values exactly (strings are not numbers), except
//!   that `1` and `1.0` are equal.
//! - `$gt $gte $lt $lte` compare numbers, and strings that parse as numbers (metadata values
//!   are strings, so `{"metadata.tier": {"$gte": 2}}` works); anything else does not match.
//! - `$regex` matches strings (numbers and booleans by their JSON text); the pattern is
//!   compiled when the config is parsed (linear-time engine, 1 MiB size limit).
//! - A missing field matches `$ne` and `$nin` only.
//! - Dotted paths walk objects by key and arrays by index (`params.messages.0.role`).

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use crate::config::{ConfigPathError, FieldPath};

/// Queries nested deeper than this (through `$and`/`$or`/`$length`) are rejected.
const MAX_QUERY_DEPTH: usize = 32;
/// The compiled size limit of one `$regex`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a query sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// `x-portkey-metadata` (string values in practice).
    pub metadata: &'a Map<String, Value>,
    /// The request body.
    pub params: &'a Map<String, Value>,
    /// The request's URL path (`/v1/chat/completions`), for `url.pathname`.
    pub url_path: Option<&'a str>,
    /// The body's `model` as sent (`gpt-4o` or `@slug/gpt-4o`). Not read by queries (they
    /// see `params.model`): the planner needs it for targets whose `override_params` set no
    /// model, because health is kept per provider *and* model.
    pub model: Option<&'a str>,
}

/// A parsed query: every clause must hold.
#[derive(Debug, Clone)]
pub struct Query {
    clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
enum Clause {
    And(Vec<Query>),
    Or(Vec<Query>),
    Field { field: Field, ops: Vec<Op> },
}

/// A field reference: `metadata.a.b`, `params.x.0`, `url.pathname`.
#[derive(Debug, Clone)]
struct Field {
    root: Root,
    segments: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Root {
    Metadata,
    Params,
    UrlPath,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Regex(Regex),
    Length(Vec<Op>),
}

impl Query {
    /// Parses the query at `path`.
    pub(crate) fn parse(value: &Value, path: &FieldPath) -> Result<Query, ConfigPathError> {
        parse_query(value, path, 0)
    }

    /// Whether the request matches.
    pub fn matches(&self, cx: &RequestContext<'_>) -> bool {
        self.clauses.iter().all(|c| match c {
            Clause::And(qs) => qs.iter().all(|q| q.matches(cx)),
            Clause::Or(qs) => qs.iter().any(|q| q.matches(cx)),
            Clause::Field { field, ops } => {
                let value = field.lookup(cx);
                ops.iter().all(|op| op.holds(value.as_ref()))
            }
        })
    }
}

fn parse_query(value: &Value, path: &FieldPath, depth: usize) -> Result<Query, ConfigPathError> {
    if depth > MAX_QUERY_DEPTH {
        return Err(path.err(format!(
            "queries nest at most {MAX_QUERY_DEPTH} levels deep"
        )));
    }
    let Value::Object(map) = value else {
        return Err(path.err(format!(
            "must be a query object such as {{\"metadata.plan\": {{\"$eq\": \"pro\"}}}}, got {}",
            kind(value)
        )));
    };
    if map.is_empty() {
        return Err(path.err(
            "an empty query would match every request; give a condition, or use `strategy.default`",
        ));
    }
    let mut clauses = Vec::with_capacity(map.len());
    for (key, v) in map {
        let at = path.key(key);
        let clause = match key.as_str() {
            "$and" => Clause::And(parse_query_list(v, &at, depth)?),
            "$or" => Clause::Or(parse_query_list(v, &at, depth)?),
            k if k.starts_with('$') => {
                return Err(at.err(format!(
                    "`{k}` is not a logical operator; use `$and` or `$or` here, and comparison operators inside a field (`{{\"params.model\": {{\"{k}\": ...}}}}`)"
                )));
            }
            _ => Clause::Field {
                field: Field::parse(key, &at)?,
                ops: parse_ops(v, &at, depth)?,
            },
        };
        clauses.push(clause);
    }
    Ok(Query { clauses })
}

fn parse_query_list(
    value: &Value,
    path: &FieldPath,
    depth: usize,
) -> Result<Vec<Query>, ConfigPathError> {
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, q)| parse_query(q, &path.index(i), depth + 1))
            .collect(),
        _ => Err(path.err(format!(
            "must be a non-empty array of query objects, got {}",
            kind(value)
        ))),
    }
}

impl Field {
    fn parse(key: &str, path: &FieldPath) -> Result<Field, ConfigPathError> {
        let (root, rest) = if key == "url.pathname" {
            return Ok(Field {
                root: Root::UrlPath,
                segments: Vec::new(),
            });
        } else if let Some(rest) = key.strip_prefix("metadata.") {
            (Root::Metadata, rest)
        } else if let Some(rest) = key.strip_prefix("params.") {
            (Root::Params, rest)
        } else {
            return Err(path.err(format!(
                "unknown query field `{key}`; fields are `metadata.<key>`, `params.<field>` (the request body, dotted for nested fields) or `url.pathname`"
            )));
        };
        let segments: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(path.err(format!(
                "`{key}` has an empty path segment; write fields as `params.a.b`"
            )));
        }
        Ok(Field { root, segments })
    }

    fn lookup(&self, cx: &RequestContext<'_>) -> Option<Value> {
        let map = match self.root {
            Root::UrlPath => return cx.url_path.map(|p| Value::String(p.to_owned())),
            Root::Metadata => cx.metadata,
            Root::Params => cx.params,
        };
        let (first, rest) = self.segments.split_first()?;
        let mut cur = map.get(first)?;
        for seg in rest {
            cur = match cur {
                Value::Object(m) => m.get(seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur.clone())
    }
}

fn parse_ops(value: &Value, path: &FieldPath, depth: usize) -> Result<Vec<Op>, ConfigPathError> {
    let Value::Object(map) = value else {
        return Ok(vec![Op::Eq(value.clone())]);
    };
    if map.is_empty() {
        return Err(path.err(
            "an empty operator object; write {\"$eq\": ...} or another operator ($eq $ne $gt $gte $lt $lte $in $nin $regex $length)",
        ));
    }
    map.iter()
        .map(|(op, operand)| parse_op(op, operand, &path.key(op), depth))
        .collect()
}

fn parse_op(op: &str, v: &Value, path: &FieldPath, depth: usize) -> Result<Op, ConfigPathError> {
    Ok(match op {
        "$eq" => Op::Eq(v.clone()),
        "$ne" => Op::Ne(v.clone()),
        "$gt" => Op::Gt(operand_number(v, path)?),
        "$gte" => Op::Gte(operand_number(v, path)?),
        "$lt" => Op::Lt(operand_number(v, path)?),
        "$lte" => Op::Lte(operand_number(v, path)?),
        "$in" => Op::In(operand_array(v, path)?),
        "$nin" => Op::Nin(operand_array(v, path)?),
        "$regex" => Op::Regex(operand_regex(v, path)?),
        "$length" => {
            if depth >= MAX_QUERY_DEPTH {
                return Err(path.err(format!(
                    "queries nest at most {MAX_QUERY_DEPTH} levels deep"
                )));
            }
            match v {
                Value::Number(n) if n.as_u64().is_some() => Op::Length(vec![Op::Eq(v.clone())]),
                Value::Object(_) => Op::Length(parse_ops(v, path, depth + 1)?),
                _ => {
                    return Err(path.err(format!(
                        "must be a whole number or an operator object such as {{\"$gt\": 2}}, got {}",
                        kind(v)
                    )));
                }
            }
        }
        "$and" | "$or" => {
            return Err(path.err(format!(
                "`{op}` combines whole queries; put it beside the fields (`{{\"{op}\": [{{...}}, {{...}}]}}`), not inside one"
            )));
        }
        other => {
            return Err(path.err(format!(
                "unknown operator `{other}`; use $eq $ne $gt $gte $lt $lte $in $nin $regex $length (to compare with an object, write {{\"$eq\": {{...}}}})"
            )));
        }
    })
}

fn operand_number(v: &Value, path: &FieldPath) -> Result<f64, ConfigPathError> {
    as_number(v).ok_or_else(|| {
        path.err(format!(
            "must be a number (or a string holding one), got {}",
            kind(v)
        ))
    })
}

fn operand_array(v: &Value, path: &FieldPath) -> Result<Vec<Value>, ConfigPathError> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(path.err(format!("must be an array of values, got {}", kind(v)))),
    }
}

fn operand_regex(v: &Value, path: &FieldPath) -> Result<Regex, ConfigPathError> {
    let Value::String(pattern) = v else {
        return Err(path.err(format!(
            "must be a regular expression string, got {}",
            kind(v)
        )));
    };
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("invalid pattern").trim();
            path.err(format!(
                "`{pattern}` is not a valid regular expression: {last}"
            ))
        })
}

impl Op {
    fn holds(&self, value: Option<&Value>) -> bool {
        let Some(v) = value else {
            return matches!(self, Op::Ne(_) | Op::Nin(_));
        };
        match self {
            Op::Eq(x) => json_eq(v, x),
            Op::Ne(x) => !json_eq(v, x),
            Op::Gt(x) => as_number(v).is_some_and(|n| n > *x),
            Op::Gte(x) => as_number(v).is_some_and(|n| n >= *x),
            Op::Lt(x) => as_number(v).is_some_and(|n| n < *x),
            Op::Lte(x) => as_number(v).is_some_and(|n| n <= *x),
            Op::In(xs) => xs.iter().any(|x| json_eq(v, x)),
            Op::Nin(xs) => !xs.iter().any(|x| json_eq(v, x)),
            Op::Regex(re) => match v {
                Value::String(s) => re.is_match(s),
                Value::Number(_) | Value::Bool(_) => re.is_match(&v.to_string()),
                _ => false,
            },
            Op::Length(ops) => match v {
                Value::Array(items) => {
                    let len = Value::from(items.len());
                    ops.iter().all(|op| op.holds(Some(&len)))
                }
                _ => false,
            },
        }
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// A number, or a string that parses as a finite number.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// A value's JSON type and text, for error messages (`string "x"`), kept short.
pub(crate) fn kind(v: &Value) -> String {
    let name = match v {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
    };
    let mut text = v.to_string();
    if text.len() > 40 {
        let cut = (0..=37)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{name} {text}")
}

#[cfg(test)]
#[path = "tests/query.rs"]
mod tests;
