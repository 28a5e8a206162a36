//! A small positioned YAML tree built from saphyr's parser events. Policy checking walks this tree
//! by hand (instead of serde) so that every problem in a file is reported, each with its position.
//!
//! Policy files use plain YAML: no anchors, aliases or tags. For those the tree is built straight
//! from the parser's events ([`Builder`]), skipping saphyr's `MarkedYaml` tree (ordered hash maps
//! and a copy of every node). A file that uses any of them is loaded through `MarkedYaml`
//! instead, so both ways give the same tree and the same errors.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, ScanError, YamlData};
use saphyr_parser::{Event, Marker, Parser, Span, SpannedEventReceiver};

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

fn syntax_error(e: &ScanError) -> SyntaxError {
    SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_owned(),
    }
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let mut b = Builder::default();
    let parsed = Parser::new_from_str(source).load(&mut b, true);
    if b.unsupported {
        return parse_marked(source);
    }
    // As saphyr's loader: a parser error wins over a loader error (a duplicate key) found
    // before it, since the parser runs to its end either way.
    parsed.map_err(|e| syntax_error(&e))?;
    if let Some(e) = &b.error {
        return Err(syntax_error(e));
    }
    let mut docs = b.docs.into_iter();
    let first = docs.next();
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            pos: second.pos,
            message: "a policy file holds one YAML document; found a second".into(),
        });
    }
    Ok(first)
}

/// The same through saphyr's `MarkedYaml` loader, for files with anchors, aliases or tags.
fn parse_marked(source: &str) -> Result<Option<Node>, SyntaxError> {
    let docs = MarkedYaml::load_from_str(source).map_err(|e| syntax_error(&e))?;
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

fn pos_at(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// Builds [`Node`]s from parser events, doing what saphyr's loader and [`convert`] do together
/// for plain YAML: scalars resolved by saphyr's own rules, mapping keys converted the same way,
/// a duplicate key the loader's error at the same place. Anything else (an anchor, alias, tag or
/// non-scalar key) sets `unsupported`, and the caller loads the file the slow way.
#[derive(Default)]
struct Builder<'input> {
    docs: Vec<Node>,
    stack: Vec<Frame<'input>>,
    error: Option<ScanError>,
    unsupported: bool,
}

enum Frame<'input> {
    Seq(Pos, Vec<Node>),
    Map {
        pos: Pos,
        entries: Vec<(String, Pos, Node)>,
        /// The keys as saphyr compares them, for duplicate detection.
        keys: Vec<Scalar<'input>>,
        /// A key waiting for its value: the key, its text, where it starts.
        key: Option<(Scalar<'input>, String, Marker)>,
    },
}

impl<'input> SpannedEventReceiver<'input> for Builder<'input> {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.error.is_some() || self.unsupported {
            return;
        }
        let pos = pos_at(span.start);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) => {}
            Event::DocumentEnd => {
                if self.stack.is_empty() && self.docs.is_empty() {
                    // Not produced for plain documents; leave odd streams to saphyr's loader.
                    self.unsupported = true;
                }
            }
            Event::SequenceStart(0, None) => self.stack.push(Frame::Seq(pos, Vec::new())),
            Event::MappingStart(0, None) => self.stack.push(Frame::Map {
                pos,
                entries: Vec::new(),
                keys: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(pos, items)) => Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    Some(Frame::Map { pos, entries, .. }) => Node {
                        pos,
                        value: Value::Map(entries),
                    },
                    None => {
                        self.unsupported = true;
                        return;
                    }
                };
                self.insert(node, None, span.start);
            }
            Event::Scalar(v, style, 0, None) => {
                let Some(scalar) = Scalar::parse_from_cow_and_metadata(v, style, None) else {
                    self.unsupported = true;
                    return;
                };
                let value = match &scalar {
                    Scalar::Null => Value::Null,
                    Scalar::Boolean(b) => Value::Bool(*b),
                    Scalar::Integer(i) => Value::Int(*i),
                    Scalar::FloatingPoint(_) => Value::Float,
                    Scalar::String(s) => Value::Str(s.to_string()),
                };
                self.insert(Node { pos, value }, Some(scalar), span.start);
            }
            // Anchors, aliases, tags.
            _ => self.unsupported = true,
        }
    }
}

impl<'input> Builder<'input> {
    /// Puts a finished node into its parent (or makes it a document). `scalar` is the node's
    /// scalar, for when it is a mapping key.
    fn insert(&mut self, node: Node, scalar: Option<Scalar<'input>>, mark: Marker) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map {
                entries, keys, key, ..
            }) => match key.take() {
                None => {
                    let Some(scalar) = scalar else {
                        // A complex key.
                        self.unsupported = true;
                        return;
                    };
                    let text = match &scalar {
                        Scalar::String(s) => s.to_string(),
                        Scalar::Integer(i) => i.to_string(),
                        Scalar::Boolean(b) => b.to_string(),
                        Scalar::Null => "null".to_owned(),
                        Scalar::FloatingPoint(_) => "\u{0}unsupported key".to_owned(),
                    };
                    *key = Some((scalar, text, mark));
                }
                Some((k, text, kmark)) => {
                    if keys.contains(&k) {
                        self.error = Some(ScanError::new_str(kmark, "duplicated key in mapping"));
                        return;
                    }
                    keys.push(k);
                    entries.push((text, pos_at(kmark), node));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(r: &Result<Option<Node>, SyntaxError>) -> String {
        match r {
            Ok(n) => format!("{n:?}"),
            Err(e) => format!("error {:?} {}", e.pos, e.message),
        }
    }

    /// The event-built tree and errors equal the `MarkedYaml` ones.
    #[test]
    fn same_as_marked_yaml() {
        let cases = [
            "",
            "# only a comment\n",
            "---\n",
            "version: 1\n",
            "version: 1\nrules:\n  - { name: a, match: { program: aws, args: [iam, \"*\"] }, decision: deny }\n",
            "a: 1\nb: 2.5\nc: true\nd: ~\ne: null\nf: \"1\"\ng: '0x1F'\nh: 0x1F\ni: 0o17\nj: +12\nk: .inf\nl:\n",
            "1: a\ntrue: b\nnull: c\n1.5: d\n",
            "a: 1\na: 2\n",
            "a: 1\n'a': 2\n",
            "1: x\n'1': y\n",
            "a: {b: 1, b: 2}\n",
            "a: [1, 2\n",
            "a: 1\na: 2\nb: [\n",
            "a: b: c\n",
            "- a\n- b\n---\n- c\n",
            "a: |\n  text\n  more\nb: >\n  folded\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\nb: !custom x\n",
            "? [a, b]\n: c\n",
            "a:\n  - b: 1\n    c: 2\n  - [x, y]\n",
            "\t- tab\n",
            "a: 'unterminated\n",
            "key: \"\\u00e9 caf\u{e9}\"\n",
            "   a: 1\n  b: 2\n",
            "{a: 1, a: 1}",
            "[a, b]",
            "plain",
        ];
        for c in cases {
            assert_eq!(show(&parse(c)), show(&parse_marked(c)), "input: {c:?}");
        }
    }

    /// The same for the shipped policies (and `GATE_YAML_COMPARE`, a file to compare too).
    #[test]
    fn shipped_policies_same_as_marked_yaml() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.extend(std::env::var_os("GATE_YAML_COMPARE").map(Into::into));
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap();
            assert_eq!(show(&parse(&src)), show(&parse_marked(&src)), "{f:?}");
        }
    }
}
