//! A pickle reader that only builds inert values, iteratively and within the bytes it is given.
//!
//! It interprets the binary opcodes of pickle protocols 2–5 (plus the few text opcodes that
//! protocol-2 streams still contain: `GLOBAL`, `PERSID`, `INT`, `LONG`, `PUT`, `GET`) the way
//! Python's unpickler does, with three differences that make it safe on hostile input:
//!
//! * **Nothing is looked up or called.** `GLOBAL`/`STACK_GLOBAL` give an inert
//!   [`Value::Global`] (module and name), `REDUCE`/`NEWOBJ`/`NEWOBJ_EX` an inert [`Value::Call`]
//!   that records the callable and its arguments, `BUILD` records the state, and a persistent id
//!   becomes [`Value::Persistent`]. The one exception is `collections.OrderedDict`, which becomes
//!   a plain [`Value::Dict`]. Opcodes that could only matter to code execution or out-of-band data
//!   (`INST`, `OBJ`, `EXT*`, `NEXT_BUFFER`, …) are rejected.
//! * **Values live in an arena** ([`Pickle`]) and refer to each other by index. Building,
//!   sharing through the memo (no deep copies: no exponential blow-up), dropping and walking
//!   never recurse, so a pickle nesting a million lists cannot overflow the stack; cycles (a
//!   list appended to itself) are harmless.
//! * **Every declared length is checked against the bytes left** before anything is allocated,
//!   and every arena entry is paid for by at least one input byte, so memory stays within a
//!   small multiple of the input size.

use std::collections::HashMap;

/// Index of a value in a [`Pickle`] arena.
pub type Id = u32;

/// One inert value of a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A larger integer: its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string (also Python 2 `str` that is valid UTF-8).
    Str(String),
    /// Bytes (also Python 2 `str` that is not UTF-8).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list.
    List(Vec<Id>),
    /// A dict (or `collections.OrderedDict`), in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A set or frozenset.
    Set(Vec<Id>),
    /// A reference to a global (`module.name`); never resolved.
    Global {
        /// Module, e.g. `torch._utils`.
        module: String,
        /// Name, e.g. `_rebuild_tensor_v2`.
        name: String,
    },
    /// What `REDUCE`/`NEWOBJ` would build: never called.
    Call {
        /// The callable (usually a [`Value::Global`]).
        callable: Id,
        /// Its arguments (usually a [`Value::Tuple`]).
        args: Id,
        /// State given by `BUILD`, if any.
        state: Option<Id>,
        /// Items given by `APPEND(S)` / `SETITEM(S)` to this object, if any.
        items: Vec<Id>,
    },
    /// A persistent id (`torch.save` uses them for storages).
    Persistent(Id),
}

impl Value {
    /// A short name of the kind of value, for messages (never the value itself).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global { .. } => "global",
            Value::Call { .. } => "object",
            Value::Persistent(_) => "persistent id",
        }
    }
}

/// A parsed pickle: an arena of values and the root.
#[derive(Debug, Clone)]
pub struct Pickle {
    values: Vec<Value>,
    root: Id,
}

impl Pickle {
    /// The value at `id`.
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id as usize]
    }

    /// The root value's id.
    pub fn root(&self) -> Id {
        self.root
    }

    /// Every value, in creation order (the order of the opcodes that made them).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The string at `id`, if it is one.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer at `id`, if it is one that fits `i64` (`bool` counts, as in Python).
    pub fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of the tuple or list at `id`.
    pub fn seq(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// Whether `id` is the global `module.name`.
    pub fn is_global(&self, id: Id, module: &str, name: &str) -> bool {
        matches!(self.get(id), Value::Global { module: m, name: n } if m == module && n == name)
    }
}

/// Highest pickle protocol understood.
const MAX_PROTOCOL: u8 = 5;

/// Parse one pickle from the start of `data` (up to and including its `STOP`).
///
/// Returns the pickle and the number of bytes it took. Errors name the byte offset (within
/// `data`) and the opcode.
pub fn parse(data: &[u8]) -> Result<(Pickle, usize), String> {
    let mut m = Machine {
        data,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = m.pos;
        let op = match m.take(1) {
            Ok(b) => b[0],
            Err(_) => return Err(format!("truncated: no STOP opcode in {} bytes", data.len())),
        };
        match m.step(op) {
            Ok(true) => {
                let root = m.pop().map_err(|e| format!("at byte {at} (STOP): {e}"))?;
                let pickle = Pickle { values: m.values, root };
                return Ok((pickle, m.pos));
            }
            Ok(false) => {}
            Err(e) => return Err(format!("at byte {at} (opcode {}): {e}", opcode_name(op))),
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

type Step<T> = Result<T, String>;

impl<'a> Machine<'a> {
    /// The next `n` bytes; an error (before any allocation) when fewer are left.
    fn take(&mut self, n: u64) -> Step<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left as u64 {
            return Err(format!("needs {n} bytes but only {left} are left"));
        }
        let data = self.data;
        let s = &data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Step<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Step<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Step<i32> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Step<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Bytes up to (not including) the next newline, which is consumed.
    fn line(&mut self) -> Step<&'a [u8]> {
        let data = self.data;
        let rest = &data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("text argument without a newline")?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn text_line(&mut self) -> Step<String> {
        let l = self.line()?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        String::from_utf8(l.to_vec()).map_err(|_| "text argument is not UTF-8".to_string())
    }

    fn new_value(&mut self, v: Value) -> Step<Id> {
        let id = Id::try_from(self.values.len()).map_err(|_| "too many values".to_string())?;
        self.values.push(v);
        Ok(id)
    }

    fn push_new(&mut self, v: Value) -> Step<()> {
        let id = self.new_value(v)?;
        self.stack.push(id);
        Ok(())
    }

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Step<Id> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Step<Id> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".into());
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    /// The items since the last `MARK`, which is removed.
    fn pop_mark(&mut self) -> Step<Vec<Id>> {
        let k = self.marks.pop().ok_or("no MARK on the stack")?;
        Ok(self.stack.split_off(k))
    }

    fn memo_put(&mut self, key: u64) -> Step<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Step<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo key {key} was never stored"))?;
        self.stack.push(id);
        Ok(())
    }

    fn string(bytes: &[u8]) -> Step<Value> {
        std::str::from_utf8(bytes)
            .map(|s| Value::Str(s.to_string()))
            .map_err(|_| "string is not valid UTF-8".to_string())
    }

    /// A Python 2 `str`: text when it is UTF-8 (as `torch.load`'s default `encoding='utf-8'`).
    fn py2_string(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        }
    }

    fn long(bytes: &[u8]) -> Value {
        if bytes.len() <= 8 {
            let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut b = [fill; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(b))
        } else {
            Value::BigInt(bytes.to_vec())
        }
    }

    fn add_items(&mut self, target: Id, items: Vec<Id>) -> Step<()> {
        match &mut self.values[target as usize] {
            Value::List(v) | Value::Set(v) => v.extend(items),
            Value::Call { items: v, .. } => v.extend(items),
            other => return Err(format!("cannot append to a {}", other.kind())),
        }
        Ok(())
    }

    fn set_items(&mut self, target: Id, kv: Vec<Id>) -> Step<()> {
        if !kv.len().is_multiple_of(2) {
            return Err("odd number of items for a dict".into());
        }
        match &mut self.values[target as usize] {
            Value::Dict(d) => d.extend(kv.chunks_exact(2).map(|p| (p[0], p[1]))),
            Value::Call { items, .. } => items.extend(kv),
            other => return Err(format!("cannot set items of a {}", other.kind())),
        }
        Ok(())
    }

    fn reduce(&mut self, callable: Id, args: Id) -> Step<()> {
        // `collections.OrderedDict()` (Python 3) and `OrderedDict([[k, v], …])` (Python 2.7)
        // become plain dicts, so that state dicts read the same whatever wrote them.
        if self.is_ordered_dict(callable) {
            if let Some(pairs) = self.ordered_dict_pairs(args) {
                return self.push_new(Value::Dict(pairs));
            }
        }
        self.push_new(Value::Call {
            callable,
            args,
            state: None,
            items: Vec::new(),
        })
    }

    fn is_ordered_dict(&self, id: Id) -> bool {
        matches!(&self.values[id as usize], Value::Global { module, name }
            if name == "OrderedDict" && (module == "collections" || module == "torch._utils"))
    }

    fn ordered_dict_pairs(&self, args: Id) -> Option<Vec<(Id, Id)>> {
        let Value::Tuple(a) = &self.values[args as usize] else {
            return None;
        };
        match a.as_slice() {
            [] => Some(Vec::new()),
            [items] => match &self.values[*items as usize] {
                Value::Dict(d) => Some(d.clone()),
                Value::List(pairs) | Value::Tuple(pairs) => pairs
                    .iter()
                    .map(|&p| match &self.values[p as usize] {
                        Value::List(kv) | Value::Tuple(kv) if kv.len() == 2 => Some((kv[0], kv[1])),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Run one opcode; `Ok(true)` at `STOP`.
    fn step(&mut self, op: u8) -> Step<bool> {
        match op {
            // --- framing and control
            0x80 => {
                let v = self.u8()?;
                if v > MAX_PROTOCOL {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            0x95 => {
                // FRAME: a length hint; the opcodes inside are read as usual.
                self.u64()?;
            }
            b'.' => return Ok(true),
            // --- stack
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                if self.stack.len() > self.floor() {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let t = self.top()?;
                self.stack.push(t);
            }
            // --- atoms
            b'N' => self.push_new(Value::None)?,
            0x88 => self.push_new(Value::Bool(true))?,
            0x89 => self.push_new(Value::Bool(false))?,
            b'J' => {
                let v = self.i32()?;
                self.push_new(Value::Int(v as i64))?
            }
            b'K' => {
                let v = self.u8()?;
                self.push_new(Value::Int(v as i64))?
            }
            b'M' => {
                let v = self.u16()?;
                self.push_new(Value::Int(v as i64))?
            }
            0x8a => {
                let n = self.u8()?;
                let b = self.take(n as u64)?;
                self.push_new(Self::long(b))?
            }
            0x8b => {
                let n = self.i32()?;
                if n < 0 {
                    return Err(format!("negative length {n}"));
                }
                let b = self.take(n as u64)?;
                self.push_new(Self::long(b))?
            }
            b'I' => {
                let t = self.text_line()?;
                let v = match t.as_str() {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    s => Value::Int(s.parse().map_err(|_| format!("bad INT '{s}'"))?),
                };
                self.push_new(v)?
            }
            b'L' => {
                // Protocols 0 and 1 write every long this way, e.g. the magic number that starts
                // a legacy torch.save stream of protocol 1.
                let t = self.text_line()?;
                let s = t.strip_suffix('L').unwrap_or(&t);
                let v =
                    decimal_long(s).ok_or_else(|| format!("bad LONG '{}'", s.chars().take(40).collect::<String>()))?;
                self.push_new(v)?
            }
            b'G' => {
                let b = self.take(8)?;
                self.push_new(Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))))?
            }
            // --- strings and bytes
            0x8c => {
                let n = self.u8()?;
                let b = self.take(n as u64)?;
                self.push_new(Self::string(b)?)?
            }
            b'X' => {
                let n = self.u32()?;
                let b = self.take(n as u64)?;
                self.push_new(Self::string(b)?)?
            }
            0x8d => {
                let n = self.u64()?;
                let b = self.take(n)?;
                self.push_new(Self::string(b)?)?
            }
            b'U' => {
                let n = self.u8()?;
                let b = self.take(n as u64)?;
                self.push_new(Self::py2_string(b))?
            }
            b'T' => {
                let n = self.i32()?;
                if n < 0 {
                    return Err(format!("negative length {n}"));
                }
                let b = self.take(n as u64)?;
                self.push_new(Self::py2_string(b))?
            }
            b'C' => {
                let n = self.u8()?;
                let b = self.take(n as u64)?;
                self.push_new(Value::Bytes(b.to_vec()))?
            }
            b'B' => {
                let n = self.u32()?;
                let b = self.take(n as u64)?;
                self.push_new(Value::Bytes(b.to_vec()))?
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                let b = self.take(n)?;
                self.push_new(Value::Bytes(b.to_vec()))?
            }
            // --- containers
            b')' => self.push_new(Value::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_new(Value::Tuple(items))?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < self.floor() + n {
                    return Err("stack underflow".into());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push_new(Value::Tuple(items))?
            }
            b']' => self.push_new(Value::List(Vec::new()))?,
            b'l' => {
                let items = self.pop_mark()?;
                self.push_new(Value::List(items))?
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?;
                self.add_items(target, vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.add_items(target, items)?
            }
            b'}' => self.push_new(Value::Dict(Vec::new()))?,
            b'd' => {
                let items = self.pop_mark()?;
                let id = self.new_value(Value::Dict(Vec::new()))?;
                self.set_items(id, items)?;
                self.stack.push(id)
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?;
                self.set_items(target, vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.set_items(target, items)?
            }
            0x8f => self.push_new(Value::Set(Vec::new()))?,
            0x90 => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                match &mut self.values[target as usize] {
                    Value::Set(v) => v.extend(items),
                    other => return Err(format!("cannot add items to a {}", other.kind())),
                }
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push_new(Value::Set(items))?
            }
            // --- memo
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k as u64)?
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k as u64)?
            }
            b'p' => {
                let t = self.text_line()?;
                let k = t.parse().map_err(|_| format!("bad PUT index '{t}'"))?;
                self.memo_put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.u8()?;
                self.memo_get(k as u64)?
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k as u64)?
            }
            b'g' => {
                let t = self.text_line()?;
                let k = t.parse().map_err(|_| format!("bad GET index '{t}'"))?;
                self.memo_get(k)?
            }
            // --- globals, objects, persistent ids: recorded, never resolved or called
            b'c' => {
                let module = self.text_line()?;
                let name = self.text_line()?;
                self.push_new(Value::Global { module, name })?
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) =
                    (&self.values[module as usize], &self.values[name as usize])
                else {
                    return Err("STACK_GLOBAL needs two strings".into());
                };
                let (module, name) = (module.clone(), name.clone());
                self.push_new(Value::Global { module, name })?
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.reduce(callable, args)?
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                self.reduce(cls, args)?
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                self.reduce(cls, args)?
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                if let Value::Call { state: s @ None, .. } = &mut self.values[target as usize] {
                    *s = Some(state);
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push_new(Value::Persistent(pid))?
            }
            b'P' => {
                let t = self.text_line()?;
                let pid = self.new_value(Value::Str(t))?;
                self.push_new(Value::Persistent(pid))?
            }
            _ => return Err("unsupported opcode".into()),
        }
        Ok(false)
    }
}

/// Python's limit on the digits of an `int` read from text (`sys.int_info.default_max_str_digits`).
const MAX_LONG_DIGITS: usize = 4300;

/// A decimal integer (`-123`, `+7`) as [`Value::Int`], or as [`Value::BigInt`] (little-endian
/// two's complement in the fewest bytes, as `LONG1` holds it) when it does not fit `i64`.
fn decimal_long(s: &str) -> Option<Value> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(Value::Int(v));
    }
    let (neg, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > MAX_LONG_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Magnitude, little-endian base 256: ×10 + digit for each digit (at most 4300 digits).
    let mut mag: Vec<u8> = Vec::new();
    for &d in digits {
        let mut carry = (d - b'0') as u32;
        for b in mag.iter_mut() {
            let v = *b as u32 * 10 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            mag.push(carry as u8);
        }
    }
    if neg {
        // two's complement: invert and add one, over one extra byte for the sign
        mag.push(0);
        let mut carry = 1u32;
        for b in mag.iter_mut() {
            let v = (!*b) as u32 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        while mag.len() > 1 && mag[mag.len() - 1] == 0xff && mag[mag.len() - 2] & 0x80 != 0 {
            mag.pop();
        }
    } else if mag.last().is_some_and(|&b| b & 0x80 != 0) {
        mag.push(0);
    }
    Some(Value::BigInt(mag))
}

/// The pickletools name of an opcode, for messages.
fn opcode_name(op: u8) -> String {
    let name = match op {
        0x80 => "PROTO",
        0x95 => "FRAME",
        b'.' => "STOP",
        b'(' => "MARK",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'N' => "NONE",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'M' => "BININT2",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'I' => "INT",
        b'L' => "LONG",
        b'G' => "BINFLOAT",
        0x8c => "SHORT_BINUNICODE",
        b'X' => "BINUNICODE",
        0x8d => "BINUNICODE8",
        b'U' => "SHORT_BINSTRING",
        b'T' => "BINSTRING",
        b'C' => "SHORT_BINBYTES",
        b'B' => "BINBYTES",
        0x8e => "BINBYTES8",
        0x96 => "BYTEARRAY8",
        b')' => "EMPTY_TUPLE",
        b't' => "TUPLE",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        b']' => "EMPTY_LIST",
        b'l' => "LIST",
        b'a' => "APPEND",
        b'e' => "APPENDS",
        b'}' => "EMPTY_DICT",
        b'd' => "DICT",
        b's' => "SETITEM",
        b'u' => "SETITEMS",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b'p' => "PUT",
        0x94 => "MEMOIZE",
        b'h' => "BINGET",
        b'j' => "LONG_BINGET",
        b'g' => "GET",
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'b' => "BUILD",
        b'Q' => "BINPERSID",
        b'P' => "PERSID",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        _ => return format!("0x{op:02x}"),
    };
    format!("{name} (0x{op:02x})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(data: &[u8]) -> Pickle {
        let (p, n) = parse(data).unwrap();
        assert_eq!(n, data.len());
        p
    }

    #[test]
    fn dict_of_atoms() {
        // pickle.dumps({'a': 1, 'b': [2.5, None, True], 'c': b'xy'}, protocol=2)
        let p = parse_ok(
            b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00cq\x04C\x02xyq\x05u.",
        );
        let Value::Dict(d) = p.get(p.root()) else { panic!() };
        assert_eq!(d.len(), 3);
        assert_eq!(p.str(d[0].0), Some("a"));
        assert_eq!(p.int(d[0].1), Some(1));
        let l = p.seq(d[1].1).unwrap();
        assert_eq!(p.get(l[0]), &Value::Float(2.5));
        assert_eq!(p.get(l[1]), &Value::None);
        assert_eq!(p.get(l[2]), &Value::Bool(true));
        assert_eq!(p.get(d[2].1), &Value::Bytes(b"xy".to_vec()));
    }

    #[test]
    fn longs_and_memo_sharing() {
        // LONG1 of torch's magic number, then a memo-shared tuple
        let p = parse_ok(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.");
        assert_eq!(
            p.get(p.root()),
            &Value::BigInt(0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10].to_vec())
        );
        let p = parse_ok(b"\x80\x02\x8a\x02\xff\x7f.");
        assert_eq!(p.int(p.root()), Some(0x7fff));
        let p = parse_ok(b"\x80\x02\x8a\x01\xff.");
        assert_eq!(p.int(p.root()), Some(-1));
        // ([], ) put in memo 0, then (memo0, memo0): both items are the same value
        let p = parse_ok(b"\x80\x02]q\x00h\x00\x86.");
        let t = p.seq(p.root()).unwrap();
        assert_eq!(t[0], t[1]);
    }

    #[test]
    fn text_longs_of_any_size() {
        // pickle.dumps(x, protocol=1) for the magic number, 2**63, -(2**70), -(2**63) - 1
        let p = parse_ok(b"L119547037146038801333356L\n.");
        assert_eq!(
            p.get(p.root()),
            &Value::BigInt(0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10].to_vec())
        );
        let p = parse_ok(b"L9223372036854775808L\n.");
        assert_eq!(p.get(p.root()), &Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]));
        let p = parse_ok(b"L-1180591620717411303424L\n.");
        assert_eq!(p.get(p.root()), &Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0xc0]));
        let p = parse_ok(b"L-9223372036854775809L\n.");
        assert_eq!(
            p.get(p.root()),
            &Value::BigInt(vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff])
        );
        let p = parse_ok(b"L-42L\n.");
        assert_eq!(p.int(p.root()), Some(-42));
        for bad in [&b"L12a\n."[..], b"L-L\n.", b"LL\n."] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let mut huge = b"L".to_vec();
        huge.extend(std::iter::repeat_n(b'9', 5000));
        huge.extend(b"L\n.");
        assert!(parse(&huge).is_err());
    }

    #[test]
    fn ordered_dicts_become_dicts() {
        // Python 3: OrderedDict() then SETITEMS, then BUILD with a state
        let p = parse_ok(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00kK\x07s}b.");
        let Value::Dict(d) = p.get(p.root()) else { panic!() };
        assert_eq!((p.str(d[0].0), p.int(d[0].1)), (Some("k"), Some(7)));
        // Python 2.7: OrderedDict([['k', 7]])
        let p = parse_ok(b"\x80\x02ccollections\nOrderedDict\n]U\x01kK\x07\x86a\x85R.");
        let Value::Dict(d) = p.get(p.root()) else { panic!() };
        assert_eq!((p.str(d[0].0), p.int(d[0].1)), (Some("k"), Some(7)));
    }

    #[test]
    fn calls_are_recorded_not_made() {
        let p = parse_ok(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.");
        let Value::Call { callable, args, .. } = p.get(p.root()) else {
            panic!()
        };
        assert!(p.is_global(*callable, "posix", "system"));
        assert_eq!(p.str(p.seq(*args).unwrap()[0]), Some("ls"));
    }

    #[test]
    fn deep_nesting_and_cycles_are_fine() {
        let n = 1_000_000;
        let mut data = b"\x80\x02".to_vec();
        data.extend(std::iter::repeat_n(b']', n));
        data.extend(std::iter::repeat_n(b'a', n - 1));
        data.push(b'.');
        let p = parse_ok(&data);
        assert_eq!(p.values().len(), n);
        // a list appended to itself
        let p = parse_ok(b"\x80\x02]q\x00h\x00a.");
        assert_eq!(p.seq(p.root()).unwrap(), &[p.root()]);
        // exponential sharing through the memo stays linear
        let mut data = b"\x80\x02]q\x00".to_vec();
        for _ in 0..64 {
            data.extend(b"h\x00h\x00\x86q\x00");
        }
        data.push(b'.');
        let p = parse_ok(&data);
        assert!(p.values().len() < 100);
    }

    #[test]
    fn hostile_lengths_and_truncation_are_errors() {
        for data in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            b"\x80\x02\x8d\x00\x00\x00\x00\x00\x00\x00\x10abc",
            b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\x8b\x00\x00\x00\x80",
            b"\x80\x02T\xfe\xff\xff\xff",
            b"\x80\x02K",
            b"\x80\x02",
            b"\x80\x02a.",
            b"\x80\x02t.",
            b"\x80\x02h\x05.",
            b"\x80\x02(K\x01\x86.",
            b"\x80\x02K\x01u.",
            b"\x80\x06.",
            b"\x80\x02i.",
            b"\x80\x02cos\nsystem",
            b"\x80\x02X\x01\x00\x00\x00\xff.",
        ] {
            assert!(parse(data).is_err(), "{data:?}");
        }
        let err = parse(b"\x80\x02X\xff\xff\xff\x7f").unwrap_err();
        assert!(err.contains("at byte 2") && err.contains("BINUNICODE"), "{err}");
    }
}
