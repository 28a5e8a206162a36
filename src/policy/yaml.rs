//! A small positioned YAML tree built from saphyr's marked nodes. Policy checking walks this tree
//! by hand (instead of serde) so that every problem in a file is reported, each with its position.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::diag::Pos;

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str(String),
    Seq(Vec<Node>),
    /// Keys kept as written (scalar keys only; others are reported when converting).
    Map(Vec<(String, Pos, Node)>),
    /// Something gate's policy never uses (aliases, complex keys, bad tagged values).
    Unsupported(&'static str),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float => "a floating-point number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Unsupported(what) => what,
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let docs = MarkedYaml::load_from_str(source).map_err(|e| SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    })?;
    let mut docs = docs.into_iter();
    let first = docs.next();
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            pos: pos_of(&second),
            message: "a policy file holds one YAML document; found a second".into(),
        });
    }
    Ok(first.map(convert))
}

fn pos_of(node: &MarkedYaml<'_>) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

fn convert(node: MarkedYaml<'_>) -> Node {
    let pos = pos_of(&node);
    let value = match node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(b),
            Scalar::Integer(i) => Value::Int(i),
            Scalar::FloatingPoint(_) => Value::Float,
            Scalar::String(s) => Value::Str(s.into_owned()),
        },
        YamlData::Representation(s, _, _) => Value::Str(s.into_owned()),
        YamlData::Sequence(items) => Value::Seq(items.into_iter().map(convert).collect()),
        YamlData::Mapping(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| {
                    let kpos = pos_of(&k);
                    let key = match k.data {
                        YamlData::Value(Scalar::String(s)) => s.into_owned(),
                        YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                        YamlData::Value(Scalar::Null) => "null".to_owned(),
                        YamlData::Representation(s, _, _) => s.into_owned(),
                        _ => "\u{0}unsupported key".to_owned(),
                    };
                    (key, kpos, convert(v))
                })
                .collect(),
        ),
        YamlData::Alias(_) => Value::Unsupported("an alias"),
        YamlData::Tagged(_, inner) => return convert(*inner),
        YamlData::BadValue => Value::Unsupported("a value that does not match its tag"),
    };
    Node { pos, value }
}
