//! SQL for plugin entity rows: every statement is scoped by `tenant_id = ?`,
//! every value is a bound parameter, and identifiers come only from a
//! [`TableShape`] built from a validated manifest.

use rusqlite::types::{ToSqlOutput, Value as SqlRaw, ValueRef};
use rusqlite::{ToSql, params_from_iter};
use serde_json::{Map, Value};

use super::plugin_schema::quote;
use super::{StorageError, Tx};

/// How a column's values are stored and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// TEXT read as a JSON string.
    Text,
    /// INTEGER read as a JSON integer.
    Integer,
    /// REAL read as a JSON number.
    Real,
    /// INTEGER 0/1 read as a JSON boolean.
    Bool,
    /// TEXT holding JSON, read as the JSON value.
    Json,
}

/// The columns of an entity table (declared fields; base columns implied),
/// with the statements every row operation uses built once.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// Table name.
    pub table: String,
    /// Declared fields in order.
    pub columns: Vec<(String, ColumnKind)>,
    /// Quoted base and declared columns, comma-separated.
    select_list: String,
    /// `SELECT … WHERE tenant_id = ?1 AND id = ?2`.
    get_sql: String,
}

impl TableShape {
    /// The shape of `table` with these declared columns.
    pub fn new(table: String, columns: Vec<(String, ColumnKind)>) -> TableShape {
        let select_list = BASE
            .iter()
            .map(|c| quote(c))
            .chain(columns.iter().map(|(c, _)| quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let get_sql = format!(
            "SELECT {select_list} FROM {} WHERE tenant_id = ?1 AND id = ?2",
            quote(&table)
        );
        TableShape {
            table,
            columns,
            select_list,
            get_sql,
        }
    }
}

/// A bound SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Owned(SqlRaw::Null),
            SqlValue::Integer(i) => ToSqlOutput::Owned(SqlRaw::Integer(*i)),
            SqlValue::Real(f) => ToSqlOutput::Owned(SqlRaw::Real(*f)),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// A comparison in a list filter.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `<>` (NULLs included)
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// Case-insensitive substring.
    Like,
    /// One of several values.
    In,
    /// `IS NULL` (true) or `IS NOT NULL` (false).
    Null(bool),
}

/// One filter on a (validated) column.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Column name (declared field or base column).
    pub column: String,
    /// Comparison.
    pub op: FilterOp,
    /// Operand(s).
    pub values: Vec<SqlValue>,
}

/// A list request.
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Filters, ANDed.
    pub filters: Vec<Filter>,
    /// (column, descending), in order; `id` is appended as a tiebreaker.
    pub sort: Vec<(String, bool)>,
    /// Page size.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u32,
    /// Whether to count all matches.
    pub count: bool,
}

/// One row as JSON: base columns and declared fields.
pub type Record = Map<String, Value>;

const BASE: [&str; 4] = ["id", "created_at", "updated_at", "created_by"];

fn select_list(shape: &TableShape) -> &str {
    &shape.select_list
}

fn read_row(shape: &TableShape, row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (i, name) in BASE.iter().enumerate() {
        let v: Option<String> = row.get(i)?;
        out.insert((*name).to_owned(), v.map_or(Value::Null, Value::String));
    }
    for (j, (name, kind)) in shape.columns.iter().enumerate() {
        let idx = BASE.len() + j;
        let value = match row.get_ref(idx)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => match kind {
                ColumnKind::Bool => Value::Bool(i != 0),
                ColumnKind::Real => Value::from(i as f64),
                _ => Value::from(i),
            },
            ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            ValueRef::Text(t) => {
                let s = String::from_utf8_lossy(t).into_owned();
                match kind {
                    ColumnKind::Json => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                    _ => Value::String(s),
                }
            }
            ValueRef::Blob(_) => Value::Null,
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// `WHERE` clause (after `tenant_id = ?1`) and its parameters.
fn where_clause(filters: &[Filter], params: &mut Vec<SqlValue>) -> String {
    let mut sql = String::from("tenant_id = ?1");
    for f in filters {
        let col = quote(&f.column);
        let bind = |v: &SqlValue, params: &mut Vec<SqlValue>| {
            params.push(v.clone());
            format!("?{}", params.len())
        };
        let clause = match &f.op {
            FilterOp::Eq => format!("{col} = {}", bind(&f.values[0], params)),
            FilterOp::Ne => format!("({col} IS NULL OR {col} <> {})", bind(&f.values[0], params)),
            FilterOp::Gt => format!("{col} > {}", bind(&f.values[0], params)),
            FilterOp::Gte => format!("{col} >= {}", bind(&f.values[0], params)),
            FilterOp::Lt => format!("{col} < {}", bind(&f.values[0], params)),
            FilterOp::Lte => format!("{col} <= {}", bind(&f.values[0], params)),
            FilterOp::Like => format!(
                "plinth_fold({col}) LIKE plinth_fold({}) ESCAPE '\\'",
                bind(&f.values[0], params)
            ),
            FilterOp::In => {
                let marks: Vec<String> = f.values.iter().map(|v| bind(v, params)).collect();
                format!("{col} IN ({})", marks.join(", "))
            }
            FilterOp::Null(true) => format!("{col} IS NULL"),
            FilterOp::Null(false) => format!("{col} IS NOT NULL"),
        };
        sql.push_str(" AND ");
        sql.push_str(&clause);
    }
    sql
}

impl Tx<'_> {
    /// A page of a tenant's rows, and the total when asked.
    pub fn entity_list(
        &self,
        shape: &TableShape,
        tenant_id: &str,
        spec: &ListSpec,
    ) -> Result<(Vec<Record>, Option<u64>), StorageError> {
        let mut params = vec![SqlValue::Text(tenant_id.to_owned())];
        let where_sql = where_clause(&spec.filters, &mut params);
        let mut order: Vec<String> = spec
            .sort
            .iter()
            .map(|(c, desc)| format!("{} {}", quote(c), if *desc { "DESC" } else { "ASC" }))
            .collect();
        if !spec.sort.iter().any(|(c, _)| c == "id") {
            let desc = spec.sort.last().is_none_or(|(_, d)| *d);
            order.push(format!("\"id\" {}", if desc { "DESC" } else { "ASC" }));
        }
        let total = if spec.count {
            let n: i64 = self
                .conn()
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM {} WHERE {where_sql}",
                    quote(&shape.table)
                ))?
                .query_row(params_from_iter(params.iter()), |r| r.get(0))?;
            Some(n.unsigned_abs())
        } else {
            None
        };
        let n = params.len();
        params.push(SqlValue::Integer(i64::from(spec.limit)));
        params.push(SqlValue::Integer(i64::from(spec.offset)));
        let sql = format!(
            "SELECT {} FROM {} WHERE {where_sql} ORDER BY {} LIMIT ?{} OFFSET ?{}",
            select_list(shape),
            quote(&shape.table),
            order.join(", "),
            n + 1,
            n + 2
        );
        let rows = self
            .conn()
            .prepare_cached(&sql)?
            .query_map(params_from_iter(params.iter()), |r| read_row(shape, r))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }

    /// One row of a tenant by id.
    pub fn entity_get(
        &self,
        shape: &TableShape,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, StorageError> {
        let mut stmt = self.conn().prepare_cached(&shape.get_sql)?;
        let mut rows = stmt.query_map([tenant_id, id], |r| read_row(shape, r))?;
        Ok(rows.next().transpose()?)
    }

    /// Insert a row with the given declared-field values.
    pub fn entity_insert(
        &self,
        table: &str,
        tenant_id: &str,
        id: &str,
        created_by: Option<&str>,
        now: &str,
        values: &[(String, SqlValue)],
    ) -> Result<(), StorageError> {
        let mut cols = vec!["id", "tenant_id", "created_at", "updated_at", "created_by"]
            .into_iter()
            .map(quote)
            .collect::<Vec<_>>();
        let mut params = vec![
            SqlValue::Text(id.to_owned()),
            SqlValue::Text(tenant_id.to_owned()),
            SqlValue::Text(now.to_owned()),
            SqlValue::Text(now.to_owned()),
            created_by.map_or(SqlValue::Null, |c| SqlValue::Text(c.to_owned())),
        ];
        for (c, v) in values {
            cols.push(quote(c));
            params.push(v.clone());
        }
        let marks: Vec<String> = (1..=params.len()).map(|i| format!("?{i}")).collect();
        self.conn()
            .prepare_cached(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote(table),
                cols.join(", "),
                marks.join(", ")
            ))?
            .execute(params_from_iter(params.iter()))?;
        Ok(())
    }

    /// Update the given columns of a tenant's row; false if no such row.
    pub fn entity_update(
        &self,
        table: &str,
        tenant_id: &str,
        id: &str,
        now: &str,
        values: &[(String, SqlValue)],
    ) -> Result<bool, StorageError> {
        let mut params = vec![
            SqlValue::Text(tenant_id.to_owned()),
            SqlValue::Text(id.to_owned()),
            SqlValue::Text(now.to_owned()),
        ];
        let mut sets = vec!["\"updated_at\" = ?3".to_owned()];
        for (c, v) in values {
            params.push(v.clone());
            sets.push(format!("{} = ?{}", quote(c), params.len()));
        }
        let n = self
            .conn()
            .prepare_cached(&format!(
                "UPDATE {} SET {} WHERE tenant_id = ?1 AND id = ?2",
                quote(table),
                sets.join(", ")
            ))?
            .execute(params_from_iter(params.iter()))?;
        Ok(n > 0)
    }

    /// Delete a tenant's row; false if no such row.
    pub fn entity_delete(
        &self,
        table: &str,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, StorageError> {
        let n = self
            .conn()
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE tenant_id = ?1 AND id = ?2",
                quote(table)
            ))?
            .execute([tenant_id, id])?;
        Ok(n > 0)
    }

    /// Whether a tenant has a row with `column = value` (other than `except_id`).
    pub fn entity_value_exists(
        &self,
        table: &str,
        tenant_id: &str,
        column: &str,
        value: &SqlValue,
        except_id: Option<&str>,
    ) -> Result<bool, StorageError> {
        let sql = format!(
            "SELECT EXISTS(SELECT 1 FROM {} WHERE tenant_id = ?1 AND {} = ?2 AND (?3 IS NULL OR id <> ?3))",
            quote(table),
            quote(column)
        );
        let except = except_id.map_or(SqlValue::Null, |e| SqlValue::Text(e.to_owned()));
        Ok(self.conn().prepare_cached(&sql)?.query_row(
            params_from_iter([SqlValue::Text(tenant_id.to_owned()), value.clone(), except].iter()),
            |r| r.get(0),
        )?)
    }

    /// `EXPLAIN QUERY PLAN` details of a statement (for index tests).
    pub fn explain_query_plan(&self, sql: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map([], |r| r.get::<_, String>(3))?
            .collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clause_binds_every_value() {
        let mut params = vec![SqlValue::Text("t".into())];
        let sql = where_clause(
            &[
                Filter {
                    column: "qty".into(),
                    op: FilterOp::Gte,
                    values: vec![SqlValue::Integer(3)],
                },
                Filter {
                    column: "status".into(),
                    op: FilterOp::In,
                    values: vec![
                        SqlValue::Text("a".into()),
                        SqlValue::Text("b'; DROP".into()),
                    ],
                },
                Filter {
                    column: "price".into(),
                    op: FilterOp::Null(true),
                    values: vec![],
                },
            ],
            &mut params,
        );
        assert_eq!(
            sql,
            "tenant_id = ?1 AND \"qty\" >= ?2 AND \"status\" IN (?3, ?4) AND \"price\" IS NULL"
        );
        assert_eq!(params.len(), 4);
        assert!(!sql.contains("DROP"));
    }
}
