//! A small positioned YAML tree built from saphyr's parser events. Policy checking walks this tree
//! by hand (instead of serde) so that every problem in a file is reported, each with its position.
//!
//! Policy files use plain YAML. Anchors (`&a`), aliases (`*a`) and merge keys (`<<`) are refused,
//! each reported with its position: an alias makes a rule say what another place says, so a
//! reviewer reading the rule does not see what it matches, and a few lines of nested aliases
//! expand into billions of nodes (the "billion laughs"). They are refused from the parser's
//! events, before any alias is expanded. For plain YAML the tree is built straight from those
//! events ([`Builder`]), skipping saphyr's `MarkedYaml` tree (ordered hash maps and a copy of
//! every node). A file with tags is loaded through `MarkedYaml` instead, so both ways give the
//! same tree and the same errors.

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

/// A YAML feature a policy file may not use, where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub pos: Pos,
    pub what: RefusedKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// `&name` before a node.
    Anchor,
    /// `*name` in place of a node.
    Alias,
    /// `<<` as a mapping key.
    MergeKey,
}

impl Refused {
    pub fn message(&self) -> &'static str {
        match self.what {
            RefusedKind::Anchor => "YAML anchors (`&name`) are not accepted in a policy file",
            RefusedKind::Alias => "YAML aliases (`*name`) are not accepted in a policy file",
            RefusedKind::MergeKey => "YAML merge keys (`<<`) are not accepted in a policy file",
        }
    }

    pub fn hint(&self) -> &'static str {
        "write the value out in full where it is used: a rule must say everything it matches \
         in one place, and aliases can expand a small file into a huge one"
    }
}

/// Why a file could not be read as a policy's YAML.
#[derive(Debug)]
pub enum YamlError {
    Syntax(SyntaxError),
    /// Every anchor, alias and merge key in the file, in order.
    Refused(Vec<Refused>),
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder::default();
    let parsed = Parser::new_from_str(source).load(&mut b, true);
    // As saphyr's loader: a parser error wins over a loader error (a duplicate key) found
    // before it, since the parser runs to its end either way.
    parsed.map_err(|e| YamlError::Syntax(syntax_error(&e)))?;
    if !b.refused.is_empty() {
        return Err(YamlError::Refused(b.refused));
    }
    if b.unsupported {
        return parse_marked(source).map_err(YamlError::Syntax);
    }
    if let Some(e) = &b.error {
        return Err(YamlError::Syntax(syntax_error(e)));
    }
    let mut docs = b.docs.into_iter();
    let first = docs.next();
    if let Some(second) = docs.next() {
        return Err(YamlError::Syntax(SyntaxError {
            pos: second.pos,
            message: "a policy file holds one YAML document; found a second".into(),
        }));
    }
    Ok(first)
}

/// The same through saphyr's `MarkedYaml` loader, for files with tags (never one with anchors or
/// aliases: [`parse`] refuses those before, so no alias is ever expanded).
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
/// a duplicate key the loader's error at the same place. Anchors, aliases and merge keys are
/// collected in `refused` (on every event, whatever else was found). Anything else (a tag or a
/// non-scalar key) sets `unsupported`, and the caller loads the file the slow way.
#[derive(Default)]
struct Builder<'input> {
    docs: Vec<Node>,
    stack: Vec<Frame<'input>>,
    error: Option<ScanError>,
    unsupported: bool,
    refused: Vec<Refused>,
    /// For [`Builder::refuse`]: one entry per open collection, `Some(key_next)` for a mapping.
    shape: Vec<Option<bool>>,
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
        let pos = pos_at(span.start);
        self.refuse(&ev, pos);
        if self.error.is_some() || self.unsupported || !self.refused.is_empty() {
            return;
        }
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
    /// Notes an anchor, an alias or a merge key (`<<` as a key, however it is quoted: a reader
    /// of the file cannot tell a quoted one from a merge). Keeps its own record of where keys
    /// are, since the tree stops being built at the first problem.
    fn refuse(&mut self, ev: &Event<'input>, pos: Pos) {
        let starts_node = matches!(
            ev,
            Event::Alias(_)
                | Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        let mut is_key = false;
        if starts_node && let Some(Some(key_next)) = self.shape.last_mut() {
            is_key = *key_next;
            *key_next = !*key_next;
        }
        match ev {
            Event::SequenceStart(..) => self.shape.push(None),
            Event::MappingStart(..) => self.shape.push(Some(true)),
            Event::SequenceEnd | Event::MappingEnd => {
                self.shape.pop();
            }
            _ => {}
        }
        let what = match ev {
            Event::Alias(_) => RefusedKind::Alias,
            Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
            | Event::Scalar(_, _, anchor, _)
                if *anchor != 0 =>
            {
                RefusedKind::Anchor
            }
            Event::Scalar(v, _, _, _) if is_key && v == "<<" => RefusedKind::MergeKey,
            _ => return,
        };
        self.refused.push(Refused { pos, what });
    }

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

    fn show_parsed(r: &Result<Option<Node>, YamlError>) -> String {
        match r {
            Ok(n) => format!("{n:?}"),
            Err(YamlError::Syntax(e)) => format!("error {:?} {}", e.pos, e.message),
            Err(YamlError::Refused(r)) => format!("refused {r:?}"),
        }
    }

    fn refused(src: &str) -> Vec<(usize, usize, RefusedKind)> {
        match parse(src) {
            Err(YamlError::Refused(r)) => {
                r.iter().map(|r| (r.pos.line, r.pos.col, r.what)).collect()
            }
            other => panic!("{src:?} was not refused: {}", show_parsed(&other)),
        }
    }

    /// Every anchor, alias and merge key is refused at its place, in one pass, whatever else
    /// the file holds (a tag before them, a duplicate key), and an alias is never expanded.
    #[test]
    fn anchors_aliases_and_merge_keys_are_refused_where_written() {
        use RefusedKind::*;
        assert_eq!(refused("a: &x 1\nb: *x\n"), [(1, 4, Anchor), (2, 4, Alias)]);
        assert_eq!(
            refused("groups:\n  sre: &p [a, b]\n  sec: *p\nr:\n  - <<: {x: 1}\n    '<<': 2\n"),
            [
                (2, 8, Anchor),
                (3, 8, Alias),
                (5, 5, MergeKey),
                (6, 5, MergeKey)
            ]
        );
        // A tag first used to send the whole file to the loader that expands aliases.
        assert_eq!(
            refused("a: !!str 1\nb: &y {c: 1}\nd: *y\n"),
            [(2, 4, Anchor), (3, 4, Alias)]
        );
        // An alias of no anchor is the parser's syntax error.
        assert!(matches!(parse("a: 1\nb: *x\n"), Err(YamlError::Syntax(_))));
    }

    /// The "billion laughs": nine levels of ten aliases each would be 10^9 nodes if expanded.
    #[test]
    fn alias_bomb_is_refused_without_expanding() {
        let mut src = String::from("a0: &a0 [lol]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let list = [prev.as_str(); 10].join(", ");
            src.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let r = refused(&src);
        assert_eq!(r.len(), 10 + 9 * 10);
    }

    #[test]
    fn merge_key_as_a_value_is_plain_text() {
        assert!(parse("a: '<<'\nb: [<<]\n").is_ok());
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
            assert_eq!(
                show_parsed(&parse(c)),
                show_parsed(&parse_marked(c).map_err(YamlError::Syntax)),
                "input: {c:?}"
            );
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
            assert_eq!(
                show_parsed(&parse(&src)),
                show_parsed(&parse_marked(&src).map_err(YamlError::Syntax)),
                "{f:?}"
            );
        }
    }
}
